"""The JSON report of `lr-sweep`: every number and the curve, versioned."""
from __future__ import annotations

import json
from typing import Any, Optional

from .. import __version__
from ..plan import Sweep
from ..range_test import Confirmation, RangeTest, Repeat
from ..sweep import SMOOTHING, Spread, scheduled_lr
from . import sweep_words as words
from ..jsonsafe import jsonable

SCHEMA_VERSION = 1


def build(test: RangeTest) -> dict[str, Any]:
    summary = test.summary
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "nandoctor", "version": __version__},
        "command": "lr-sweep",
        "script": str(test.target.script),
        "args": test.target.args,
        "seed": test.seed,
        "threads": test.threads,
        "status": test.status,
        "exit_code": int(test.exit_code),
        "suggested_lr": summary.suggested_lr,
        "confidence": summary.confidence,
        "divergence_lr": summary.divergence_lr,
        "sweep_divergence_lr": _median(summary.divergence),
        "current_lr": summary.current_lr,
        "stability_margin": summary.stability_margin,
        "rules": {name: {"lr": _median(value), "spread": _spread(value)}
                  for name, value in summary.rules.items()},
        "suggested_spread": _spread(summary.suggested),
        "divergence_spread": _spread(summary.divergence),
        "warnings": [{"code": code, "message": text}
                     for code, text in words.warnings(test)],
        "sweep": {"start_lr": test.sweep.start_lr, "end_lr": test.sweep.end_lr,
                  "steps": test.sweep.steps,
                  "divergence_factor": test.sweep.divergence_factor,
                  "repeats": len(test.repeats), "smoothing": SMOOTHING},
        "confirmation": _confirmation(test.confirmation),
        "curve": _curve(test.repeats[0], test.sweep),
        "repeats": [_repeat(r, test.sweep) for r in test.repeats],
        "crash": _crash(test),
        "timings": {"sweep": test.seconds,
                    "confirmation": test.confirmation.seconds
                    if test.confirmation else None},
    }
    return jsonable(report)


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, allow_nan=False)


def _repeat(repeat: Repeat, sweep: Sweep) -> dict[str, Any]:
    reading = repeat.reading
    return {
        "seed_offset": repeat.seed_offset,
        "steps": len(repeat.result.steps),
        "ended": repeat.result.reason,
        "current_lrs": repeat.current_lrs,
        "base_lrs": repeat.base_lrs,
        "suggested_lr": reading.suggested_lr,
        "confidence": reading.confidence,
        "rules": {name: {"lr": value.lr, "step": value.step}
                  for name, value in reading.rules.items()},
        "divergence_lr": reading.divergence_lr,
        "divergence_step": reading.divergence_step,
        "first_nonfinite_step": reading.nonfinite_step,
        "valley_steps": list(reading.valley) if reading.valley else None,
        "noise": reading.noise,
        "valley_depth_in_noise": reading.depth_in_noise,
        "valley_relative_drop": reading.relative_drop,
        "rules_spread_decades": reading.rules_spread,
        "warnings": list(reading.warnings),
        "curve": _curve(repeat, sweep),
    }


def _curve(repeat: Repeat, sweep: Sweep) -> list[dict[str, Any]]:
    """Every step the child reported, at the schedule's rate (group 0's);
    `smoothed` is null where the curve was cut (the non-finite tail, which
    the rules do not read)."""
    kept = {p.step: p for p in repeat.reading.points}
    curve = []
    for record, loss in zip(repeat.result.steps, repeat.result.losses()):
        step = record["step"]
        point = kept.get(step)
        lr = scheduled_lr(sweep.start_lr, sweep.end_lr, sweep.steps, step)
        curve.append({"step": step, "lr": lr,
                      "loss": loss,
                      "smoothed": point.smoothed if point else None,
                      "smoothed_lr": point.smoothed_lr if point else None})
    return curve


def _confirmation(confirmation: Optional[Confirmation]) -> Any:
    if confirmation is None:
        return None
    bracket = confirmation.bracket
    return {
        "horizon_steps": confirmation.horizon,
        "largest_stable_lr": bracket.low if bracket.low_verified else None,
        "lowest_diverging_lr": bracket.high if bracket.high_verified else None,
        "runs": [{"lr": r.lr, "diverged": r.diverged, "steps": r.steps,
                  "ended": r.ended} for r in confirmation.runs],
    }


def _crash(test: RangeTest) -> Any:
    repeat = test.crash
    if repeat is None:
        return None
    end = repeat.result.end
    return {k: end.get(k) for k in ("reason", "error", "error_type", "traceback",
                                    "site", "exit_code", "signal") if k in end}


def _median(value: Optional[Spread]) -> Optional[float]:
    return value.median if value else None


def _spread(value: Optional[Spread]) -> Any:
    if value is None:
        return None
    return {"min": value.low, "median": value.median, "max": value.high,
            "count": value.count}
