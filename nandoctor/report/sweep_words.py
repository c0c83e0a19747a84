"""What `lr-sweep` says, in one place: headlines, rule names, warnings."""
from __future__ import annotations

import math
from typing import Optional

from .. import sweep as rules
from ..range_test import STATUS_CRASHED, RangeTest

RULE_NAMES = {
    rules.VALLEY: "valley",
    rules.STEEPEST: "steepest descent",
    rules.MIN_DIV_10: "minimum / 10",
}
RULE_HOW = {
    rules.VALLEY: "2/3 down the longest descent",
    rules.STEEPEST: "loss falls fastest per decade",
    rules.MIN_DIV_10: "a tenth of the lowest loss's rate",
}


def rate(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2e}"


def headline(test: RangeTest) -> str:
    summary = test.summary
    if test.status == STATUS_CRASHED:
        repeat = test.crash
        steps = len(repeat.result.steps) if repeat else 0
        return f"the script crashed after {steps} steps of the sweep"
    if summary.suggested_lr is None:
        return "no learning rate suggested: the curve cannot be trusted (below)"
    return (f"suggested learning rate {rate(summary.suggested_lr)} "
            f"(confidence {summary.confidence})")


def margin(test: RangeTest) -> tuple[str, str]:
    """The stability margin, and what it means for the script."""
    value = test.summary.stability_margin
    if value is None:
        return "—", "script's rate / divergence rate"
    if value >= 1:
        meaning = f"the script's rate is {times(value)} the divergence rate"
    else:
        meaning = f"the script's rate is {times(1 / value)} below divergence"
    if test.confirmation is None:
        # A swept rate runs away later than a constant one would.
        meaning += " as swept (an upper bound: constant-rate runs skipped)"
    return f"{value:.2g}", meaning


def times(factor: float) -> str:
    return f"{factor:.2g}x" if factor < 10 else f"{factor:,.0f}x"


def warnings(test: RangeTest) -> list[tuple[str, str]]:
    """(code, sentence) for every warning of the sweep."""
    return [(code, warning(code, test)) for code in test.summary.warnings]


def warning(code: str, test: RangeTest) -> str:
    reading = next((r.reading for r in test.repeats
                    if code in r.reading.warnings), test.repeats[0].reading)
    summary = test.summary
    if code == rules.EARLY_NONFINITE:
        step = reading.nonfinite_step
        return (f"the loss was non-finite from step {step}, long before the rate "
                "was high: this is not a learning-rate problem. Run `nandoctor "
                "diagnose` on the script.")
    if code == rules.FEW_POINTS:
        return (f"only {_usable(test)} steps before the loss diverged or the "
                "script ended: too few to read a curve. Add steps (--steps) "
                "and give the script enough epochs after `--`.")
    if code == rules.FLAT:
        drop = reading.relative_drop or 0.0
        return (f"the loss barely moves over the sweep (it falls {drop:.1%}): "
                "the model may already be trained, or the range does not reach "
                "rates that train it. No rate is suggested.")
    if code == rules.NOISY:
        depth = reading.depth_in_noise or 0.0
        return (f"the valley is only {depth:.1f}x the step-to-step noise deep: "
                "too noisy to trust. Use a larger batch, more --steps, or "
                "--repeats.")
    if code == rules.RULES_DISAGREE:
        return (f"the rules disagree by {reading.rules_spread:.1f} decades: "
                "read the curve before choosing.")
    if code == rules.NO_DIVERGENCE:
        return (f"the loss did not run away up to {rate(test.sweep.end_lr)}: "
                "the divergence lies above the range (raise --end-lr), or the "
                f"loss stays under {test.sweep.divergence_factor:g}x its best "
                "(lower sweep.divergence_factor).")
    if code == rules.REPEATS_DISAGREE:
        width = summary.suggested.decades if summary.suggested else math.nan
        return (f"the repeats' suggestions span {width:.1f} decades: the curve "
                "depends on the initialisation and the data order.")
    if code == rules.CURRENT_ABOVE_DIVERGENCE:
        return (f"the script's rate {rate(summary.current_lr)} is at or above "
                f"the divergence rate {rate(summary.divergence_lr)}: lower it.")
    if code == rules.ENDED_EARLY:
        last = reading.points[-1].lr if reading.points else test.sweep.start_lr
        return (f"the script ended after {len(test.repeats[0].result.steps)} of "
                f"{test.sweep.steps} steps, at rate {rate(last)}: higher rates "
                "were not tried. Give it more epochs after `--`.")
    if code == rules.SUGGESTION_DIVERGES:
        return ("the suggested rate is at or above the divergence rate: do not "
                "use it without a check.")
    return code


def _usable(test: RangeTest) -> int:
    reading = test.repeats[0].reading
    end = reading.divergence_step
    return sum(1 for p in reading.points if end is None or p.step < end)
