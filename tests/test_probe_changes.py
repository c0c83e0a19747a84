"""Probe changes applied in a child, on a real (small) script."""
from __future__ import annotations

import math

from conftest import SCRIPTS

from nandoctor.plan import Plan, Probe
from nandoctor.runner import run_pass

FAULTS = str(SCRIPTS / "faults.py")


def first_losses(probe: Probe | None, steps: int = 3) -> list[float]:
    plan = Plan(script=FAULTS, args=["--fault", "log", "--fixed"],
                max_steps=steps, probe=probe)
    result = run_pass("probe", plan, timeout=120)
    assert result.reason == "max_steps", result.end
    return result.losses()


def test_the_float64_probe_starts_from_the_baselines_weights():
    baseline = first_losses(None)
    doubled = first_losses(Probe(name="float64", float64=True))
    # Initialised in float64 the model would draw other weights: the first
    # loss would differ in the second digit (3.95 against 4.15 here).
    assert math.isclose(doubled[0], baseline[0], rel_tol=1e-6)
