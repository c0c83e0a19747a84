"""The CI renderers on hand-built diagnoses: GitHub workflow commands,
JUnit XML and Markdown."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from nandoctor import ci
from nandoctor.findings import Cause, Finding, Fix, Location, Severity
from nandoctor.plan import Plan
from nandoctor.report import github, junit, markdown
from nandoctor.runner import PassResult
from test_ci import NAN_EVENT, finding, make_diagnosis

WORKSPACE = Path("/ws")
COMMAND = re.compile(r"^::(error|warning|notice) (?P<props>[^:]*)::(?P<msg>.*)$")


def parse(lines: str) -> list[dict]:
    """Workflow commands back into their parts, unescaped."""
    parsed = []
    for line in lines.splitlines():
        match = COMMAND.match(line)
        assert match, f"not a workflow command: {line!r}"
        props = dict(p.split("=", 1) for p in match["props"].split(","))
        parsed.append({"kind": match[1], "message": unescape(match["msg"]),
                       **{k: unescape(v) for k, v in props.items()}})
    return parsed


def unescape(text: str) -> str:
    for code, char in (("%0A", "\n"), ("%0D", "\r"), ("%3A", ":"),
                       ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


def many_findings(count: int, severity: Severity) -> tuple[Finding, ...]:
    return tuple(
        Finding(code=f"ND{100 + i}", cause=Cause.UNEXPLAINED, title=f"cause {i}",
                severity=severity, confidence=0.5,
                location=Location(file="/ws/train.py", line=10 + i))
        for i in range(count))


def test_escaping_follows_githubs_rules():
    assert github.escape_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert github.escape_property("a:b,c%") == "a%3Ab%2Cc%25"


def test_each_finding_is_annotated_at_its_line_relative_to_the_workspace():
    tricky = Finding(
        code="ND101", cause=Cause.LOG_OF_NONPOSITIVE,
        title="log of zero: p, 1 - p", severity=Severity.ERROR, confidence=0.9,
        location=Location(file="/ws/src/train.py", line=41),
        evidence=("100% of the batch\nsaturated",),
        fixes=(Fix(text="clamp it", code="x.clamp_min(1e-7)"),))
    diagnosis = make_diagnosis(findings=(tricky, finding(Severity.WARNING)))
    verdict = ci.judge(diagnosis)
    notes = parse(github.render(diagnosis, verdict, 10, WORKSPACE))
    assert [n["kind"] for n in notes] == ["error", "warning"]
    assert (notes[0]["file"], notes[0]["line"]) == ("src/train.py", "41")
    assert notes[0]["title"] == "ND101 #1: log of zero: p, 1 - p"
    assert "100% of the batch\nsaturated" in notes[0]["message"]
    assert "x.clamp_min(1e-7)" in notes[0]["message"]


def test_a_backward_producer_is_annotated_at_its_forward_line():
    producer = {"event": "producer", "key": "backward", "pass": "backward",
                "node": "SqrtBackward0", "op": "aten.div",
                "forward_file": "/ws/train.py", "forward_line": 13}
    event = {**NAN_EVENT, "phase": "backward", "tensor": "gradient of w",
             "site": {"file": "/ws/train.py", "line": 30}}
    diagnosis = make_diagnosis("diverged", events=(event,))
    diagnosis.evidence.replay = PassResult(name="replay", plan=Plan("train.py"),
                                           events=[producer])
    unlocated = Finding(code="ND120", cause=Cause.SQRT_OR_POW_AT_ZERO,
                        title="sqrt at zero", severity=Severity.WARNING,
                        confidence=0.8)
    diagnosis.findings.append(unlocated)
    notes = parse(github.render(diagnosis, ci.judge(diagnosis), 10, WORKSPACE))
    assert {(n["file"], n["line"]) for n in notes} == {("train.py", "13")}


def test_a_failure_without_findings_is_still_annotated():
    diagnosis = make_diagnosis("diverged", events=(NAN_EVENT,))
    notes = parse(github.render(diagnosis, ci.judge(diagnosis), 10, WORKSPACE))
    assert len(notes) == 1 and notes[0]["kind"] == "error"
    assert (notes[0]["file"], notes[0]["line"]) == ("train.py", "41")


def test_annotations_keep_to_githubs_limits_and_count_the_rest():
    diagnosis = make_diagnosis(findings=many_findings(14, Severity.ERROR)
                               + many_findings(3, Severity.WARNING))
    notes = parse(github.render(diagnosis, ci.judge(diagnosis), 12, WORKSPACE))
    kinds = [n["kind"] for n in notes]
    # 10 errors (GitHub's cap), 2 warnings (12 in all), then the count.
    assert kinds == ["error"] * 10 + ["warning"] * 2 + ["notice"]
    assert notes[-1]["message"].startswith("5 more annotations left out")


def test_nothing_is_annotated_for_a_healthy_run():
    diagnosis = make_diagnosis()
    assert github.render(diagnosis, ci.judge(diagnosis), 10, WORKSPACE) == ""


def test_junit_has_one_case_per_check_with_the_right_counts():
    diagnosis = make_diagnosis("diverged", events=(NAN_EVENT,),
                               findings=(finding(Severity.ERROR),))
    root = ET.fromstring(junit.render(diagnosis, ci.judge(diagnosis)))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert root.tag == "testsuites"
    assert [c.get("name") for c in cases] == [
        "script runs", "finite values", "no runaway", "no error findings",
        "baseline"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("5", "2", "0", "1")
    failure = cases[3].find("failure")
    assert "[ND101] log of zero" in failure.text


def test_junit_time_is_the_whole_diagnosis_not_the_sum_of_overlapping_passes():
    diagnosis = make_diagnosis()
    diagnosis.seconds = {"watch": 5.0, "replay": 3.0, "probes": 9.0, "total": 14.5}
    root = ET.fromstring(junit.render(diagnosis, ci.judge(diagnosis)))
    assert root.get("time") == root.find("testsuite").get("time") == "14.500"


def test_junit_reports_a_crash_as_an_error_and_drops_control_characters():
    diagnosis = make_diagnosis("crashed", end={
        "reason": "crashed", "error": "RuntimeError: boom",
        "traceback": "Traceback\n\x1b[31mRuntimeError: boom\x1b[0m\n"})
    root = ET.fromstring(junit.render(diagnosis, ci.judge(diagnosis)))
    error = root.find("testsuite/testcase/error")
    assert root.find("testsuite").get("errors") == "1"
    assert "RuntimeError: boom" in error.text and "\x1b" not in error.text


def test_markdown_escapes_tables_and_tags():
    odd = Finding(code="ND130", cause=Cause.UNEXPLAINED,
                  title="a | b in <module>", severity=Severity.ERROR,
                  confidence=0.5)
    diagnosis = make_diagnosis(findings=(odd,))
    text = markdown.render(diagnosis, ci.judge(diagnosis))
    assert "a \\| b in &lt;module&gt;" in text
    assert "### CI checks: failed, exit code 1" in text
    assert "| no error findings | ❌ failed |" in text


def test_markdown_without_a_verdict_has_no_checks():
    text = markdown.render(make_diagnosis("diverged", events=(NAN_EVENT,)))
    assert text.startswith("## ❌ nandoctor: diverged at step 3")
    assert "CI checks" not in text
    assert "### First non-finite value" in text
