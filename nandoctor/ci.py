"""CI mode's decisions: which checks a diagnosis passes, and its exit code.

A check run passes or fails on more than the diagnosis status: a finding at
or above the failing severity fails it, and so does a run that did worse
than a baseline (the JSON report of an earlier good run). The reports only
render the `Verdict` made here.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from .diagnose import (
    STATUS_CRASHED,
    STATUS_INTERRUPTED,
    STATUS_TIMEOUT,
    Diagnosis,
)
from .errors import NandoctorError
from .exitcodes import ExitCode
from .findings import Finding, Location, Severity
from .report import words

# The final loss is the mean of the last few finite losses, so that one noisy
# batch neither fails a run nor hides a regression.
FINAL_LOSS_WINDOW = 10

CHECK_RUNS = "script runs"
CHECK_FINITE = "finite values"
CHECK_RUNAWAY = "no runaway"
CHECK_BASELINE = "baseline"


class Outcome(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    # The check could not be made: the script stopped before it could tell.
    ERROR = "error"


@dataclass(frozen=True)
class Check:
    """One yes/no question a CI run answers; a failure says where and why."""

    name: str
    outcome: Outcome
    message: str
    details: tuple[str, ...] = ()
    location: Location = field(default_factory=Location)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome.value,
                "message": self.message, "details": list(self.details),
                "file": self.location.file, "line": self.location.line}


@dataclass(frozen=True)
class Baseline:
    """The JSON report of an earlier good run, and where it was read from."""

    path: str
    report: dict[str, Any]


@dataclass(frozen=True)
class Comparison:
    """This run's final loss against the baseline's, at the same last step."""

    path: str
    step: Optional[int]
    final_loss: Optional[float]
    baseline_loss: Optional[float]
    margin: float
    baseline_finite: bool

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "step": self.step,
                "final_loss": self.final_loss,
                "baseline_final_loss": self.baseline_loss,
                "margin": self.margin, "baseline_finite": self.baseline_finite}


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]
    fail_on: Severity
    exit_code: ExitCode
    exit_zero: bool = False
    comparison: Optional[Comparison] = None

    @property
    def passed(self) -> bool:
        return all(c.outcome in (Outcome.PASSED, Outcome.SKIPPED)
                   for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "exit_code": int(self.exit_code),
            "fail_on": self.fail_on.value, "exit_zero": self.exit_zero,
            "checks": [c.to_dict() for c in self.checks],
            "baseline": self.comparison.to_dict() if self.comparison else None,
        }


def findings_check_name(fail_on: Severity) -> str:
    return {Severity.ERROR: "no error findings",
            Severity.WARNING: "no warning or error findings",
            Severity.INFO: "no findings"}[fail_on]


def judge(
    diagnosis: Diagnosis,
    fail_on: Severity = Severity.ERROR,
    baseline: Optional[Baseline] = None,
    margin: float = 0.1,
    exit_zero: bool = False,
) -> Verdict:
    comparison = _compare(diagnosis, baseline, margin) if baseline else None
    checks = (
        _runs_check(diagnosis),
        _finite_check(diagnosis),
        _runaway_check(diagnosis),
        _findings_check(diagnosis.findings, fail_on),
        _baseline_check(comparison, diagnosis),
    )
    code = diagnosis.exit_code
    if code == ExitCode.HEALTHY and any(c.outcome == Outcome.FAILED
                                        for c in checks):
        code = ExitCode.DIVERGED
    # --exit-zero silences what the run found, not a run that could not be
    # made: a crash or an interruption keeps its own code.
    if exit_zero and code == ExitCode.DIVERGED:
        code = ExitCode.HEALTHY
    return Verdict(checks=checks, fail_on=fail_on, exit_code=code,
                   exit_zero=exit_zero, comparison=comparison)


def _runs_check(diagnosis: Diagnosis) -> Check:
    steps = len(diagnosis.evidence.watch.steps)
    if diagnosis.status == STATUS_TIMEOUT:
        return Check(CHECK_RUNS, Outcome.PASSED, words.headline(diagnosis))
    if diagnosis.status not in (STATUS_CRASHED, STATUS_INTERRUPTED):
        return Check(CHECK_RUNS, Outcome.PASSED, f"{steps} steps run")
    end = diagnosis.evidence.watch.end
    details = tuple((end.get("traceback") or "").rstrip().splitlines()[-15:])
    return Check(CHECK_RUNS, Outcome.ERROR, words.headline(diagnosis), details,
                 Location.of_site(end.get("site")))


def _finite_check(diagnosis: Diagnosis) -> Check:
    first = diagnosis.evidence.first_nonfinite()
    if first is None:
        return Check(CHECK_FINITE, Outcome.PASSED,
                     "no NaN or inf in inputs, losses, gradients or weights")
    what = "NaN" if (first.get("stats") or {}).get("nan") else "inf"
    message = (f"first {what} at step {first['step']} "
               f"{words.PHASE_WORDS.get(first['phase'], first['phase'])} "
               f"({first.get('tensor')})")
    where = Location(file=first.get("file"), line=first.get("line"),
                     module=first.get("module"))
    if first.get("node"):
        # A backward producer is known by its node and the forward line
        # that created it: that line is the one to fix.
        message += f", made by {first['node']}"
        if first.get("call"):
            message += f" (the gradient of {first['call']})"
        where = Location(file=first.get("forward_file"),
                         line=first.get("forward_line"),
                         module=first.get("module"))
    elif first.get("op"):
        message += f", made by {first['op']}"
    return Check(CHECK_FINITE, Outcome.FAILED, message + _at(where),
                 location=where)


def _at(where: Location) -> str:
    """` at train.py:41 (fc)`, or nothing where nothing is known."""
    place = words.place(where)
    return f" at {place}" if place else ""



def _runaway_check(diagnosis: Diagnosis) -> Check:
    divergence = diagnosis.evidence.divergence
    if divergence is None:
        return Check(CHECK_RUNAWAY, Outcome.PASSED,
                     "the loss never stayed far above its best")
    step = divergence.get("step")
    if divergence.get("kind") == "negative_loss":
        message = (f"the {divergence.get('function')} loss went negative at "
                   f"step {step} ({words.number(divergence.get('loss'))}), "
                   "which a likelihood cannot")
    else:
        factor = diagnosis.settings.watch.runaway_factor
        best = words.number(divergence.get("best_smoothed"))
        message = (f"the loss ran away from step {step}: above {factor:g}x its "
                   f"best smoothed value {best} for "
                   f"{diagnosis.settings.watch.runaway_patience} steps")
    where = Location.of_site(divergence.get("site"))
    return Check(CHECK_RUNAWAY, Outcome.FAILED, message + _at(where),
                 location=where)


def _findings_check(findings: list[Finding], fail_on: Severity) -> Check:
    name = findings_check_name(fail_on)
    failing = [f for f in findings if f.severity.rank >= fail_on.rank]
    if not failing:
        return Check(name, Outcome.PASSED,
                     f"none at {fail_on.value} or above ({len(findings)} in all)")
    details: list[str] = []
    for finding in failing:
        details.append(f"[{finding.code}] {finding.title} "
                       f"({finding.severity.value}, {words.role(finding.role)})"
                       f"{_at(finding.location)}")
        details += [f"  {item}" for item in finding.evidence]
    top = failing[0]
    count = "1 finding" if len(failing) == 1 else f"{len(failing)} findings"
    return Check(name, Outcome.FAILED,
                 f"{count} at {fail_on.value} or above; first: "
                 f"[{top.code}] {top.title}", tuple(details), top.location)


def _baseline_check(comparison: Optional[Comparison],
                    diagnosis: Diagnosis) -> Check:
    if comparison is None:
        return Check(CHECK_BASELINE, Outcome.SKIPPED, "no baseline given")
    source = f"baseline {comparison.path}"
    finite = diagnosis.evidence.bad_step is None
    if comparison.baseline_finite and not finite:
        return Check(CHECK_BASELINE, Outcome.FAILED,
                     f"the {source} ran finite; this run broke at step "
                     f"{diagnosis.evidence.bad_step}")
    if comparison.final_loss is None or comparison.baseline_loss is None:
        return Check(CHECK_BASELINE, Outcome.SKIPPED,
                     f"no final loss to compare with the {source}")
    now, then = comparison.final_loss, comparison.baseline_loss
    change = f"{(now - then) / abs(then):+.1%}; " if then else ""
    text = (f"final loss {words.number(now)} against {words.number(then)} in "
            f"the {source} at step {comparison.step} ({change}margin "
            f"{comparison.margin:.0%})")
    worse = now > then + comparison.margin * abs(then)
    return Check(CHECK_BASELINE, Outcome.FAILED if worse else Outcome.PASSED,
                 text)


def load_baseline(path: Path) -> Baseline:
    """A JSON report of an earlier run, checked enough to compare with."""
    from .report.json_report import SCHEMA_VERSION

    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NandoctorError(
            f"{path}: baseline not found. Write one from a good run with "
            f"`nandoctor check --update-baseline {path} train.py`, or drop "
            "--baseline (and ci.baseline in the config).") from None
    except (OSError, ValueError) as exc:
        raise NandoctorError(f"{path}: the baseline cannot be read as JSON "
                             f"({exc}). Give a report written by --json or "
                             "--update-baseline.") from None
    if not isinstance(report, dict) or not isinstance(report.get("history"), list):
        raise NandoctorError(f"{path}: not a nandoctor JSON report (no "
                             "`history`). Give a report written by --json or "
                             "--update-baseline.")
    if report.get("schema_version") != SCHEMA_VERSION:
        raise NandoctorError(
            f"{path}: a baseline of report schema "
            f"{report.get('schema_version')}, this nandoctor writes "
            f"{SCHEMA_VERSION}. Write it again with --update-baseline.")
    return Baseline(path=str(path), report=report)


def _compare(diagnosis: Diagnosis, baseline: Baseline,
             margin: float) -> Comparison:
    report = baseline.report
    ours = [(s["step"], _loss(s.get("loss")))
            for s in diagnosis.evidence.watch.steps]
    theirs = [(s["step"], _loss(s.get("loss"))) for s in report["history"]
              if isinstance(s.get("step"), int)]
    # Compared at the last step both runs reached: a run capped sooner is
    # measured against where the baseline stood at that step.
    last = min((h[-1][0] for h in (ours, theirs) if h), default=None)
    baseline_finite = (report.get("first_nonfinite") is None
                       and report.get("first_divergence") is None)
    return Comparison(path=baseline.path, step=last, final_loss=_final(ours, last),
                      baseline_loss=_final(theirs, last), margin=margin,
                      baseline_finite=baseline_finite)


def _final(history: list[tuple[int, Optional[float]]],
           last: Optional[int]) -> Optional[float]:
    if last is None:
        return None
    upto = [loss for step, loss in history if step <= last and loss is not None]
    window = upto[-FINAL_LOSS_WINDOW:]
    if not window or not all(math.isfinite(v) for v in window):
        return None
    return sum(window) / len(window)


def _loss(value: Any) -> Optional[float]:
    """A loss as the reports hold it: a number, or "nan"/"inf" as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
