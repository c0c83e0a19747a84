"""JUnit XML: one test case per CI check, in the shape CI servers read.

A failed check is a <failure>, a check the run could not make (the script
crashed) an <error>, and a check with nothing to compare a <skipped>.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..ci import Check, Outcome, Verdict
from ..diagnose import Diagnosis
from . import words

SUITE = "nandoctor check"
# XML 1.0 cannot hold these at all, not even escaped; a script's output or
# traceback may (terminal colour codes).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render(diagnosis: Diagnosis, verdict: Verdict) -> str:
    counts = {outcome: sum(c.outcome == outcome for c in verdict.checks)
              for outcome in Outcome}
    seconds = f"{diagnosis.seconds.get('total', 0.0):.3f}"
    totals = {"tests": str(len(verdict.checks)),
              "failures": str(counts[Outcome.FAILED]),
              "errors": str(counts[Outcome.ERROR]),
              "skipped": str(counts[Outcome.SKIPPED]), "time": seconds}
    suites = ET.Element("testsuites", name="nandoctor", **totals)
    suite = ET.SubElement(suites, "testsuite", name=SUITE, **totals)
    _properties(suite, diagnosis, verdict)
    classname = f"nandoctor.{diagnosis.target.script.stem}"
    for check in verdict.checks:
        _case(suite, check, classname)
    ET.SubElement(suite, "system-out").text = _safe(words.headline(diagnosis))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _properties(suite: ET.Element, diagnosis: Diagnosis,
                verdict: Verdict) -> None:
    properties = ET.SubElement(suite, "properties")
    values = {"script": str(diagnosis.target.script),
              "args": " ".join(diagnosis.target.args),
              "status": diagnosis.status, "fail_on": verdict.fail_on.value,
              "exit_code": str(int(verdict.exit_code))}
    for name, value in values.items():
        ET.SubElement(properties, "property", name=name, value=value)


def _case(suite: ET.Element, check: Check, classname: str) -> None:
    case = ET.SubElement(suite, "testcase", name=check.name,
                         classname=classname, time="0")
    message = _safe(check.message)
    body = "\n".join((check.message, *check.details))
    if check.outcome == Outcome.FAILED:
        kind = "nandoctor." + check.name.replace(" ", "_")
        ET.SubElement(case, "failure", message=message, type=kind).text = _safe(body)
    elif check.outcome == Outcome.ERROR:
        ET.SubElement(case, "error", message=message,
                      type="nandoctor.crash").text = _safe(body)
    elif check.outcome == Outcome.SKIPPED:
        ET.SubElement(case, "skipped", message=message)


def _safe(text: str) -> str:
    return _NOT_XML.sub("", text)
