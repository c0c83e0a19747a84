"""Small, real training scripts on scikit-learn's bundled data.

Each script is a plain program (`python script.py --lr 0.1`) that knows
nothing of nandoctor. The failing ones go non-finite at their default
arguments, deterministically; a `*_fixed` twin applies the usual fix.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Example:
    name: str
    path: str
    summary: str


def catalog() -> list[Example]:
    """The bundled scripts, each summed up by its docstring's first line."""
    return [
        Example(name=script.stem, path=str(script), summary=_summary(script))
        for script in sorted(_HERE.glob("*.py"))
        if not script.name.startswith("_")
    ]


def _summary(script: Path) -> str:
    # Parsed, not imported: importing would load torch and scikit-learn.
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
    return doc.splitlines()[0] if doc else ""
