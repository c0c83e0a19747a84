"""The terminal report: headline, first non-finite value, findings, history."""
from __future__ import annotations

import math
from typing import Any, Optional

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..diagnose import Diagnosis
from ..findings import Finding
from . import words

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 48
STATUS_STYLE = {"healthy": "bold green", "diverged": "bold red",
                "crashed": "bold red", "timeout": "bold yellow",
                "interrupted": "bold yellow"}
SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}
OUTCOME_STYLE = {"passed": "green", "failed": "bold red", "error": "bold red",
                 "skipped": "dim"}


def render(diagnosis: Diagnosis, console: Console) -> None:
    console.print(headline(diagnosis))
    first = diagnosis.evidence.first_nonfinite()
    if first is not None:
        console.print(first_nonfinite_panel(first, diagnosis))
    if diagnosis.findings:
        console.print(findings_panel(diagnosis.findings))
    if diagnosis.evidence.probes:
        console.print(probes_table(diagnosis))
    history = history_panel(diagnosis, console.width)
    if history is not None:
        console.print(history)
    watch = diagnosis.evidence.watch
    if watch.end.get("traceback"):
        console.print(Panel(Text(watch.end["traceback"].rstrip()),
                            title="the script's traceback", border_style="red"))
    elif diagnosis.status == "crashed" and watch.output_tail.strip():
        tail = "\n".join(watch.output_tail.rstrip().splitlines()[-15:])
        console.print(Panel(Text(tail), title="the script's last output",
                            border_style="red"))


def headline(diagnosis: Diagnosis) -> Panel:
    text = Text(words.headline(diagnosis), style=STATUS_STYLE[diagnosis.status])
    steps = len(diagnosis.evidence.watch.steps)
    subtitle = f"{diagnosis.target.script} · {steps} steps"
    return Panel(text, title="nandoctor", subtitle=subtitle, expand=True)


def first_nonfinite_panel(first: dict, diagnosis: Diagnosis) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("step", str(first["step"]))
    table.add_row("phase", first["phase"])
    table.add_row("first seen in", first.get("tensor", ""))
    if first.get("op"):
        op = first["op"] + (f" ({first['call']})" if first.get("call") else "")
        if first.get("node"):
            op = f"{first['node']} · {op}"
        table.add_row("produced by", op)
    where = words.location(first.get("file"), first.get("line"))
    if where:
        label = "forward line" if first.get("node") else "at"
        table.add_row(label, where)
    if first.get("module"):
        table.add_row("module", str(first["module"]))
    for i, stats in enumerate(first.get("inputs") or first.get("forward_inputs") or []):
        table.add_row(f"input {i}", words.stats(stats))
    if first.get("output"):
        table.add_row("output", words.stats(first["output"]))
    if first.get("first_nan"):
        nan = first["first_nan"]
        table.add_row("first NaN", f"{nan.get('op')} at "
                      f"{words.location(nan.get('file'), nan.get('line'))}")
    if first.get("layout"):
        table.add_row("which samples", words.layout(first["layout"]))
    if first.get("masked_from"):
        src = first["masked_from"]
        site = src.get("site") or {}
        table.add_row("-inf came from", f"{src.get('op')} at "
                      f"{words.location(site.get('file'), site.get('line'))}")
    reproduced = diagnosis.evidence.replay_reproduced()
    if reproduced is False:
        table.add_row("replay", Text("did not reproduce this event", style="yellow"))
    return Panel(table, title="first non-finite value", border_style="red")


def findings_panel(findings: list[Finding]) -> Panel:
    parts: list[RenderableType] = []
    for rank, finding in enumerate(findings, start=1):
        parts.append(_finding(rank, finding))
    return Panel(Group(*parts), title="diagnosis, most likely cause first")


def _finding(rank: int, finding: Finding) -> RenderableType:
    style = SEVERITY_STYLE[finding.severity.value]
    head = Text()
    head.append(f"{rank}. ", style="bold")
    head.append(f"[{finding.code}] ", style=style)
    head.append(finding.title, style="bold")
    head.append(f"  {words.role(finding.role)} · {finding.cause.value} · "
                f"confidence {finding.confidence:.2f}", style="dim")
    lines: list[RenderableType] = [head]
    location = words.place(finding.location)
    if location:
        lines.append(Text(f"   at {location}", style="dim"))
    # A grid keeps a wrapped bullet's continuation under its text, not its mark.
    items = Table.grid()
    items.add_column(no_wrap=True)
    items.add_column()
    for item in finding.evidence:
        items.add_row("   • ", Text(item))
    for fix in finding.fixes:
        mark = "   ✓ " if fix.verified_by else "   → "
        line = Text(fix.text)
        if fix.code:
            line.append(f"  {fix.code}", style="bold")
        if fix.verification:
            line.append(f"  ({fix.verification})", style="dim")
        items.add_row(Text(mark, style="green" if fix.verified_by else "cyan"), line)
    lines += [items, Text("")]
    return Group(*lines)


def probes_table(diagnosis: Diagnosis) -> Table:
    ev = diagnosis.evidence
    table = Table(title="probes: the same run with one change",
                  title_justify="left")
    table.add_column("probe")
    table.add_column("change")
    table.add_column("outcome", justify="right")
    table.add_column("loss first → last", justify="right")
    rows = ([ev.baseline] if ev.baseline else []) + ev.probes
    for p in rows:
        table.add_row(
            p.name, p.change,
            Text(p.verdict(), style="red" if p.failed or p.crashed else "green"),
            f"{words.number(p.first_loss)} → {words.number(p.final_loss)}",
        )
    if not ev.baseline_reproduced:
        table.caption = words.BASELINE_CLEAN
    return table


def checks_table(verdict: Any) -> Table:
    """`nandoctor check`'s checks (a `ci.Verdict`), one row each."""
    result = "passed" if verdict.passed else "failed"
    table = Table(title=f"checks: {result} (exit {int(verdict.exit_code)})",
                  title_justify="left")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in verdict.checks:
        style = OUTCOME_STYLE[check.outcome.value]
        table.add_row(check.name, Text(check.outcome.value, style=style),
                      check.message)
    return table


def history_panel(diagnosis: Diagnosis, width: int = 80) -> Optional[Panel]:
    steps = diagnosis.evidence.watch.steps
    if not steps:
        return None
    bad = diagnosis.evidence.bad_step
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="bold")
    rows.add_column(no_wrap=True)
    rows.add_column(style="dim", no_wrap=True)
    series = [("loss", [_number(s.get("loss")) for s in steps]),
              ("grad norm", [_number(s.get("grad_norm")) for s in steps])]
    spans = [span(values) for _, values in series]
    # Borders and padding take 8 columns: the line gets what the labels and
    # spans leave, so that it is never cut (and the bad step's mark with it).
    room = width - 8 - max(len(label) for label, _ in series) - max(map(len, spans))
    for (label, values), text in zip(series, spans):
        line = sparkline(values, [s["step"] for s in steps], bad,
                         max(10, min(SPARK_WIDTH, room)))
        rows.add_row(label, line, text)
    footer = words.history_footer(steps, bad)
    return Panel(Group(rows, Text(footer, style="dim")),
                 title=f"history ({history_legend(steps, bad)})")


def history_legend(steps: list[dict], bad: Optional[int]) -> str:
    """`log scale, ✗ the bad step`: the scale and the marks the lines hold."""
    marks = ["log scale"] + (["✗ the bad step"] if bad is not None else [])
    if any(not math.isfinite(v) for s in steps if s["step"] != bad
           for v in map(_number, (s.get("loss"), s.get("grad_norm")))
           if v is not None):
        marks.append("× non-finite")
    return ", ".join(marks)


def sparkline(values: list[Optional[float]], steps: list[int],
              bad: Optional[int], width: int = SPARK_WIDTH) -> Text:
    """A log-scale sparkline over at most `width` buckets."""
    n = len(values)
    width = min(width, n)
    buckets = [range(i * n // width, (i + 1) * n // width) for i in range(width)]
    logs = [math.log10(abs(v)) if v is not None and math.isfinite(v) and v != 0
            else None for v in values]
    finite = [v for v in logs if v is not None]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    text = Text()
    for bucket in buckets:
        chunk = [logs[i] for i in bucket]
        has_bad = bad is not None and any(steps[i] == bad for i in bucket)
        if any(values[i] is not None and not math.isfinite(values[i])
               for i in bucket) and not has_bad:
            text.append("×", style="red")
            continue
        if has_bad:
            text.append("✗", style="bold red")
            continue
        known = [v for v in chunk if v is not None]
        if not known:
            text.append(" ")
            continue
        level = (max(known) - low) / (high - low) if high > low else 0.5
        text.append(SPARK[min(len(SPARK) - 1, int(level * (len(SPARK) - 1)))])
    return text


def span(values: list[Optional[float]]) -> str:
    """The first and last finite values: `0.6957 … 4.88e-05`."""
    first, last = _first_finite(values), _last_finite(values)
    return f"{words.number(first)} … {words.number(last)}"


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value)
    return None


def _first_finite(values: list[Optional[float]]) -> Optional[float]:
    return next((v for v in values if v is not None and math.isfinite(v)), None)


def _last_finite(values: list[Optional[float]]) -> Optional[float]:
    return _first_finite(list(reversed(values)))
