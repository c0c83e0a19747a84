"""The terminal report of `lr-sweep`: headline, chart, every number, warnings."""
from __future__ import annotations

from typing import Optional

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .. import sweep as rules
from ..range_test import STATUS_CRASHED, RangeTest
from . import sweep_plot
from . import sweep_words as words

STATUS_STYLE = {"ok": "bold green", "unreliable": "bold yellow",
                "crashed": "bold red"}
TRACEBACK_LINES = 15


def render(test: RangeTest, console: Console) -> None:
    console.print(headline(test))
    if test.repeats[0].reading.points:
        console.print(chart(test, console.width))
    console.print(numbers(test))
    if test.status == STATUS_CRASHED:
        console.print(crash(test))  # the curve's warnings would be noise here
        return
    notes = warnings(test)
    if notes is not None:
        console.print(notes)


def headline(test: RangeTest) -> Panel:
    text = Text(words.headline(test), style=STATUS_STYLE[test.status])
    sweep = test.sweep
    subtitle = (f"{test.target.script} · {words.rate(sweep.start_lr)}"
                f"…{words.rate(sweep.end_lr)}, {sweep.steps} steps")
    if len(test.repeats) > 1:
        subtitle += f" · {len(test.repeats)} repeats"
    return Panel(text, title="nandoctor lr-sweep", subtitle=subtitle)


def chart(test: RangeTest, width: int) -> Panel:
    marks = sweep_plot.markers(test)
    reading = test.repeats[0].reading
    body = sweep_plot.text_chart(reading, marks, width - 4)
    legend = Text(f"{sweep_plot.SMOOTH} smoothed  {sweep_plot.RAW} loss  "
                  f"{sweep_plot.CLIPPED} above the chart   ", style="dim")
    for mark in marks:
        legend.append(f"{mark.letter}", style=mark.style)
        off = "" if sweep_plot.on_chart(reading, mark.lr) else \
            f" {words.rate(mark.lr)}, off the chart"
        legend.append(f" {mark.label}{off}  ")
    return Panel(Group(body, legend),
                 title="loss against learning rate (log scale)")


def numbers(test: RangeTest) -> Table:
    several = len(test.repeats) > 1
    table = Table(title="rates", title_justify="left", caption=_caption(test))
    table.add_column("")
    table.add_column("learning rate", justify="right")
    if several:
        table.add_column(f"min … max ({len(test.repeats)} repeats)",
                         justify="right")
    table.add_column("read as")
    for label, value, span, how in _rows(test):
        table.add_row(label, value, *([span] if several else []), how)
    return table


Row = tuple[Text, str, str, str]  # label, rate, spread over repeats, meaning


def _rows(test: RangeTest) -> list[Row]:
    summary = test.summary
    rows: list[Row] = []
    for name in rules.RULES:
        value = summary.rules[name]
        label = Text(words.RULE_NAMES[name])
        if name == summary.suggested_by:
            label.stylize("bold green")
            label.append(" (suggested)")
        rows.append((label, words.rate(value.median if value else None),
                     _span(value), words.RULE_HOW[name]))
    rows += _divergence_rows(test)
    rows.append((Text("script's rate"), words.rate(summary.current_lr), "",
                 "group 0's at step 0"))
    value, meaning = words.margin(test)
    rows.append((Text("stability margin"), value, "", meaning))
    return rows


def _divergence_rows(test: RangeTest) -> list[Row]:
    summary, confirmation = test.summary, test.confirmation
    spread = summary.divergence
    swept = words.rate(spread.median if spread else None)
    if confirmation is None or not confirmation.bracket.high_verified:
        return [(Text("divergence"), swept, _span(spread),
                 "the swept loss runs away")]
    bracket = confirmation.bracket
    runs = (f"{len(confirmation.runs)} constant-rate runs of "
            f"{confirmation.horizon} steps")
    rows = [(Text("divergence"), words.rate(bracket.high), "",
             f"lowest to diverge in {runs}")]
    if bracket.low_verified:
        rows.append((Text("largest stable rate"), words.rate(bracket.low), "",
                     "highest to stay stable in them"))
    rows.append((Text("divergence in the sweep"), swept, _span(spread),
                 "the swept loss runs away: an upper bound"))
    return rows


def _span(spread: Optional[rules.Spread]) -> str:
    if spread is None:
        return "—"
    return f"{words.rate(spread.low)} … {words.rate(spread.high)}"


def _caption(test: RangeTest) -> str:
    reading = test.repeats[0].reading
    ended = test.repeats[0].result.reason
    parts = [f"{len(test.repeats[0].result.steps)} steps, ended: {ended}",
             f"confidence {test.summary.confidence}"]
    if reading.depth_in_noise is not None:
        parts.append(f"valley depth {reading.depth_in_noise:.3g}x noise")
    if reading.rules_spread is not None:
        parts.append(f"rules span {reading.rules_spread:.2f} decades")
    seconds = test.seconds
    if test.confirmation is not None:
        seconds += test.confirmation.seconds
    parts.append(f"{seconds:.1f} s")
    return " · ".join(parts)


def warnings(test: RangeTest) -> Optional[Panel]:
    found = words.warnings(test)
    if not found:
        return None
    lines = [Text(f"• {sentence}") for _, sentence in found]
    return Panel(Group(*lines), title="warnings", border_style="yellow")


def crash(test: RangeTest) -> Panel:
    repeat = test.crash or test.repeats[0]
    end = repeat.result.end
    if end.get("traceback"):
        return Panel(Text(end["traceback"].rstrip()),
                     title="the script's traceback", border_style="red")
    tail = repeat.result.output_tail.rstrip().splitlines()[-TRACEBACK_LINES:]
    reason = end.get("reason", "killed")
    title = f"the script's last output (ended: {reason})"
    return Panel(Text("\n".join(tail) or "(no output)"), title=title,
                 border_style="red")
