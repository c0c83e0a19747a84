"""The Markdown report: `diagnose --format markdown`, and the summary a CI
run appends to `$GITHUB_STEP_SUMMARY`.

GitHub renders it with HTML sanitised, so text that could read as a tag
(`<module>`) or break a table (`|`) is escaped, and code goes in backticks.
"""
from __future__ import annotations

from typing import Optional

from ..ci import Outcome, Verdict
from ..diagnose import Diagnosis
from ..findings import Finding
from . import words
from .terminal import history_legend, span, sparkline

TRACEBACK_LINES = 30
OUTCOME_MARK = {Outcome.PASSED: "✅ passed", Outcome.FAILED: "❌ failed",
                Outcome.SKIPPED: "➖ skipped", Outcome.ERROR: "💥 error"}
STATUS_MARK = {"healthy": "✅", "timeout": "⏱️", "diverged": "❌",
               "crashed": "💥", "interrupted": "⏹️"}


def render(diagnosis: Diagnosis, verdict: Optional[Verdict] = None) -> str:
    parts = [_headline(diagnosis)]
    if verdict is not None:
        parts.append(_checks(verdict))
    first = diagnosis.evidence.first_nonfinite()
    if first is not None:
        parts.append(_first_nonfinite(first))
    if diagnosis.findings:
        parts.append(_findings(diagnosis.findings))
    if diagnosis.evidence.probes:
        parts.append(_probes(diagnosis))
    if diagnosis.evidence.watch.steps:
        parts.append(_history(diagnosis))
    if diagnosis.evidence.watch.end.get("traceback"):
        parts.append(_traceback(diagnosis.evidence.watch.end["traceback"]))
    return "\n".join(parts)


def text(value: object) -> str:
    """Plain words safe inside a paragraph or a table cell."""
    return (str(value).replace("\\", "\\\\").replace("|", "\\|")
            .replace("<", "&lt;").replace(">", "&gt;").replace("\n", " "))


def code(value: object) -> str:
    """Inline code; a double fence when the value holds a backtick itself."""
    raw = str(value).replace("\n", " ").replace("|", "\\|")
    return f"`` {raw} ``" if "`" in raw else f"`{raw}`"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _headline(diagnosis: Diagnosis) -> str:
    mark = STATUS_MARK.get(diagnosis.status, "")
    steps = len(diagnosis.evidence.watch.steps)
    args = " ".join(diagnosis.target.args)
    command = f"{diagnosis.target.script} {args}".strip()
    return (f"## {mark} nandoctor: {text(words.headline(diagnosis))}\n\n"
            f"{code(command)} · {steps} steps · status "
            f"**{diagnosis.status}**\n")


def _checks(verdict: Verdict) -> str:
    rows = [(text(c.name), OUTCOME_MARK[c.outcome], text(c.message))
            for c in verdict.checks]
    result = "passed" if verdict.passed else "failed"
    note = " (`--exit-zero`: reported, not failed)" if verdict.exit_zero else ""
    return (f"### CI checks: {result}, exit code {int(verdict.exit_code)}"
            f"{note}\n\n" + _table(("check", "result", "detail"), rows))


def _first_nonfinite(first: dict) -> str:
    rows = [("step", str(first["step"])),
            ("phase", text(words.PHASE_WORDS.get(first["phase"], first["phase"]))),
            ("first seen in", text(first.get("tensor", "")))]
    if first.get("op"):
        op = first["op"] + (f" ({first['call']})" if first.get("call") else "")
        if first.get("node"):
            op = f"{first['node']} · {op}"
        rows.append(("produced by", code(op)))
    where = words.location(first.get("file"), first.get("line"))
    if where:
        rows.append(("forward line" if first.get("node") else "at", code(where)))
    if first.get("module"):
        rows.append(("module", code(first["module"])))
    operands = first.get("inputs") or first.get("forward_inputs") or []
    rows += [(f"input {i}", text(words.stats(s))) for i, s in enumerate(operands)]
    if first.get("output"):
        rows.append(("output", text(words.stats(first["output"]))))
    if first.get("layout"):
        rows.append(("which samples", text(words.layout(first["layout"]))))
    return "### First non-finite value\n\n" + _table(("", ""), rows)


def _findings(findings: list[Finding]) -> str:
    lines = ["### Findings, most likely cause first", ""]
    for rank, finding in enumerate(findings, start=1):
        lines.append(f"{rank}. **{code(finding.code)} {text(finding.title)}** — "
                     f"{finding.severity.value} · {words.role(finding.role)} · "
                     f"{finding.cause.value} · confidence "
                     f"{finding.confidence:.2f}")
        place = words.place(finding.location)
        if place:
            lines.append(f"   at {code(place)}")
        lines += [f"   - {text(item)}" for item in finding.evidence]
        for fix in finding.fixes:
            mark = "✓ verified" if fix.verified_by else "→ try"
            line = f"   - {mark}: {text(fix.text)}"
            if fix.code:
                line += f" {code(fix.code)}"
            if fix.verification:
                line += f" ({text(fix.verification)})"
            lines.append(line)
    return "\n".join(lines) + "\n"


def _probes(diagnosis: Diagnosis) -> str:
    ev = diagnosis.evidence
    rows = []
    for p in ([ev.baseline] if ev.baseline else []) + ev.probes:
        bad = (str(p.first_nonfinite_step) if p.first_nonfinite_step is not None
               else f"none in {p.steps_run}")
        losses = f"{words.number(p.first_loss)} → {words.number(p.final_loss)}"
        rows.append((code(p.name), text(p.change), bad, losses))
    header = ("probe", "change", "first non-finite", "loss first → last")
    note = "" if ev.baseline_reproduced else f"\n{text(words.BASELINE_CLEAN)}\n"
    return ("### Probes: the same run with one change\n\n"
            + _table(header, rows) + note)


def _history(diagnosis: Diagnosis) -> str:
    steps = diagnosis.evidence.watch.steps
    bad = diagnosis.evidence.bad_step
    lines = []
    for key, label in (("loss", "loss     "), ("grad_norm", "grad norm")):
        values = [_number(s.get(key)) for s in steps]
        line = sparkline(values, [s["step"] for s in steps], bad)
        lines.append(f"{label}  {line.plain}  {span(values)}")
    lines.append(words.history_footer(steps, bad))
    return (f"### History ({history_legend(steps, bad)})\n\n```text\n"
            + "\n".join(lines) + "\n```\n")


def _traceback(traceback: str) -> str:
    tail = traceback.rstrip().splitlines()[-TRACEBACK_LINES:]
    # A four-backtick fence: no line of a traceback can close it early.
    return ("<details><summary>The script's traceback</summary>\n\n````text\n"
            + "\n".join(tail) + "\n````\n\n</details>\n")


def _number(value: object) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
