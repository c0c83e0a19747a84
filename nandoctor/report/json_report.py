"""The JSON report: the whole evidence, under a versioned, stable schema."""
from __future__ import annotations

import json
from typing import Any

from .. import __version__
from ..diagnose import Diagnosis
from ..jsonsafe import jsonable

SCHEMA_VERSION = 1
_HISTORY_KEYS = ("step", "loss", "grad_norm", "param_norm", "update_ratio",
                 "lrs", "skipped", "skipped_by", "nonfinite", "backwards")


def build(diagnosis: Diagnosis, command: str = "diagnose") -> dict[str, Any]:
    ev = diagnosis.evidence
    watch = ev.watch
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "nandoctor", "version": __version__},
        "command": command,
        "script": str(diagnosis.target.script),
        "args": diagnosis.target.args,
        "seed": diagnosis.settings.seed,
        "threads": diagnosis.threads,
        "status": diagnosis.status,
        "exit_code": int(diagnosis.exit_code),
        "steps": len(watch.steps),
        "ended": watch.reason,
        "first_nonfinite": ev.first_nonfinite(),
        "first_divergence": ev.divergence,
        "nonfinite_steps": watch.end.get("nonfinite_steps"),
        "replay": _replay(diagnosis),
        "findings": [f.to_dict(rank) for rank, f in
                     enumerate(diagnosis.findings, start=1)],
        "probes": [p.to_dict() for p in ev.probes],
        "baseline": ev.baseline.to_dict() if ev.baseline else None,
        "baseline_reproduced": ev.baseline_reproduced,
        "crash": _crash(watch.end),
        "history": [{k: s.get(k) for k in _HISTORY_KEYS if k in s}
                    for s in watch.steps],
        "timings": diagnosis.seconds,
    }
    return jsonable(report)


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, allow_nan=False)


def _replay(diagnosis: Diagnosis) -> Any:
    ev = diagnosis.evidence
    if ev.replay is None:
        return None
    return {
        "reproduced": ev.replay_reproduced(),
        "first_nonfinite": ev.replay.first_event,
        "producers": {e["key"]: {k: v for k, v in e.items() if k != "event"}
                      for e in ev.replay.of_kind("producer")},
    }


def _crash(end: dict) -> Any:
    if end.get("reason") not in ("crashed", "killed", "syntax_error"):
        if not (end.get("reason") == "exit" and end.get("exit_code")):
            return None
    return {k: end.get(k) for k in ("reason", "error", "error_type", "traceback",
                                    "site", "exit_code", "signal") if k in end}
