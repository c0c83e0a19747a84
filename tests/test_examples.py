"""The bundled examples do what their docstrings claim, run as plain scripts."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nandoctor.examples import catalog

from conftest import run_cli

# Step (numbered from 0) whose printed loss is the first non-finite one in a
# plain run at the default arguments: `nandoctor diagnose` must report it.
FIRST_NONFINITE_LOSS = {
    "sigmoid_bce_log_zero": 355,
    "mlp_lr_too_high": 5,
    "nan_in_features": 7,
}
TRAINS_FINE = ("healthy_mlp", "sigmoid_bce_log_zero_fixed",
               "mlp_lr_too_high_fixed", "nan_in_features_fixed")

_LOSS_LINE = re.compile(r"step (\d+) loss (\S+)")


def _path(name: str) -> str:
    return next(e.path for e in catalog() if e.name == name)


def _plain_run(name: str, *args: str) -> list[tuple[int, float]]:
    """Runs an example as `python script.py`; its (step, loss) lines."""
    # One thread: cheaper on a busy machine, and these small matrices give
    # the same numbers with 1, 2 or 4 threads (checked).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, _path(name), "--log-every", "1", *args],
        capture_output=True, text=True, timeout=120, env=env,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return [(int(m[1]), float(m[2])) for m in _LOSS_LINE.finditer(done.stdout)]


def test_catalog_holds_every_script_with_a_summary() -> None:
    examples = catalog()
    names = {e.name for e in examples}

    assert names >= {*FIRST_NONFINITE_LOSS, *TRAINS_FINE}
    for example in examples:
        assert Path(example.path).is_absolute() and Path(example.path).is_file()
        assert example.summary and not example.summary.endswith(" ")


def test_examples_command_lists_each_script_and_its_command() -> None:
    done = run_cli("examples")

    assert done.returncode == 0, done.stderr
    for example in catalog():
        assert example.name in done.stdout
        assert f"nandoctor diagnose {example.path}" in done.stdout


@pytest.mark.parametrize("name", sorted(FIRST_NONFINITE_LOSS))
def test_failing_example_goes_nonfinite_at_its_documented_step(name: str) -> None:
    losses = _plain_run(name)

    first_bad = next(step for step, loss in losses if not math.isfinite(loss))
    assert first_bad == FIRST_NONFINITE_LOSS[name]
    assert all(math.isfinite(loss) for _, loss in losses[:first_bad])


@pytest.mark.parametrize("name", TRAINS_FINE)
def test_fixed_example_trains_to_a_finite_loss(name: str) -> None:
    losses = _plain_run(name)

    assert len(losses) > 50
    assert all(math.isfinite(loss) for _, loss in losses)
    assert losses[-1][1] < losses[0][1] / 2


def test_diabetes_regressor_trains_at_a_tenth_of_the_rate() -> None:
    losses = _plain_run("mlp_lr_too_high", "--lr", "0.15")

    assert all(math.isfinite(loss) for _, loss in losses)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIRST_NONFINITE_LOSS))
def test_diagnose_reports_the_step_a_plain_run_shows(name: str,
                                                     tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = run_cli("diagnose", "--no-probes", "--quiet", "--json", str(report),
                   _path(name), cwd=tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    first = json.loads(report.read_text())["first_nonfinite"]
    assert first["step"] == FIRST_NONFINITE_LOSS[name]


@pytest.mark.slow
def test_diagnose_finds_the_healthy_example_healthy(tmp_path: Path) -> None:
    done = run_cli("diagnose", "--no-probes", "--quiet", _path("healthy_mlp"),
                   cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
