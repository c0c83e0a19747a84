"""The learning-rate range test inside the child: a `Change` on the rate.

Before each update every param group's rate is set on the sweep's schedule;
after it, the script's own rate (its scheduler's) is put back, so that a
scheduler that computes the next rate from the current one (StepLR) or
overwrites it (OneCycleLR) goes on as if the sweep were not there.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..plan import Sweep
from ..sweep import STOP_REASON, RunawayTracker, scheduled_lr
from .events import EventWriter
from .seed_offset import SeedOffset
from .watch import Change, StopRun


class LrSweep(Change):
    """Sets the rates of the optimizer created first; stops at divergence.

    Group i gets `rate(step) * base_i / base_0`, where base is the rate each
    group starts from (a scheduler's `initial_lr` when there is one, since a
    warm-up may start a group at 0): the groups keep the script's ratios and
    group 0 follows the schedule.
    """

    def __init__(self, sweep: Sweep, seed_offset: int,
                 events: EventWriter) -> None:
        self.sweep = sweep
        self.events = events
        self.seeds = SeedOffset(seed_offset)
        self.tracker = RunawayTracker(sweep.divergence_factor)
        self._anchor: Optional[float] = None
        self._factors: list[float] = []
        self._saved: list[float] = []

    def install(self) -> None:
        self.seeds.install()

    def remove(self) -> None:
        self.seeds.remove()

    def before_update(self, optimizer: torch.optim.Optimizer, step: int) -> bool:
        groups = optimizer.param_groups
        if len(self._factors) < len(groups):  # the first step, or a new group
            self._learn_factors(groups, step)
        self._saved = [_rate(g) for g in groups]
        rate = scheduled_lr(self.sweep.start_lr, self.sweep.end_lr,
                            self.sweep.steps, step)
        for group, factor in zip(groups, self._factors):
            _set_rate(group, rate * factor)
        return False

    def after_update(self, optimizer: torch.optim.Optimizer) -> None:
        for group, lr in zip(optimizer.param_groups, self._saved):
            _set_rate(group, lr)
        self._saved = []

    def after_step(self, step: int, loss: Optional[float]) -> None:
        if self.tracker.update(loss):
            raise StopRun(STOP_REASON)

    def _learn_factors(self, groups: list[dict], step: int) -> None:
        bases = [float(g.get("initial_lr", _rate(g))) for g in groups]
        if self._anchor is None:
            self._anchor = next((b for b in bases if b > 0), 0.0)
            # The script's own rates, before the first override: the
            # "current rate" the report compares with the suggestion.
            self.events.emit("sweep_start", step=step,
                             current_lrs=[_rate(g) for g in groups],
                             base_lrs=bases)
        anchor = self._anchor
        self._factors += [b / anchor if anchor else 1.0
                          for b in bases[len(self._factors):]]


def _rate(group: dict) -> float:
    return float(group["lr"])


def _set_rate(group: dict, value: float) -> None:
    # A tensor rate (capturable or fused optimizers) is updated in place:
    # the optimizer's kernels hold that very tensor.
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(value)
    else:
        group["lr"] = value
