"""CI mode's decisions, on hand-built diagnoses: no script runs here."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pytest

from nandoctor import ci
from nandoctor.ci import Outcome
from nandoctor.config import Settings
from nandoctor.diagnose import Diagnosis, Target
from nandoctor.errors import NandoctorError
from nandoctor.evidence import Evidence
from nandoctor.exitcodes import ExitCode
from nandoctor.findings import Cause, Finding, Location, Severity
from nandoctor.plan import Plan
from nandoctor.runner import PassResult

NAN_EVENT = {"event": "nonfinite", "step": 3, "phase": "loss",
             "tensor": "the loss passed to backward()",
             "stats": {"nan": 1}, "site": {"file": "train.py", "line": 41}}


def make_diagnosis(status: str = "healthy", losses: Optional[list] = None,
                   findings: tuple[Finding, ...] = (),
                   events: tuple[dict, ...] = (),
                   end: Optional[dict] = None) -> Diagnosis:
    losses = [1.0 / (i + 1) for i in range(20)] if losses is None else losses
    watch = PassResult(
        name="watch", plan=Plan(script="train.py"),
        steps=[{"step": i, "loss": v} for i, v in enumerate(losses)],
        events=list(events), end=end or {"reason": "finished"})
    return Diagnosis(target=Target(script=Path("train.py")), settings=Settings(),
                     status=status, evidence=Evidence("train.py", watch),
                     findings=list(findings))


def finding(severity: Severity, code: str = "ND101") -> Finding:
    return Finding(code=code, cause=Cause.LOG_OF_NONPOSITIVE, title="log of zero",
                   severity=severity, confidence=0.9,
                   location=Location(file="train.py", line=41),
                   evidence=("torch.log received 3 zeros",))


def outcomes(verdict: ci.Verdict) -> dict[str, Outcome]:
    return {c.name: c.outcome for c in verdict.checks}


def baseline_report(losses: list, nonfinite: Optional[dict] = None) -> dict:
    return {"schema_version": 1, "status": "healthy",
            "first_nonfinite": nonfinite, "first_divergence": None,
            "history": [{"step": i, "loss": v} for i, v in enumerate(losses)]}


def test_a_healthy_run_passes_every_check():
    verdict = ci.judge(make_diagnosis())
    assert verdict.exit_code == ExitCode.HEALTHY and verdict.passed
    assert outcomes(verdict)[ci.CHECK_BASELINE] == Outcome.SKIPPED


def test_a_non_finite_value_fails_and_names_its_line():
    diagnosis = make_diagnosis("diverged", events=(NAN_EVENT,))
    verdict = ci.judge(diagnosis)
    finite = next(c for c in verdict.checks if c.name == ci.CHECK_FINITE)
    assert verdict.exit_code == ExitCode.DIVERGED
    assert finite.outcome == Outcome.FAILED
    assert (finite.location.file, finite.location.line) == ("train.py", 41)


def test_a_warning_fails_only_when_fail_on_is_warning():
    diagnosis = make_diagnosis(findings=(finding(Severity.WARNING),))
    assert ci.judge(diagnosis).exit_code == ExitCode.HEALTHY
    strict = ci.judge(diagnosis, fail_on=Severity.WARNING)
    assert strict.exit_code == ExitCode.DIVERGED
    assert outcomes(strict)["no warning or error findings"] == Outcome.FAILED


def test_an_error_finding_fails_a_finite_run():
    verdict = ci.judge(make_diagnosis(findings=(finding(Severity.ERROR),)))
    check = next(c for c in verdict.checks if c.name == "no error findings")
    assert verdict.exit_code == ExitCode.DIVERGED
    assert "[ND101] log of zero" in check.details[0]


def test_exit_zero_silences_a_failure_but_not_a_crash():
    diverged = make_diagnosis("diverged", events=(NAN_EVENT,))
    assert ci.judge(diverged, exit_zero=True).exit_code == ExitCode.HEALTHY
    crashed = make_diagnosis("crashed", end={"reason": "crashed",
                                             "error": "RuntimeError: boom"})
    verdict = ci.judge(crashed, exit_zero=True)
    assert verdict.exit_code == ExitCode.SCRIPT_CRASHED
    assert outcomes(verdict)[ci.CHECK_RUNS] == Outcome.ERROR


def test_a_final_loss_worse_than_the_baseline_by_more_than_the_margin_fails():
    reference = ci.Baseline("base.json", baseline_report([0.5] * 20))
    worse = make_diagnosis(losses=[0.6] * 20)
    verdict = ci.judge(worse, baseline=reference, margin=0.1)
    assert outcomes(verdict)[ci.CHECK_BASELINE] == Outcome.FAILED
    assert verdict.exit_code == ExitCode.DIVERGED
    within = make_diagnosis(losses=[0.54] * 20)
    assert ci.judge(within, baseline=reference,
                    margin=0.1).exit_code == ExitCode.HEALTHY


def test_the_baseline_is_compared_at_the_last_step_both_runs_reached():
    # The baseline ran longer and kept improving; this run stopped at step 9.
    reference = baseline_report([1.0] * 10 + [0.1] * 30)
    verdict = ci.judge(make_diagnosis(losses=[1.0] * 10),
                       baseline=ci.Baseline("base.json", reference))
    assert verdict.comparison is not None and verdict.comparison.step == 9
    assert outcomes(verdict)[ci.CHECK_BASELINE] == Outcome.PASSED


def test_a_baseline_that_ran_finite_fails_a_run_that_did_not():
    reference = baseline_report([0.5] * 20)
    diagnosis = make_diagnosis("diverged", losses=[0.5] * 3 + ["nan"] * 5,
                               events=(NAN_EVENT,))
    verdict = ci.judge(diagnosis, baseline=ci.Baseline("base.json", reference))
    baseline = next(c for c in verdict.checks if c.name == ci.CHECK_BASELINE)
    assert baseline.outcome == Outcome.FAILED
    assert "ran finite" in baseline.message


def test_load_baseline_explains_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(NandoctorError, match="baseline not found"):
        ci.load_baseline(tmp_path / "missing.json")
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"results": []}))
    with pytest.raises(NandoctorError, match="not a nandoctor JSON report"):
        ci.load_baseline(foreign)


def test_the_verdict_serialises_to_the_documented_fields():
    data = ci.judge(make_diagnosis()).to_dict()
    assert set(data) == {"passed", "exit_code", "fail_on", "exit_zero",
                         "checks", "baseline"}
    assert set(data["checks"][0]) == {"name", "outcome", "message", "details",
                                      "file", "line"}
    json.dumps(data, allow_nan=False)


def test_the_example_ci_config_loads():
    from nandoctor.config import load_settings

    settings, _ = load_settings(Path(__file__).parent.parent / "configs" / "ci.yaml")
    assert settings.max_steps and settings.ci.baseline == "ci/baseline.json"
