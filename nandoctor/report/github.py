"""GitHub Actions workflow commands: one annotation per failed check and
finding, at the culprit line, within what GitHub shows of a step.

GitHub shows at most 10 annotations of each kind (error, warning, notice)
per step and 50 per job; beyond that they vanish without a word, so the
ones left out are counted in a final notice instead.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..ci import (
    CHECK_FINITE,
    CHECK_RUNAWAY,
    CHECK_RUNS,
    Check,
    Outcome,
    Verdict,
    findings_check_name,
)
from ..diagnose import Diagnosis
from ..findings import Finding, Location, Severity
from . import words

PER_KIND_LIMIT = 10
KIND = {"error": "error", "warning": "warning", "info": "notice"}


@dataclass(frozen=True)
class Annotation:
    kind: str  # error, warning or notice
    title: str
    message: str
    file: Optional[str] = None
    line: Optional[int] = None

    def command(self) -> str:
        props = []
        if self.file:
            props.append(f"file={escape_property(self.file)}")
            if self.line:
                props.append(f"line={self.line}")
        props.append(f"title={escape_property(self.title)}")
        return f"::{self.kind} {','.join(props)}::{escape_data(self.message)}"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(diagnosis: Diagnosis, verdict: Verdict, max_annotations: int,
           root: Path) -> str:
    """Workflow command lines; paths relative to `root` (the workspace)."""
    wanted = annotations(diagnosis, verdict, Path(os.path.abspath(root)))
    shown, counts = [], {kind: 0 for kind in KIND.values()}
    # One notice slot stays free for the count of what was left out.
    limits = {"error": PER_KIND_LIMIT, "warning": PER_KIND_LIMIT,
              "notice": PER_KIND_LIMIT - 1}
    for note in wanted:
        if len(shown) < max_annotations and counts[note.kind] < limits[note.kind]:
            shown.append(note)
            counts[note.kind] += 1
    lines = [note.command() for note in shown]
    left_out = len(wanted) - len(shown)
    if left_out:
        lines.append(f"::notice title=nandoctor::{left_out} more annotations "
                     f"left out (GitHub shows {PER_KIND_LIMIT} of a kind per "
                     f"step; ci.max_annotations is {max_annotations}): the "
                     "step summary and the JSON report have them all")
    return "".join(line + "\n" for line in lines)


def annotations(diagnosis: Diagnosis, verdict: Verdict,
                root: Path) -> list[Annotation]:
    """Failed checks first, then the findings in their ranked order.

    The findings check is not repeated, each of its findings having its own;
    nor is a crash, a non-finite value or a runaway once an error finding
    explains it at its line.
    """
    skip = {findings_check_name(verdict.fail_on)}
    if any(f.severity == Severity.ERROR for f in diagnosis.findings):
        skip |= {CHECK_RUNS, CHECK_FINITE, CHECK_RUNAWAY}
    notes = [_from_check(check, diagnosis, root) for check in verdict.checks
             if check.outcome in (Outcome.FAILED, Outcome.ERROR)
             and check.name not in skip]
    culprit = _culprit(diagnosis)
    notes += [_from_finding(rank, f, culprit, root)
              for rank, f in enumerate(diagnosis.findings, start=1)]
    return notes


def _from_check(check: Check, diagnosis: Diagnosis, root: Path) -> Annotation:
    return Annotation(
        kind="error", title=f"nandoctor: {check.name} ({diagnosis.status})",
        message="\n".join((check.message, *check.details)),
        file=_relative(check.location.file, root), line=check.location.line)


def _from_finding(rank: int, finding: Finding, culprit: Location,
                  root: Path) -> Annotation:
    where = finding.location if finding.location.file else culprit
    about = [words.role(finding.role), f"confidence {finding.confidence:.2f}"]
    if finding.step is not None:
        about.append(f"step {finding.step}")
    if finding.location.module:
        about.append(f"module {finding.location.module}")
    lines = [f"{finding.title} ({', '.join(about)})"]
    lines += [f"- {item}" for item in finding.evidence]
    for fix in finding.fixes:
        snippet = f" {fix.code}" if fix.code else ""
        verified = f" (verified: {fix.verification})" if fix.verification else ""
        lines.append(f"fix: {fix.text}{snippet}{verified}")
    return Annotation(
        kind=KIND[finding.severity.value],
        title=f"{finding.code} #{rank}: {finding.title}",
        message="\n".join(lines), file=_relative(where.file, root),
        line=where.line)


def _culprit(diagnosis: Diagnosis) -> Location:
    """The user's line behind the first non-finite value.

    For a producer in the backward pass that is the forward call that built
    the failing node, not the `backward()` line where it ran.
    """
    first = diagnosis.evidence.first_nonfinite() or {}
    file, line = first.get("file"), first.get("line")
    if first.get("node") and first.get("forward_file"):
        file, line = first["forward_file"], first.get("forward_line")
    return Location(file=file, line=line)


def _relative(file: Optional[str], root: Path) -> Optional[str]:
    """GitHub places an annotation by its path relative to the checkout."""
    if not file:
        return None
    path = Path(os.path.abspath(file))
    if path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return file
