"""Shared test helpers: run the CLI as a user would, find the shared cases."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"
CASES = ROOT.parent / "shared" / "cases"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m nandoctor ARGS` in a child, as a user runs it."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "nandoctor", *args], cwd=cwd or ROOT,
        capture_output=True, text=True, timeout=timeout, env=full_env,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def cases_dir() -> Path:
    if not CASES.is_dir():
        pytest.skip("../shared/cases is not beside this checkout")
    return CASES
