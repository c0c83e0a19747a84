"""User-facing wording in one place, so it can be read and tested as a whole."""
from __future__ import annotations

import math
import os
from typing import Any, Optional

from ..diagnose import Diagnosis
from ..findings import Location

PHASE_WORDS = {
    "input": "in the data entering the model or the loss",
    "forward": "in the forward pass",
    "loss": "in the loss",
    "backward": "in the gradients (backward pass)",
    "optimizer": "in the weights, during the optimizer's update",
}
ROLE_WORDS = {"root": "root cause", "surfaced": "where it surfaced",
              "precursor": "warning sign", "context": "context"}


BASELINE_CLEAN = ("The baseline (the script unchanged, one thread) ran clean: "
                  "the failure depends on the thread count, so no probe can "
                  "show that its change removed it.")


def headline(diagnosis: Diagnosis) -> str:
    ev = diagnosis.evidence
    status = diagnosis.status
    steps = len(ev.watch.steps)
    if status == "healthy":
        return f"healthy: {steps} steps, no non-finite value and no runaway loss"
    if status == "timeout":
        return (f"no failure in {steps} steps before the time limit "
                f"({diagnosis.settings.timeout:g} s)")
    if status == "interrupted":
        return f"interrupted after {steps} steps; the evidence so far is below"
    if status == "crashed":
        end = ev.watch.end
        if end.get("reason") == "killed":
            return (f"the script was killed (signal {end.get('signal')}) after "
                    f"{steps} steps, e.g. out of memory")
        if end.get("reason") == "exit":
            return (f"the script exited with code {end.get('exit_code')} after "
                    f"{steps} steps")
        return f"the script crashed after {steps} steps: {end.get('error', '')}"
    first = ev.first_event
    top = diagnosis.findings[0] if diagnosis.findings else None
    cause = f" — most likely {top.cause.value}" if top else ""
    if first is not None:
        what = "NaN" if (first.get("stats") or {}).get("nan") else "inf"
        return (f"diverged at step {first['step']}: first {what} "
                f"{PHASE_WORDS.get(first['phase'], first['phase'])}{cause}")
    div = ev.divergence or {}
    kind = {"negative_loss": "the loss went negative, which it cannot",
            "loss_runaway": "the loss ran away"}.get(div.get("kind"), "diverged")
    return f"diverged at step {div.get('step')}: {kind}{cause}"


def role(name: str) -> str:
    return ROLE_WORDS.get(name, name)


def location(file: Optional[str], line: Optional[int]) -> str:
    """`train.py:41`, relative to the working directory when under it."""
    if not file:
        return ""
    shown = os.path.relpath(file) if os.path.abspath(file).startswith(
        os.getcwd() + os.sep) else file
    return f"{shown}:{line}" if line else shown


def place(where: Location) -> str:
    """`train.py:41 (encoder.fc)`: a finding's location as a reader wants it."""
    shown = location(where.file, where.line)
    if where.module:
        shown = f"{shown} ({where.module})" if shown else where.module
    return shown


def number(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def stats(s: dict[str, Any]) -> str:
    """`min 0, max 1, 1 zero, 32 negative, 1 -inf` for an operand."""
    parts = [f"{s.get('dtype', '?')}{s.get('shape', '')}"]
    for key in ("min", "max"):
        if s.get(key) is not None:
            parts.append(f"{key} {s[key]:.7g}")
    counts = (("zeros", "zero"), ("negatives", "negative"), ("nan", "NaN"),
              ("posinf", "+inf"), ("neginf", "-inf"), ("tiny", "below 1e-30"),
              ("beyond_fp16", "beyond float16"))
    for key, label in counts:
        if s.get(key):
            parts.append(f"{s[key]} {label}")
    if s.get("written"):
        parts.append("written in place: these are its values after the op"
                     + (", finite before" if s.get("finite_before") else ""))
    return ", ".join(parts)


def layout(lay: dict[str, Any]) -> str:
    text = f"{lay.get('count')} of {lay.get('numel')} values"
    if "samples" in lay:
        text += f"; samples {lay['samples']}"
        if lay.get("n_samples", 0) > len(lay["samples"]):
            text += f" (+{lay['n_samples'] - len(lay['samples'])} more)"
    if "features" in lay:
        text += f"; features {lay['features']}"
    return text


def history_footer(steps: list[dict], bad: Optional[int]) -> str:
    last = steps[-1]
    text = f"steps 0–{last['step']}"
    if bad is not None:
        text += f"; bad step {bad}"
    lrs = last.get("lrs")
    if lrs:
        text += f"; lr {', '.join(number(lr) for lr in lrs if lr is not None)}"
    return text
