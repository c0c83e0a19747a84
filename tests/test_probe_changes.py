"""Probe changes applied in a child, on a real (small) script."""
from __future__ import annotations

import math

from conftest import SCRIPTS

from nandoctor.plan import Plan, Probe
from nandoctor.runner import run_pass

FAULTS = str(SCRIPTS / "faults.py")


def first_losses(probe: Probe | None, steps: int = 3,
                 args: tuple[str, ...] = ("--fault", "log", "--fixed")
                 ) -> list[float]:
    plan = Plan(script=FAULTS, args=list(args), max_steps=steps, probe=probe,
                stop_after_nonfinite=None)
    result = run_pass("probe", plan, timeout=120)
    assert result.reason == "max_steps", result.end
    return result.losses()


def test_the_float64_probe_starts_from_the_baselines_weights():
    baseline = first_losses(None)
    doubled = first_losses(Probe(name="float64", float64=True))
    # Initialised in float64 the model would draw other weights: the first
    # loss would differ in the second digit (3.95 against 4.15 here).
    assert math.isclose(doubled[0], baseline[0], rel_tol=1e-6)


def line_of(text: str) -> int:
    lines = (SCRIPTS / "faults.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


def test_a_guard_on_a_log_also_guards_the_division_by_the_same_zero_on_its_line():
    line = line_of("return 0.5 * (torch.log(var)")
    args = ("--fault", "gauss_var")
    assert not all(map(math.isfinite, first_losses(None, 5, args)))
    guard = Probe(name="eps_guard", guard_op="aten.log", guard_file=FAULTS,
                  guard_line=line)
    # log(var) guarded alone would leave (y - mu)**2 / var at inf.
    assert all(map(math.isfinite, first_losses(guard, 5, args)))
