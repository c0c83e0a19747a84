"""Quantities computed from the watch history, shared by several rules.

Pure arithmetic over the per-step records; each is tested against a
hand-computed value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..evidence import Evidence

EARLY_STEPS = 20
WEIGHT_GAIN_LIMIT = 4.0
LAYER_GROWTH_LIMIT = 3.0
RECURRENT = ("RNN", "LSTM", "GRU")


@dataclass(frozen=True)
class Dynamics:
    """How the loss and gradients moved before the failure."""

    first_loss: Optional[float]
    min_loss: Optional[float]
    last_loss: Optional[float]
    rising_fraction: float
    first_grad: Optional[float]
    last_grad: Optional[float]
    grad_growth_per_step: Optional[float]
    steps: int

    @property
    def rises_from_start(self) -> bool:
        """The loss rose on most early steps and ended far above its start."""
        if self.first_loss is None or self.last_loss is None or self.steps < 2:
            return False
        grew = self.last_loss > 10 * max(self.first_loss, 1e-12)
        return self.rising_fraction >= 0.6 and grew

    @property
    def ran_away(self) -> bool:
        """The loss grew by orders of magnitude from its best before failing."""
        if self.min_loss is None or self.last_loss is None:
            return False
        return self.last_loss > 100 * max(self.min_loss, 1e-12)


def dynamics(ev: Evidence) -> Dynamics:
    bad = ev.bad_step
    steps = [s for s in ev.watch.steps if bad is None or s["step"] < bad]
    losses = [_num(s.get("loss")) for s in steps]
    losses = [v for v in losses if v is not None and math.isfinite(v)]
    grads = [_num(s.get("grad_norm")) for s in steps]
    grads = [v for v in grads if v is not None and math.isfinite(v) and v > 0]
    early = losses[:EARLY_STEPS]
    rises = sum(1 for a, b in zip(early, early[1:]) if b > a)
    growth = None
    if len(grads) >= 2:
        growth = (grads[-1] / grads[0]) ** (1 / (len(grads) - 1))
    return Dynamics(
        first_loss=losses[0] if losses else None,
        min_loss=min(losses) if losses else None,
        last_loss=losses[-1] if losses else None,
        rising_fraction=rises / max(1, len(early) - 1),
        first_grad=grads[0] if grads else None,
        last_grad=grads[-1] if grads else None,
        grad_growth_per_step=growth,
        steps=len(steps),
    )


def stale_gradients(ev: Evidence) -> tuple[int, int]:
    """(steps whose .grad still held the last step's gradient, steps checked)."""
    flags = [s["stale_grads"] for s in ev.watch.steps if "stale_grads" in s]
    return sum(1 for f in flags if f), len(flags)


def weight_gains(ev: Evidence) -> list[tuple[str, float, float]]:
    """(name, std, gain) per matrix, gain = std * sqrt(smaller fan).

    Default initialisations give a gain near or below 1 whichever way the
    matrix is used; `torch.randn` weights give sqrt(fan), far above it.
    """
    gains = []
    for w in ev.init_records_weights():
        std = _num(w.get("std"))
        if std is not None and math.isfinite(std):
            gains.append((w["name"], std, std * math.sqrt(min(w["fans"]))))
    return gains


def layer_growth(ev: Evidence) -> list[tuple[str, float]]:
    """(module, output std) at step 0, for layers in call order."""
    out = []
    for record in ev.init_records():
        std = (record.get("out") or {}).get("std")
        if isinstance(std, (int, float)):
            out.append((record.get("module", record.get("class")), float(std)))
    return out


def growing_layers(ev: Evidence) -> Optional[float]:
    """Median output-std ratio between consecutive layers, if it is large."""
    stds = [s for _, s in layer_growth(ev) if s > 0]
    if len(stds) < 3:
        return None
    ratios = sorted(b / a for a, b in zip(stds, stds[1:]))
    median = ratios[len(ratios) // 2]
    return median if median >= LAYER_GROWTH_LIMIT else None


def has_recurrent(ev: Evidence) -> bool:
    return any(any(r in (rec.get("class") or "") for r in RECURRENT)
               for rec in ev.init_records())


def _num(value: object) -> Optional[float]:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value)
    return None
