"""The lr-sweep report, rendered from a synthetic sweep: golden text, JSON.

Set NANDOCTOR_UPDATE_GOLDEN=1 to rewrite tests/golden/sweep_report.txt after
a deliberate change of the output, and read the diff before committing it.
"""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

from rich.console import Console

from nandoctor.diagnose import Target
from nandoctor.plan import Plan, Sweep
from nandoctor.range_test import RangeTest, Repeat
from nandoctor.report import sweep_json, sweep_report
from nandoctor.runner import PassResult
from nandoctor.sweep import read_curve, scheduled_lr, summarize

GOLDEN = Path(__file__).resolve().parent / "golden" / "sweep_report.txt"
SWEEP = Sweep(start_lr=1e-6, end_lr=10.0, steps=100, divergence_factor=4.0)


def synthetic_test() -> RangeTest:
    """A plateau, a fall around 1e-3, a blow-up, then NaN: as a child reports."""
    lrs = [scheduled_lr(SWEEP.start_lr, SWEEP.end_lr, SWEEP.steps, i)
           for i in range(80)]
    losses = []
    for lr in lrs:
        x = math.log10(lr)
        loss = 1.0 + 2.0 / (1.0 + math.exp(4.0 * (x + 3.0)))
        losses.append(loss * math.exp(max(0.0, 12.0 * (x + 0.8))))
    losses[-1] = math.nan
    steps = [{"step": i, "loss": str(v) if math.isnan(v) else v, "lrs": [lr]}
             for i, (lr, v) in enumerate(zip(lrs, losses))]
    result = PassResult(name="sweep", plan=Plan(script="train.py"), steps=steps,
                        end={"reason": "sweep_diverged"})
    reading = read_curve(lrs, losses, SWEEP.divergence_factor)
    repeat = Repeat(index=0, seed_offset=0, result=result, reading=reading,
                    current_lrs=[0.03], base_lrs=[0.03])
    return RangeTest(target=Target(Path("train.py")), sweep=SWEEP,
                     repeats=[repeat], summary=summarize([reading], 0.03),
                     threads=1, seed=0, seconds=1.5)


def render(test: RangeTest) -> str:
    console = Console(width=100, record=True, color_system=None,
                      file=io.StringIO())
    sweep_report.render(test, console)
    return console.export_text()


def test_terminal_report_matches_golden_text():
    text = render(synthetic_test())
    if os.environ.get("NANDOCTOR_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_json_is_strict_and_names_the_nonfinite_tail():
    report = sweep_json.build(synthetic_test())
    text = sweep_json.dumps(report)  # allow_nan=False: raises on a bare NaN
    data = json.loads(text)
    last = data["curve"][-1]
    assert last["loss"] == "nan" and last["smoothed"] is None
    assert data["repeats"][0]["first_nonfinite_step"] == 79
    assert data["current_lr"] == 0.03
    assert data["stability_margin"] == data["current_lr"] / data["divergence_lr"]
    assert data["suggested_lr"] == data["rules"]["valley"]["lr"]


def test_a_rate_outside_the_sweep_is_named_off_the_chart_not_drawn_at_its_edge():
    test = synthetic_test()
    test.summary = summarize([test.repeats[0].reading], 1e-8)
    text = render(test)
    chart = text.split("loss against learning rate")[1].split("rates")[0]
    assert "script's rate 1.00e-08, off the chart" in " ".join(chart.split())
    assert "C" not in chart.split("1e-06")[0].replace("│", "")  # no edge mark
