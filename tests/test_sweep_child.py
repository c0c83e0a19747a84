"""The range test inside the child: rates, param groups, schedulers, seeds."""
from __future__ import annotations

import ast
import random
import subprocess
import sys

import numpy
import pytest
import torch
from conftest import SCRIPTS

from nandoctor.capture.seed_offset import SeedOffset
from nandoctor.config import Settings
from nandoctor.diagnose import check_target
from nandoctor.plan import Sweep
from nandoctor.range_test import largest_stable_lr, sweep_plan
from nandoctor.runner import PassResult, run_pass
from nandoctor.sweep import scheduled_lr

GROUPS = SCRIPTS / "sweep_groups.py"
WIDE = Sweep(start_lr=1e-4, end_lr=100.0, steps=60, divergence_factor=4.0)
GENTLE = Sweep(start_lr=1e-4, end_lr=1e-2, steps=40, divergence_factor=4.0)


def sweep(args: list[str], schedule: Sweep) -> PassResult:
    target = check_target(str(GROUPS), args)
    plan = sweep_plan(target, Settings(), threads=1, sweep=schedule)
    return run_pass("sweep", plan, timeout=120)


def final_lrs(output: str) -> list[float]:
    line = next(x for x in output.splitlines() if x.startswith("final lrs"))
    return ast.literal_eval(line.removeprefix("final lrs "))


@pytest.fixture(scope="module")
def wide() -> PassResult:
    return sweep([], WIDE)


def test_every_step_runs_at_the_scheduled_rate(wide: PassResult):
    assert wide.steps
    for record in wide.steps:
        rate = scheduled_lr(WIDE.start_lr, WIDE.end_lr, WIDE.steps,
                            record["step"])
        assert record["lrs"][0] == pytest.approx(rate)


def test_two_param_groups_keep_their_ratio(wide: PassResult):
    for record in wide.steps:
        first, second = record["lrs"]
        assert second / first == pytest.approx(0.1)


def test_sweep_stops_at_divergence(wide: PassResult):
    assert wide.reason == "sweep_diverged"
    assert len(wide.steps) < WIDE.steps


def test_current_rate_is_recorded_before_the_override(wide: PassResult):
    (start,) = wide.of_kind("sweep_start")
    assert start["current_lrs"] == [0.01, 0.001]


@pytest.mark.parametrize("scheduler", ["step", "onecycle"])
def test_sweep_overrides_the_scheduler_and_gives_its_rate_back(scheduler: str):
    args = ["--scheduler", scheduler, "--steps", "30"]
    plain = subprocess.run([sys.executable, str(GROUPS), *args], text=True,
                           capture_output=True, check=True, timeout=60)

    swept = sweep(args, GENTLE)

    assert swept.reason == "finished"
    for record in swept.steps:
        rate = scheduled_lr(GENTLE.start_lr, GENTLE.end_lr, GENTLE.steps,
                            record["step"])
        assert record["lrs"] == pytest.approx([rate, rate / 10])
    # After the sweep's last override the scheduler's own rates are back,
    # so it ends where it ends without the sweep.
    assert final_lrs(swept.output_tail) == pytest.approx(final_lrs(plain.stdout))


def test_seed_offset_shifts_every_seeding_function_and_restores_them():
    originals = (torch.manual_seed, random.seed, numpy.random.seed,
                 numpy.random.default_rng, numpy.random.RandomState)
    offset = SeedOffset(7)
    offset.install()
    try:
        torch.manual_seed(3)
        assert torch.initial_seed() == 10
        torch.random.manual_seed(seed=4)
        assert torch.initial_seed() == 11
        random.seed(a=1)
        shifted_random = random.random()
        numpy.random.seed(0)
        shifted_numpy = numpy.random.rand()
        shifted_rng = numpy.random.default_rng(0).random()
        state = numpy.random.RandomState(0)
        assert isinstance(state, numpy.random.RandomState)
        shifted_state = state.rand()
    finally:
        offset.remove()

    assert (torch.manual_seed, random.seed, numpy.random.seed,
            numpy.random.default_rng, numpy.random.RandomState) == originals
    random.seed(8)
    assert shifted_random == random.random()
    numpy.random.seed(7)
    assert shifted_numpy == numpy.random.rand()
    assert shifted_rng == numpy.random.default_rng(7).random()
    assert shifted_state == numpy.random.RandomState(7).rand()


def test_zero_offset_patches_nothing():
    before = torch.manual_seed
    offset = SeedOffset(0)
    offset.install()
    assert torch.manual_seed is before
    offset.remove()


@pytest.mark.slow
def test_largest_stable_lr_is_a_constant_rate_below_the_sweeps_divergence():
    settings = Settings()
    settings.sweep.start_lr, settings.sweep.end_lr = WIDE.start_lr, WIDE.end_lr
    stable = largest_stable_lr(check_target(str(GROUPS), []), settings)
    assert stable is not None
    # The wide sweep over 60 steps diverges around 1-10; a constant rate
    # held from the first step gives way lower, never higher.
    assert WIDE.start_lr < stable < 10.0
