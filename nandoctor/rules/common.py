"""Small helpers the rule families share: locations, verified fixes, wording."""
from __future__ import annotations

from typing import Any, Optional

from ..evidence import Evidence, ProbeOutcome
from ..findings import Fix, Location
from ..opnames import forward_op_of


def op_name(producer: dict) -> str:
    """`log` for aten.log; for a backward node the forward op's name:
    `SqrtBackward0` -> `sqrt`, `LinalgVectorNormBackward0` -> `linalg_vector_norm`."""
    node = producer.get("node")
    if node:
        return forward_op_of(node)
    return (producer.get("op") or "").removeprefix("aten.")


def location(producer: Optional[dict]) -> Location:
    if not producer:
        return Location()
    site = producer.get("site") or {}
    return Location(
        file=site.get("file") or producer.get("forward_file"),
        line=site.get("line") or producer.get("forward_line"),
        module=producer.get("module"),
    )


def where(producer: dict) -> str:
    loc = location(producer)
    call = producer.get("call") or producer.get("op") or "an op"
    text = f"{call}"
    if loc.file:
        text += f" at {_short(loc.file)}:{loc.line}"
    if loc.module:
        text += f" (in {loc.module})"
    return text


def operands(producer: dict) -> list[dict]:
    return producer.get("forward_inputs") or producer.get("inputs") or []


def probe_learns(ev: Evidence, name: str) -> Optional[ProbeOutcome]:
    """The probe if it removed the failure and the loss still went down."""
    probe = ev.probe(name)
    if probe is None or not probe.learns or not ev.baseline_reproduced:
        return None
    return probe


def probe_failed_like_baseline(ev: Evidence, name: str, slack: int = 1) -> bool:
    """The probe failed at (about) the baseline's step: the change did not matter."""
    probe, baseline = ev.probe(name), ev.baseline
    if probe is None or baseline is None:
        return False
    a, b = probe.first_nonfinite_step, baseline.first_nonfinite_step
    return a is not None and b is not None and abs(a - b) <= slack


def verified(text: str, code: Optional[str], ev: Evidence,
             *probe_names: str) -> Fix:
    """A fix, marked verified by the first named probe that removed the failure."""
    for name in probe_names:
        probe = probe_learns(ev, name)
        if probe is not None:
            baseline = ev.baseline
            failed_at = baseline.first_nonfinite_step if baseline else None
            before = f"; without it step {failed_at}" if failed_at is not None else ""
            return Fix(text=text, code=code, verified_by=name,
                       verification=f"{probe.summary()}{before}")
    return Fix(text=text, code=code)


def count(stats: dict[str, Any], key: str) -> int:
    value = stats.get(key)
    return int(value) if isinstance(value, (int, float)) else 0


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _short(path: str) -> str:
    return path.rsplit("/", 1)[-1]
