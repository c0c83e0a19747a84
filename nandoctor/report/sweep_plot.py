"""Loss against learning rate, drawn: as text for the terminal, as a PNG.

Both draw the same things: the loss of each step, the smoothed curve the
rules read, and a vertical mark at each rate the report names. The y range
stops at the highest smoothed loss up to the divergence, so that the
run-away tail does not squash the valley into one row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.text import Text

from .. import sweep as rules
from ..errors import NandoctorError
from ..range_test import RangeTest
from ..sweep import CurvePoint, CurveReading
from . import sweep_words as words

CHART_HEIGHT = 14
LABEL_WIDTH = 10
RAW, SMOOTH, CLIPPED, RULE = "·", "•", "↑", "┊"
MATPLOTLIB_MISSING = (
    "--plot needs matplotlib, which is not installed in this Python "
    "environment. Install it with `pip install matplotlib` (or `pip install "
    "'nandoctor[plot]'`) and run again, or leave out --plot: the terminal "
    "chart and --json carry the same curve."
)
PNG_COLOURS = {"V": "tab:green", "D": "tab:cyan", "M": "tab:blue",
               "X": "tab:red", "C": "tab:orange"}

Grid = list[list[tuple[str, str]]]  # rows of (character, rich style)
Place = Callable[[float], int]  # a value to its column, or its row


@dataclass(frozen=True)
class Marker:
    letter: str
    label: str
    lr: float
    style: str


def markers(test: RangeTest) -> list[Marker]:
    """A mark for each rule's rate, the divergence and the script's rate."""
    summary = test.summary
    found: list[Marker] = []
    for letter, name in (("V", rules.VALLEY), ("D", rules.STEEPEST),
                         ("M", rules.MIN_DIV_10)):
        value = summary.rules[name]
        if value is not None:
            chosen = name == summary.suggested_by
            found.append(Marker(letter, words.RULE_NAMES[name], value.median,
                                "bold green" if chosen else "cyan"))
    if summary.divergence_lr is not None:
        found.append(Marker("X", "divergence", summary.divergence_lr,
                            "bold red"))
    if summary.current_lr:
        found.append(Marker("C", "script's rate", summary.current_lr,
                            "bold yellow"))
    return found


def y_range(reading: CurveReading) -> tuple[float, float]:
    end = reading.divergence_step
    shown = [p for p in reading.points
             if end is None or p.step <= end] or reading.points
    low = min(min(p.loss for p in shown), min(p.smoothed for p in shown))
    high = max(p.smoothed for p in shown)
    if high - low < 1e-12 * max(1.0, abs(high)):
        return low - 0.5, high + 0.5
    return low, high


def on_chart(reading: CurveReading, lr: float) -> bool:
    """Whether a rate lies within the swept range the chart draws."""
    rates = [p.lr for p in reading.points]
    return bool(rates) and min(rates) <= lr <= max(rates)


def text_chart(reading: CurveReading, marks: list[Marker], width: int,
               height: int = CHART_HEIGHT) -> Text:
    """The curve on a grid of characters; x is log10(lr)."""
    if not reading.points:
        return Text("(no finite loss to draw)", style="dim")
    columns = max(20, width - LABEL_WIDTH - 1)
    xs = [math.log10(p.lr) for p in reading.points]
    x_low, x_high = min(xs), max(max(xs), min(xs) + 1e-9)
    low, high = y_range(reading)

    def column(lr: float) -> int:
        at = (math.log10(lr) - x_low) / (x_high - x_low) * (columns - 1)
        return min(columns - 1, max(0, round(at)))

    def row(value: float) -> int:
        at = (high - value) / (high - low) * (height - 1)
        return min(height - 1, max(0, round(at)))

    grid: Grid = [[(" ", "")] * columns for _ in range(height)]
    # A rate outside the sweep (a script's rate below its start) would sit
    # at the edge as if it had been swept; the legend says where it is.
    shown = [m for m in marks if on_chart(reading, m.lr)]
    for mark in shown:
        for r in range(height):
            grid[r][column(mark.lr)] = (RULE, mark.style)
    _draw_points(grid, reading.points, column, row, high)
    for mark in shown:
        grid[0][column(mark.lr)] = (mark.letter, mark.style)
    decades = range(math.ceil(x_low), math.floor(x_high) + 1)
    return _frame(grid, low, high, decades, column)


def _draw_points(grid: Grid, points: list[CurvePoint], column: Place,
                 row: Place, high: float) -> None:
    for p in points:
        clipped = p.loss > high
        grid[row(p.loss)][column(p.lr)] = ((CLIPPED, "dim red") if clipped
                                           else (RAW, "dim"))
    for p in points:  # on top of the raw losses: it is what the rules read
        if p.smoothed <= high:
            grid[row(p.smoothed)][column(p.smoothed_lr)] = (SMOOTH, "bold")


def _frame(grid: Grid, low: float, high: float, decades: range,
           column: Place) -> Text:
    """Y labels at top, middle and bottom; a tick under each power of ten."""
    height, columns = len(grid), len(grid[0])
    labels = {0: high, height // 2: (high + low) / 2, height - 1: low}
    text = Text()
    for r, cells in enumerate(grid):
        label = f"{labels[r]:.4g}" if r in labels else ""
        axis = "┤" if label else "│"
        text.append(f"{label:>{LABEL_WIDTH - 1}} {axis}", "dim")
        for char, style in cells:
            text.append(char, style)
        text.append("\n")
    ticks = {column(10.0 ** d): f"1e{d:+03d}" for d in decades}
    axis = "".join("┬" if c in ticks else "─" for c in range(columns))
    text.append(" " * LABEL_WIDTH + "└" + axis + "\n", "dim")
    text.append(" " * (LABEL_WIDTH + 1) + _tick_labels(ticks, columns), "dim")
    return text


def _tick_labels(ticks: dict[int, str], columns: int) -> str:
    """Tick labels centred under their ticks, dropping any that would touch."""
    line = [" "] * (columns + 6)
    free_from = 0
    for at, label in sorted(ticks.items()):
        start = max(0, at - len(label) // 2)
        if start < free_from or start + len(label) > len(line):
            continue
        line[start:start + len(label)] = label
        free_from = start + len(label) + 1
    return "".join(line).rstrip()


# -- PNG ---------------------------------------------------------------------


def require_matplotlib() -> None:
    """Fails before any run when --plot cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NandoctorError(MATPLOTLIB_MISSING) from None


def write_png(test: RangeTest, path: Path) -> None:
    require_matplotlib()
    # The object API with the Agg canvas: no pyplot state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for repeat in test.repeats[1:]:
        points = repeat.reading.points
        axes.plot([p.smoothed_lr for p in points], [p.smoothed for p in points],
                  color="0.6", linewidth=0.8)
    points = test.repeats[0].reading.points
    axes.plot([p.lr for p in points], [p.loss for p in points], ".",
              color="0.55", markersize=3, label="loss")
    axes.plot([p.smoothed_lr for p in points], [p.smoothed for p in points],
              color="black", label="smoothed")
    for mark in markers(test):
        axes.axvline(mark.lr, color=PNG_COLOURS[mark.letter], linestyle="--",
                     linewidth=1, label=f"{mark.label} {words.rate(mark.lr)}")
    low, high = y_range(test.repeats[0].reading)
    pad = 0.05 * (high - low)
    axes.set_ylim(low - pad, high + pad)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (group 0)")
    axes.set_ylabel("loss")
    axes.set_title(f"lr sweep: {test.target.script}", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as exc:
        raise NandoctorError(f"{path}: cannot be written "
                             f"({exc.strerror}).") from None
