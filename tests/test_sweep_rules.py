"""The reading of a range test, on synthetic curves with known answers."""
from __future__ import annotations

import math
import random

import pytest

from nandoctor import sweep
from nandoctor.sweep import (
    Bracket,
    RunawayTracker,
    read_curve,
    scheduled_lr,
    spread,
    summarize,
)

STEPS = 120
START, END = 1e-6, 10.0
DROP_AT = -3.0  # log10 of the rate where the synthetic loss falls fastest
BLOW_UP_AT = -0.5


def rates(steps: int = STEPS) -> list[float]:
    return [scheduled_lr(START, END, steps, i) for i in range(steps)]


def valley_loss(lr: float, noise: float = 0.0, rng: random.Random | None = None,
                depth: float = 2.0) -> float:
    """A plateau, a sigmoid fall centred on DROP_AT, then a blow-up."""
    x = math.log10(lr)
    loss = 1.0 + depth / (1.0 + math.exp(4.0 * (x - DROP_AT)))
    if x > BLOW_UP_AT:
        loss *= math.exp(12.0 * (x - BLOW_UP_AT))
    return loss + (rng.gauss(0.0, noise) if rng else 0.0)


def test_scheduled_lr_runs_exponentially_from_start_to_end():
    assert scheduled_lr(1e-4, 1.0, 5, 0) == pytest.approx(1e-4)
    assert scheduled_lr(1e-4, 1.0, 5, 2) == pytest.approx(1e-2)
    assert scheduled_lr(1e-4, 1.0, 5, 4) == pytest.approx(1.0)
    assert scheduled_lr(0.1, 0.1, 40, 17) == pytest.approx(0.1)


def test_clean_valley_is_read_with_high_confidence():
    lrs = rates()
    reading = read_curve(lrs, [valley_loss(lr) for lr in lrs], 4.0)

    assert reading.confidence == sweep.HIGH
    assert reading.warnings == ()
    steepest = reading.rules[sweep.STEEPEST].lr
    valley = reading.rules[sweep.VALLEY].lr
    minimum = reading.rules[sweep.MIN_DIV_10].lr
    # Oracle: the noise-free sigmoid falls fastest at DROP_AT. Read at the
    # rates it averages, the smoothed curve finds it within 0.3 decades (the
    # one-sided EMA skews a peak by less than its mean lag: this errs low).
    assert math.log10(steepest) == pytest.approx(DROP_AT, abs=0.3)
    assert steepest < valley < 10 * minimum
    assert reading.suggested_lr == valley
    assert math.log10(reading.divergence_lr) == pytest.approx(BLOW_UP_AT, abs=0.3)


def test_valley_point_is_two_thirds_of_the_way_down():
    lrs = rates()
    reading = read_curve(lrs, [valley_loss(lr) for lr in lrs], 4.0)
    by_step = {p.step: p for p in reading.points}
    first, last = reading.valley
    top = max(by_step[s].smoothed for s in range(first, last + 1))
    bottom = by_step[last].smoothed
    at = by_step[reading.rules[sweep.VALLEY].step].smoothed
    assert (top - at) / (top - bottom) == pytest.approx(2 / 3, abs=0.05)


def test_flat_curve_gives_a_warning_not_a_rate():
    rng = random.Random(0)
    lrs = rates()
    losses = [0.3 + rng.gauss(0.0, 0.01) for _ in lrs]

    reading = read_curve(lrs, losses, 4.0)

    assert reading.suggested_lr is None
    assert reading.confidence == sweep.NONE
    assert {sweep.FLAT, sweep.NOISY} & set(reading.warnings)
    assert sweep.NO_DIVERGENCE in reading.warnings


def test_valley_shallower_than_the_noise_is_called_noisy():
    rng = random.Random(1)
    lrs = rates()
    losses = [valley_loss(lr, noise=0.3, rng=rng, depth=0.3) for lr in lrs]

    reading = read_curve(lrs, losses, 4.0)

    assert sweep.NOISY in reading.warnings
    assert reading.suggested_lr is None


def test_noisy_but_deep_valley_still_gives_a_rate_near_the_clean_one():
    rng = random.Random(2)
    lrs = rates()
    clean = read_curve(lrs, [valley_loss(lr) for lr in lrs], 4.0)
    noisy = read_curve(lrs, [valley_loss(lr, 0.05, rng) for lr in lrs], 4.0)

    assert noisy.suggested_lr is not None
    assert noisy.confidence in (sweep.MEDIUM, sweep.HIGH)
    assert abs(math.log10(noisy.suggested_lr / clean.suggested_lr)) < 0.5


def test_nan_tail_is_dropped_and_named():
    lrs = rates()
    losses = [valley_loss(lr) for lr in lrs]
    cut = next(i for i, lr in enumerate(lrs) if math.log10(lr) > 0.0)
    losses[cut:] = [math.nan] * (len(losses) - cut)

    reading = read_curve(lrs, losses, divergence_factor=1e9)

    assert reading.nonfinite_step == cut
    assert all(math.isfinite(p.loss) for p in reading.points)
    assert max(p.step for p in reading.points) == cut - 1
    # The raw loss was already running away before the first NaN.
    assert reading.divergence_step is not None and reading.divergence_step < cut
    assert reading.suggested_lr is not None


def test_nonfinite_from_the_start_is_not_a_rate_problem():
    lrs = rates()
    losses = [1.0, 0.9] + [math.inf] * (len(lrs) - 2)

    reading = read_curve(lrs, losses, 4.0)

    assert sweep.EARLY_NONFINITE in reading.warnings
    assert reading.suggested_lr is None
    assert reading.divergence_step == 2


def test_too_few_steps_gives_a_warning():
    lrs = rates(10)
    reading = read_curve(lrs, [valley_loss(lr) for lr in lrs], 4.0)
    assert sweep.FEW_POINTS in reading.warnings
    assert reading.suggested_lr is None


def test_missing_losses_are_skipped():
    lrs = rates()
    losses: list[float | None] = [valley_loss(lr) for lr in lrs]
    losses[10] = None
    reading = read_curve(lrs, losses, 4.0)
    assert 10 not in {p.step for p in reading.points}
    assert reading.suggested_lr is not None


def test_tracker_stops_at_factor_times_best_and_at_nonfinite():
    tracker = RunawayTracker(factor=4.0, beta=0.0)  # no smoothing: raw values
    assert [tracker.update(v) for v in (2.0, 1.0, 3.9)] == [False, False, False]
    assert tracker.update(4.1)
    assert RunawayTracker(4.0).update(math.nan)
    assert not RunawayTracker(4.0).update(None)


def test_tracker_measures_negative_losses_from_their_scale():
    tracker = RunawayTracker(factor=4.0, beta=0.0)
    # A log-likelihood loss below zero: 4x "best" would be more negative.
    assert not any(tracker.update(v) for v in (-1.0, -2.0, -1.5))
    assert tracker.update(5.0)  # 7 above the best, more than 3 x |best|


def test_bracket_narrows_to_the_lowest_diverging_and_highest_stable_rate():
    bracket = Bracket(0.001, 0.1)
    narrowed = bracket.narrowed({0.005: False, 0.02: True, 0.05: True})
    assert (narrowed.low, narrowed.high) == (0.005, 0.02)
    assert narrowed.low_verified and narrowed.high_verified
    # Nothing diverged: the upper end stays the sweep's, unverified.
    unchanged = bracket.narrowed({0.01: False})
    assert unchanged.high == 0.1 and not unchanged.high_verified
    assert sweep.constant_rates(0.001, 0.1, 1) == [pytest.approx(0.01)]


def test_spread_takes_the_median_in_log_space():
    result = spread([1e-3, None, 1e-1, 1e-2])
    assert (result.low, result.high, result.count) == (1e-3, 1e-1, 3)
    assert result.median == pytest.approx(1e-2)
    assert spread([None]) is None


def test_summary_gives_margin_and_lowers_confidence_when_repeats_disagree():
    lrs = rates()
    clean = read_curve(lrs, [valley_loss(lr) for lr in lrs], 4.0)
    shifted = read_curve([lr * 100 for lr in lrs],
                         [valley_loss(lr) for lr in lrs], 4.0)

    one = summarize([clean], current_lr=clean.divergence_lr * 2)
    assert one.stability_margin == pytest.approx(2.0)
    assert sweep.CURRENT_ABOVE_DIVERGENCE in one.warnings

    two = summarize([clean, shifted], current_lr=None)
    assert two.confidence == sweep.LOW
    assert sweep.REPEATS_DISAGREE in two.warnings
    assert two.rules[sweep.VALLEY].count == 2


def test_constant_rate_divergence_replaces_the_sweeps():
    lrs = rates()
    reading = read_curve(lrs, [valley_loss(lr) for lr in lrs], 4.0)
    summary = summarize([reading], current_lr=0.01, constant_divergence_lr=0.05)
    assert summary.divergence_lr == 0.05
    assert summary.stability_margin == pytest.approx(0.2)
    assert summary.divergence.median == pytest.approx(reading.divergence_lr)


def test_script_that_ends_before_the_sweep_does_says_so():
    lrs = rates()[:60]
    reading = read_curve(lrs, [valley_loss(lr) for lr in lrs], 4.0,
                         planned_steps=STEPS)
    assert sweep.ENDED_EARLY in reading.warnings
    assert sweep.NO_DIVERGENCE not in reading.warnings
