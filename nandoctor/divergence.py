"""When a finite loss counts as diverged: a runaway above its best smoothed value.

Shared by the child (to stop early) and the parent (to report), so both agree.
No torch here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

SMOOTHING = 0.9


@dataclass
class RunawayDetector:
    """Flags a loss whose smoothed value stays above `factor` x its best.

    A spike that falls back within `patience` steps is not a divergence; the
    reported step is the first of the run of steps above the bound.
    """

    factor: float
    patience: int
    smoothed: Optional[float] = None
    best: float = math.inf
    first_loss: Optional[float] = None
    above_since: Optional[int] = None
    diverged_at: Optional[int] = None

    def update(self, step: int, loss: Optional[float]) -> Optional[int]:
        if loss is None or not math.isfinite(loss) or self.diverged_at is not None:
            return self.diverged_at
        if self.first_loss is None:
            self.first_loss = loss
        if self.smoothed is None:
            self.smoothed = loss
        else:
            self.smoothed = SMOOTHING * self.smoothed + (1 - SMOOTHING) * loss
        self.best = min(self.best, self.smoothed)
        if self._runs_away(loss):
            if self.above_since is None:
                self.above_since = step
            if step - self.above_since + 1 >= self.patience:
                self.diverged_at = self.above_since
        else:
            self.above_since = None
        return self.diverged_at

    def _runs_away(self, loss: float) -> bool:
        # The bound is relative to the best smoothed loss, and to the first loss
        # for losses that start near zero; a negative best gives no bound.
        reference = max(self.best, abs(self.first_loss or 0.0) * 1e-3)
        return reference > 0 and loss > self.factor * reference
