"""Reading a learning-rate range test: smoothing, suggestions, confidence.

Pure functions over plain lists: no torch, no processes, no rendering. The
child imports `scheduled_lr` and `RunawayTracker` from here so that the step
it stops at is the one the parent reads.

The curve is read against x = log10(lr). The loss is smoothed with a
bias-corrected exponential moving average, and so is x, with the same
weights: a smoothed loss is an average over the last ~1/(1-beta) steps, so it
belongs at the average rate of those steps. Pairing it with the current rate
instead would shift every suggestion towards higher rates by up to the lag,
~0.7 decades for 100 steps over 8 decades.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Optional, Sequence

SMOOTHING = 0.9
# How the child reports a sweep it stopped at the divergence.
STOP_REASON = "sweep_diverged"
# The valley rule's point: where the smoothed loss has fallen this fraction
# of the way from the valley's top to its bottom.
VALLEY_FRACTION = 2 / 3
# Rises of the smoothed loss smaller than this many of its noise deviations
# do not end a descent.
VALLEY_TOLERANCE = 2.0
# Below these a curve is flat or noisy: no suggestion is presented.
MIN_POINTS = 15
MIN_RELATIVE_DROP = 0.01
MIN_DEPTH_IN_NOISE = 3.0
# Above these the suggestion is trusted: a valley this deep in noise units,
# rules this close (in decades), repeats this close (in decades).
HIGH_DEPTH_IN_NOISE = 10.0
AGREE_DECADES = 1.3
DISAGREE_DECADES = 2.0
REPEAT_AGREE_DECADES = 0.5
REPEAT_DISAGREE_DECADES = 1.0

VALLEY = "valley"
STEEPEST = "steepest"
MIN_DIV_10 = "min_div_10"
RULES = (VALLEY, STEEPEST, MIN_DIV_10)

HIGH, MEDIUM, LOW, NONE = "high", "medium", "low", "none"
_CONFIDENCE_ORDER = (NONE, LOW, MEDIUM, HIGH)

# Warning codes; report/sweep_words.py holds their words.
FEW_POINTS = "few_points"
EARLY_NONFINITE = "early_nonfinite"
FLAT = "flat"
NOISY = "noisy"
RULES_DISAGREE = "rules_disagree"
NO_DIVERGENCE = "no_divergence"
REPEATS_DISAGREE = "repeats_disagree"
CURRENT_ABOVE_DIVERGENCE = "current_above_divergence"
SUGGESTION_DIVERGES = "suggestion_diverges"
ENDED_EARLY = "ended_early"


def scheduled_lr(start: float, end: float, steps: int, step: int) -> float:
    """The sweep's rate at `step`: exponential from `start` (step 0) to `end`."""
    if steps <= 1:
        return start
    return start * (end / start) ** (min(step, steps - 1) / (steps - 1))


def constant_rates(low: float, high: float, count: int) -> list[float]:
    """`count` rates evenly spaced in log10, strictly between low and high."""
    ratio = high / low
    return [low * ratio ** (k / (count + 1)) for k in range(1, count + 1)]


@dataclass(frozen=True)
class Bracket:
    """Where a constant rate starts to diverge: `low` ran stable for the
    horizon, `high` diverged; either end is unverified until a run says so.

    A sweep only bounds this from above: a rate held for one step shows
    nothing until the unstable direction, which lower rates had nearly
    removed, has grown back, which can take the rate ~5x further.
    """

    low: float
    high: float
    low_verified: bool = False
    high_verified: bool = False

    def narrowed(self, outcomes: dict[float, bool]) -> Bracket:
        """The bracket after constant-rate runs: rate -> diverged."""
        diverged = [r for r, bad in outcomes.items() if bad and r < self.high]
        high, high_ok = (min(diverged), True) if diverged else (
            self.high, self.high_verified)
        stable = [r for r, bad in outcomes.items()
                  if not bad and self.low < r < high]
        low, low_ok = (max(stable), True) if stable else (
            self.low, self.low_verified)
        return Bracket(low, high, low_ok, high_ok)


def runs_away(smoothed: float, best: float, first: float, factor: float) -> bool:
    """Smoothed loss above `factor` x its best; for a best near or below zero,
    the same distance measured in a scale from the first loss."""
    scale = max(abs(best), 1e-3 * abs(first))
    return scale > 0 and smoothed - best > (factor - 1) * scale


class RunawayTracker:
    """Bias-corrected EMA of the loss; says when the sweep has diverged."""

    def __init__(self, factor: float, beta: float = SMOOTHING) -> None:
        self.factor = factor
        self.beta = beta
        self.best = math.inf
        self._average = 0.0
        self._count = 0
        self._first: Optional[float] = None

    def update(self, loss: Optional[float]) -> bool:
        if loss is None:
            return False
        if not math.isfinite(loss):
            return True
        self._count += 1
        self._average = self.beta * self._average + (1 - self.beta) * loss
        smoothed = self._average / (1 - self.beta ** self._count)
        if self._first is None:
            self._first = smoothed
        self.best = min(self.best, smoothed)
        return runs_away(smoothed, self.best, self._first, self.factor)


def ema(values: Sequence[float], beta: float = SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average: the first value is kept."""
    out, average = [], 0.0
    for n, value in enumerate(values, start=1):
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta ** n))
    return out


@dataclass(frozen=True)
class CurvePoint:
    step: int
    lr: float  # the rate applied at this step (group 0's)
    loss: float
    smoothed: float
    smoothed_lr: float  # where the smoothed loss belongs: see the module doc


@dataclass(frozen=True)
class RuleValue:
    name: str
    lr: Optional[float]
    step: Optional[int] = None  # the curve point it was read at


@dataclass(frozen=True)
class CurveReading:
    """What one sweep's curve says; the numbers behind every warning."""

    points: list[CurvePoint]
    rules: dict[str, RuleValue]
    suggested_lr: Optional[float]
    suggested_by: Optional[str]  # the rule whose rate is the suggestion
    divergence_lr: Optional[float]
    divergence_step: Optional[int]
    nonfinite_step: Optional[int]  # first non-finite loss: the dropped tail
    noise: float  # robust deviation of one step's loss
    valley: Optional[tuple[int, int]]  # first and last step of the valley
    depth_in_noise: Optional[float]
    relative_drop: Optional[float]
    rules_spread: Optional[float]  # decades between the rules' rates
    confidence: str
    warnings: tuple[str, ...] = ()


def read_curve(lrs: Sequence[float], losses: Sequence[Optional[float]],
               divergence_factor: float, planned_steps: Optional[int] = None,
               beta: float = SMOOTHING) -> CurveReading:
    """Reads one sweep; `lrs[i]` and `losses[i]` belong to step i of the
    `planned_steps` the sweep was to take."""
    nonfinite = next((i for i, v in enumerate(losses)
                      if v is not None and not math.isfinite(v)), None)
    end = len(losses) if nonfinite is None else nonfinite
    kept = [(i, v) for i, v in enumerate(losses[:end]) if v is not None]
    points = _smooth_points(kept, lrs, beta)

    stop = _stop_index(points, divergence_factor, beta)
    if stop is None and nonfinite is not None:
        stop = len(points)  # the non-finite step, just past the last point
    runaway = _runaway_start(points, stop)
    noise = _noise([p.loss for p in points[:runaway]])
    divergence_step = None
    if runaway is not None and runaway < len(points):
        divergence_step = points[runaway].step
    elif runaway is not None:
        divergence_step = nonfinite
    divergence_lr = None if divergence_step is None else lrs[divergence_step]

    tolerance = VALLEY_TOLERANCE * noise * math.sqrt((1 - beta) / (1 + beta))
    valley = _valley(points, tolerance)
    rules = {
        VALLEY: _valley_point(points, valley),
        STEEPEST: _steepest(points, half_width=max(1, round(0.5 / (1 - beta)))),
        MIN_DIV_10: _min_div_10(points),
    }
    # The script ran out of steps: the rates above its last were never tried.
    ended_early = bool(planned_steps) and len(losses) < planned_steps
    return _judge(points, rules, valley, noise, divergence_step, divergence_lr,
                  nonfinite, ended_early)


def _smooth_points(kept: list[tuple[int, float]], lrs: Sequence[float],
                   beta: float) -> list[CurvePoint]:
    """The curve's points from (step, loss) pairs, smoothed in loss and x."""
    values = [float(v) for _, v in kept]
    xs = ema([math.log10(lrs[i]) for i, _ in kept], beta)
    return [CurvePoint(step=i, lr=lrs[i], loss=v, smoothed=s,
                       smoothed_lr=10 ** x)
            for (i, v), s, x in zip(kept, ema(values, beta), xs)]


def _stop_index(points: list[CurvePoint], factor: float,
                beta: float) -> Optional[int]:
    """The point at which the child's tracker says the loss has diverged."""
    tracker = RunawayTracker(factor, beta)
    return next((k for k, p in enumerate(points) if tracker.update(p.loss)),
                None)


def _runaway_start(points: list[CurvePoint],
                   stop: Optional[int]) -> Optional[int]:
    """Where the loss first runs away: the start of the last unbroken run of
    raw losses above the best smoothed loss (plus two noise deviations) that
    leads into the stop. The smoothed curve crosses later, by its lag.
    `stop == len(points)` stands for a non-finite loss after the last point."""
    if stop is None:
        return None
    best = min((p.smoothed for p in points[: stop + 1]), default=math.inf)
    bound = best + 2 * _noise([p.loss for p in points[:stop]])
    start = stop
    while start > 0 and points[start - 1].loss > bound:
        start -= 1
    return start


def _noise(values: Sequence[float]) -> float:
    """Deviation of one step's loss, from second differences, which a smooth
    trend barely moves: var(x[i+1] - 2x[i] + x[i-1]) = 6 var(noise).
    The median absolute deviation keeps a few spikes from counting."""
    if len(values) < 5:
        return 0.0
    second = [values[i + 1] - 2 * values[i] + values[i - 1]
              for i in range(1, len(values) - 1)]
    centre = statistics.median(second)
    mad = statistics.median(abs(d - centre) for d in second)
    return 1.4826 * mad / math.sqrt(6)


def _valley(points: list[CurvePoint],
            tolerance: float) -> Optional[tuple[int, int]]:
    """The longest descending stretch of the smoothed curve, as point indices.

    From a start, the stretch goes on while the smoothed loss stays within
    `tolerance` of the lowest value reached since the start (small bumps of
    noise do not end a descent), and ends at that lowest value. Longest in
    steps, which on an exponential schedule is longest in decades.
    """
    best: Optional[tuple[int, int]] = None
    start = 0
    while start < len(points) - 1:
        low = start
        for i in range(start + 1, len(points)):
            if points[i].smoothed > points[low].smoothed + tolerance:
                break
            if points[i].smoothed <= points[low].smoothed:
                low = i
        if low > start and (best is None or low - start > best[1] - best[0]):
            best = (start, low)
        start = max(low, start + 1)
    return best


def _valley_point(points: list[CurvePoint],
                  valley: Optional[tuple[int, int]]) -> RuleValue:
    """The first point after the valley's top where the smoothed loss has
    come VALLEY_FRACTION of the way down: the rate trains fast, and stays
    clear of the bottom, past which the curve turns towards divergence."""
    if valley is None:
        return RuleValue(VALLEY, None)
    first, last = valley
    top = max(range(first, last + 1), key=lambda i: points[i].smoothed)
    drop = points[top].smoothed - points[last].smoothed
    level = points[top].smoothed - VALLEY_FRACTION * drop
    at = next(i for i in range(top, last + 1) if points[i].smoothed <= level)
    return RuleValue(VALLEY, points[at].smoothed_lr, points[at].step)


def _steepest(points: list[CurvePoint], half_width: int) -> RuleValue:
    """Most negative slope d(smoothed loss)/d(log10 lr) before the minimum,
    as a central difference over `half_width` points each side (about half
    the smoothing window), which keeps step-to-step noise out of the slope."""
    bottom = _argmin(points)
    best, at = 0.0, None
    for i in range(half_width, bottom - half_width + 1):
        a, b = points[i - half_width], points[i + half_width]
        run = math.log10(b.smoothed_lr) - math.log10(a.smoothed_lr)
        if run > 0 and (b.smoothed - a.smoothed) / run < best:
            best, at = (b.smoothed - a.smoothed) / run, i
    if at is None:
        return RuleValue(STEEPEST, None)
    return RuleValue(STEEPEST, points[at].smoothed_lr, points[at].step)


def _min_div_10(points: list[CurvePoint]) -> RuleValue:
    if not points:
        return RuleValue(MIN_DIV_10, None)
    bottom = points[_argmin(points)]
    return RuleValue(MIN_DIV_10, bottom.smoothed_lr / 10, bottom.step)


def _argmin(points: list[CurvePoint]) -> int:
    return min(range(len(points)), key=lambda i: points[i].smoothed, default=0)


def decades(values: Sequence[Optional[float]]) -> Optional[float]:
    """Width of a set of rates in decades: log10(max / min)."""
    logs = [math.log10(v) for v in values if v is not None and v > 0]
    return max(logs) - min(logs) if len(logs) >= 2 else None


def _judge(points: list[CurvePoint], rules: dict[str, RuleValue],
           valley: Optional[tuple[int, int]], noise: float,
           divergence_step: Optional[int], divergence_lr: Optional[float],
           nonfinite: Optional[int], ended_early: bool) -> CurveReading:
    warnings: list[str] = []
    depth = relative = None
    if valley is not None:
        top = max(p.smoothed for p in points[valley[0]: valley[1] + 1])
        drop = top - points[valley[1]].smoothed
        depth = drop / noise if noise > 0 else math.inf
        relative = drop / abs(top) if top else math.inf
    spread = decades([r.lr for r in rules.values()])
    usable = sum(1 for p in points if divergence_step is None
                 or p.step < divergence_step)

    if nonfinite is not None and nonfinite < MIN_POINTS:
        warnings.append(EARLY_NONFINITE)
    elif usable < MIN_POINTS:
        warnings.append(FEW_POINTS)
    elif relative is None or relative < MIN_RELATIVE_DROP:
        warnings.append(FLAT)
    elif depth is not None and depth < MIN_DEPTH_IN_NOISE:
        warnings.append(NOISY)
    if spread is not None and spread > DISAGREE_DECADES:
        warnings.append(RULES_DISAGREE)
    if divergence_lr is None:
        warnings.append(ENDED_EARLY if ended_early else NO_DIVERGENCE)

    confidence = _confidence(warnings, depth, spread)
    by = next((name for name in (VALLEY, STEEPEST) if rules[name].lr), None)
    if confidence == NONE:
        by = None
    return CurveReading(
        points=points, rules=rules,
        suggested_lr=rules[by].lr if by else None, suggested_by=by,
        divergence_lr=divergence_lr, divergence_step=divergence_step,
        nonfinite_step=nonfinite, noise=noise, valley=_steps_of(points, valley),
        depth_in_noise=depth, relative_drop=relative, rules_spread=spread,
        confidence=confidence, warnings=tuple(warnings))


def _confidence(warnings: list[str], depth: Optional[float],
                spread: Optional[float]) -> str:
    if {EARLY_NONFINITE, FEW_POINTS, FLAT, NOISY} & set(warnings):
        return NONE
    if RULES_DISAGREE in warnings or depth is None:
        return LOW
    if depth < 2 * MIN_DEPTH_IN_NOISE:
        return LOW
    agree = spread is not None and spread <= AGREE_DECADES
    return HIGH if depth >= HIGH_DEPTH_IN_NOISE and agree else MEDIUM


def _steps_of(points: list[CurvePoint],
              valley: Optional[tuple[int, int]]) -> Optional[tuple[int, int]]:
    if valley is None:
        return None
    return points[valley[0]].step, points[valley[1]].step


# -- several repeats --------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    low: float
    median: float
    high: float
    count: int

    @property
    def decades(self) -> float:
        return math.log10(self.high / self.low) if self.low > 0 else math.inf


def spread(values: Sequence[Optional[float]]) -> Optional[Spread]:
    """Min, median and max of the values present; the median of rates is
    taken on log10, where the rates are spread evenly."""
    present = sorted(v for v in values if v is not None and v > 0)
    if not present:
        return None
    middle = 10 ** statistics.median(math.log10(v) for v in present)
    return Spread(present[0], middle, present[-1], len(present))


@dataclass(frozen=True)
class SweepSummary:
    """The numbers of all repeats together: medians, spreads, one verdict."""

    suggested_lr: Optional[float]
    suggested_by: Optional[str]
    confidence: str
    rules: dict[str, Optional[Spread]]
    suggested: Optional[Spread]
    divergence: Optional[Spread]  # the sweeps'
    divergence_lr: Optional[float]  # at a constant rate when confirmed
    current_lr: Optional[float]
    stability_margin: Optional[float]  # current / divergence
    warnings: tuple[str, ...] = field(default_factory=tuple)


def summarize(readings: Sequence[CurveReading], current_lr: Optional[float],
              constant_divergence_lr: Optional[float] = None) -> SweepSummary:
    """One verdict over the repeats: the median of each number, and the
    lowest confidence of any repeat, lowered again when the repeats' own
    suggestions lie far apart. A divergence found at a constant rate
    replaces the sweeps' (an upper bound) as the divergence rate."""
    suggested = spread([r.suggested_lr for r in readings])
    divergence = spread([r.divergence_lr for r in readings])
    divergence_lr = constant_divergence_lr
    if divergence_lr is None and divergence is not None:
        divergence_lr = divergence.median
    warnings = list(dict.fromkeys(w for r in readings for w in r.warnings))
    confidence = min((r.confidence for r in readings),
                     key=_CONFIDENCE_ORDER.index, default=NONE)
    if suggested is not None and suggested.count > 1:
        if suggested.decades > REPEAT_DISAGREE_DECADES:
            confidence = _lower(confidence, LOW)
            warnings.append(REPEATS_DISAGREE)
        elif suggested.decades > REPEAT_AGREE_DECADES:
            confidence = _lower(confidence, MEDIUM)
    margin = None
    if current_lr is not None and divergence_lr is not None:
        margin = current_lr / divergence_lr
        if margin >= 1:
            warnings.append(CURRENT_ABOVE_DIVERGENCE)
    if suggested and divergence_lr and suggested.median >= divergence_lr:
        confidence = _lower(confidence, LOW)
        warnings.append(SUGGESTION_DIVERGES)
    trusted = suggested is not None and confidence != NONE
    by = statistics.mode([r.suggested_by for r in readings if r.suggested_by]
                         or [None])
    return SweepSummary(
        suggested_lr=suggested.median if trusted else None,
        suggested_by=by if trusted else None,
        confidence=confidence,
        rules={name: spread([r.rules[name].lr for r in readings])
               for name in RULES},
        suggested=suggested, divergence=divergence, divergence_lr=divergence_lr,
        current_lr=current_lr, stability_margin=margin,
        warnings=tuple(warnings))


def _lower(confidence: str, cap: str) -> str:
    return min(confidence, cap, key=_CONFIDENCE_ORDER.index)
