"""Warning signs seen before anything broke, also on runs that stayed finite."""
from __future__ import annotations

import math

from ..evidence import Evidence
from ..findings import Cause, Finding, Fix, Severity

GROWING_GRAD_CODE = "ND601"
SATURATION_CODE = "ND602"
GROWTH_FACTOR = 100.0
WINDOW = 50
SATURATED_FRACTION = 0.5


def check(ev: Evidence) -> list[Finding]:
    if ev.bad_step is not None:
        return []  # the failure itself is explained by the other rules
    return [f for f in (_growing_gradients(ev), _saturation(ev)) if f is not None]


def _growing_gradients(ev: Evidence):
    norms = [v for _, v in ev.series("grad_norm") if v > 0 and math.isfinite(v)]
    if len(norms) < WINDOW:
        return None
    tail = norms[-WINDOW:]
    growth = tail[-1] / tail[0]
    rising = sum(1 for a, b in zip(tail, tail[1:]) if b > a) / (len(tail) - 1)
    if growth < GROWTH_FACTOR or rising < 0.6:
        return None
    return Finding(
        code=GROWING_GRAD_CODE, cause=Cause.EXPLODING_GRADIENTS,
        title="the gradient norm is growing steadily", severity=Severity.WARNING,
        confidence=0.4,
        evidence=(f"over the last {WINDOW} steps the gradient norm grew "
                  f"{growth:.3g}x ({tail[0]:.3g} -> {tail[-1]:.3g}), rising on "
                  f"{rising:.0%} of steps",),
        fixes=(Fix(text="Watch it with a longer run; clip the gradient norm or "
                        "lower the rate if it keeps growing"),),
        role="precursor")


def _saturation(ev: Evidence):
    samples = [a for s in ev.watch.steps for a in s.get("activations", [])]
    if not samples:
        return None
    worst = max(samples, key=lambda a: a.get("saturated", 0))
    if worst.get("saturated", 0) < SATURATED_FRACTION:
        return None
    return Finding(
        code=SATURATION_CODE, cause=Cause.LOG_OF_NONPOSITIVE,
        title=f"{worst['class']} outputs are saturated", severity=Severity.WARNING,
        confidence=0.4,
        evidence=(f"{worst['saturated']:.0%} of a {worst['class']} layer's outputs "
                  "were exactly at their limits: their gradient is zero, and a "
                  "log of them is -inf",),
        fixes=(Fix(text="Feed logits to a log-space loss (BCEWithLogitsLoss, "
                        "cross_entropy) instead of saturating probabilities"),),
        role="precursor")
