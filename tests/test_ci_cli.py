"""`nandoctor check` end to end: exit codes, the CI formats, the guards
against false alarms, and the baseline. Each run is a few seconds."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, run_cli
from test_report_formats import parse

HEALTHY = str(SCRIPTS / "ci_healthy.py")
LOG_ZERO = str(SCRIPTS / "ci_log_zero.py")
NOT_GITHUB = {"GITHUB_ACTIONS": "", "GITHUB_STEP_SUMMARY": ""}


@pytest.fixture(scope="module")
def healthy_run(tmp_path_factory):
    """One healthy check writing every file, under a GitHub-like environment."""
    out = tmp_path_factory.mktemp("healthy")
    summary = out / "summary.md"
    summary.write_text("# from an earlier step\n")
    result = run_cli(
        "check", "--junit-xml", str(out / "junit.xml"), "--json",
        str(out / "report.json"), "--update-baseline", str(out / "base.json"),
        HEALTHY, env={"GITHUB_STEP_SUMMARY": str(summary),
                      "GITHUB_ACTIONS": ""})
    return result, out


def test_a_healthy_script_exits_0(healthy_run):
    result, _ = healthy_run
    assert result.returncode == 0, result.stderr
    assert "checks: passed (exit 0)" in result.stdout


def test_the_step_summary_is_appended_to(healthy_run):
    _, out = healthy_run
    text = (out / "summary.md").read_text()
    assert text.startswith("# from an earlier step\n")
    assert "## ✅ nandoctor: healthy" in text
    assert "### CI checks: passed, exit code 0" in text


def test_the_junit_file_parses_with_one_case_per_check(healthy_run):
    _, out = healthy_run
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("5", "0", "0", "1")


def test_the_json_report_has_the_documented_fields(healthy_run):
    _, out = healthy_run
    report = json.loads((out / "report.json").read_text())
    assert report["command"] == "check" and report["status"] == "healthy"
    assert report["exit_code"] == 0 and len(report["history"]) == 60
    check = report["check"]
    assert check["passed"] is True and check["fail_on"] == "error"
    assert [c["name"] for c in check["checks"]] == [
        "script runs", "finite values", "no runaway", "no error findings",
        "baseline"]
    assert (out / "base.json").is_file()


def test_a_worse_final_loss_than_the_baseline_fails(healthy_run):
    _, out = healthy_run
    # A tenth of the rate learns far less in the same 60 steps.
    result = run_cli("check", "--format", "json", "--baseline",
                     str(out / "base.json"), HEALTHY, "--", "--lr", "0.005",
                     env=NOT_GITHUB)
    assert result.returncode == 1, result.stderr
    check = json.loads(result.stdout)["check"]
    baseline = next(c for c in check["checks"] if c["name"] == "baseline")
    assert baseline["outcome"] == "failed"
    assert check["baseline"]["final_loss"] > check["baseline"]["baseline_final_loss"]


def test_a_diverging_script_is_annotated_at_its_culprit_line_on_github():
    result = run_cli("check", "--no-probes", LOG_ZERO,
                     env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(ROOT),
                          "GITHUB_STEP_SUMMARY": ""})
    assert result.returncode == 1, result.stderr
    commands = "".join(line + "\n" for line in result.stdout.splitlines()
                       if line.startswith("::"))
    errors = [n for n in parse(commands) if n["kind"] == "error"]
    assert errors
    # the log(1 - p) of the hand-written BCE
    assert {(n["file"], n["line"]) for n in errors} == {
        ("tests/scripts/ci_log_zero.py", "14")}


def test_exit_zero_reports_the_failure_and_exits_0():
    result = run_cli("check", "--no-probes", "--exit-zero", "--format", "json",
                     LOG_ZERO, env=NOT_GITHUB)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "diverged" and report["check"]["passed"] is False


def test_fail_on_warning_fails_a_healthy_run_with_a_warning():
    result = run_cli("check", "--fail-on", "warning", "--format", "json",
                     str(SCRIPTS / "ci_saturated.py"), env=NOT_GITHUB)
    report = json.loads(result.stdout)
    assert report["status"] == "healthy"
    assert any(f["severity"] == "warning" for f in report["findings"])
    assert result.returncode == 1


def test_a_script_that_raises_exits_3(tmp_path: Path):
    junit = tmp_path / "junit.xml"
    result = run_cli("check", "--junit-xml", str(junit), "--exit-zero",
                     str(SCRIPTS / "ci_raises.py"), env=NOT_GITHUB)
    assert result.returncode == 3, result.stderr
    error = ET.parse(junit).getroot().find("testsuite/testcase/error")
    assert "the evaluation set is missing" in error.get("message")


@pytest.mark.parametrize("args", [
    ("--max-steps", "0", HEALTHY),
    ("--fail-on", "sometimes", HEALTHY),
    ("--format", "xml", HEALTHY),
    ("--baseline", "no/such/base.json", HEALTHY),
    ("--junit-xml", "no/such/folder/junit.xml", HEALTHY),
    ("no_such_script.py",),
])
def test_bad_arguments_exit_2(args):
    result = run_cli("check", *args, env=NOT_GITHUB)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


def test_an_amp_step_the_scaler_skips_is_not_a_failure():
    result = run_cli("check", "--format", "json", str(SCRIPTS / "ci_amp_skip.py"),
                     env=NOT_GITHUB)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "healthy" and report["first_nonfinite"] is None
    # The huge initial scale overflows the first steps: skipped, not broken.
    assert report["history"][0]["skipped"] is True


def test_a_loss_spike_that_recovers_within_the_patience_passes():
    result = run_cli("check", "--format", "json", str(SCRIPTS / "ci_loss_spike.py"),
                     env=NOT_GITHUB)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["first_divergence"] is None


@pytest.mark.slow
def test_the_same_spike_fails_with_a_shorter_patience(tmp_path: Path):
    config = tmp_path / "nandoctor.yaml"
    config.write_text("watch:\n  runaway_patience: 2\n")
    result = run_cli("check", "--config", str(config), "--no-probes", "--format",
                     "json", str(SCRIPTS / "ci_loss_spike.py"), env=NOT_GITHUB)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["first_divergence"]["step"] == 60


@pytest.mark.slow
def test_a_non_finite_loss_under_a_grad_scaler_fails(cases_dir: Path):
    result = run_cli("check", "--no-probes", "--format", "json",
                     str(cases_dir / "14_fp16_activation_overflow.py"),
                     env=NOT_GITHUB)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["first_nonfinite"]["phase"] in (
        "forward", "loss")
