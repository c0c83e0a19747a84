"""`nandoctor lr-sweep` as a user runs it: exit codes, JSON, PNG, messages."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from conftest import SCRIPTS, run_cli

from nandoctor import cli
from nandoctor.report.sweep_plot import MATPLOTLIB_MISSING

GROUPS = str(SCRIPTS / "sweep_groups.py")
WIDE = ["--steps", "60", "--start-lr", "1e-4", "--end-lr", "100"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    folder = tmp_path_factory.mktemp("sweep")
    report, plot = folder / "report.json", folder / "sweep.png"
    done = run_cli("lr-sweep", "-q", "--no-confirm", *WIDE, "--format", "json",
                   "--json", str(report), "--plot", str(plot), GROUPS)
    return done, report, plot


def test_json_report_has_every_number_and_the_curve(swept: tuple):
    done, report, _ = swept
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data == json.loads(report.read_text())
    assert data["schema_version"] == 1
    assert data["command"] == "lr-sweep"
    assert data["status"] in ("ok", "unreliable")
    for key in ("suggested_lr", "divergence_lr", "current_lr", "stability_margin",
                "confidence", "warnings", "confirmation", "repeats"):
        assert key in data
    assert set(data["rules"]) == {"valley", "steepest", "min_div_10"}
    assert data["current_lr"] == 0.01
    assert data["divergence_lr"] > 0
    assert data["stability_margin"] == pytest.approx(0.01 / data["divergence_lr"])
    curve = data["curve"]
    assert [p["step"] for p in curve] == list(range(len(curve)))
    assert {"lr", "loss", "smoothed", "smoothed_lr"} <= set(curve[0])
    assert data["repeats"][0]["ended"] == "sweep_diverged"


def test_plot_writes_a_png(swept: tuple):
    _, _, plot = swept
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_script_crash_is_reported_with_its_traceback_and_exit_3():
    done = run_cli("lr-sweep", "-q", "--no-confirm", "--steps", "40", GROUPS,
                   "--crash-at", "5")
    assert done.returncode == 3
    assert "ValueError: the data ran dry at step 5" in done.stdout
    assert "sweep_groups.py" in done.stdout
    assert "nandoctor/" not in done.stdout + done.stderr


def test_falling_sweep_is_a_usage_error():
    done = run_cli("lr-sweep", "--start-lr", "1", "--end-lr", "0.1", GROUPS)
    assert done.returncode == 2
    assert "start_lr" in done.stderr


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    monkeypatch.setattr(sys, "argv", ["nandoctor", "lr-sweep", "--plot",
                                      "sweep.png", GROUPS])
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as done:
            cli.main()
    finally:
        signal.signal(signal.SIGTERM, before)
    assert done.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert " ".join(MATPLOTLIB_MISSING.split()) in message
    assert not Path("sweep.png").exists()


@pytest.mark.slow
def test_constant_rate_runs_place_divergence_below_the_sweeps(tmp_path: Path):
    report = tmp_path / "report.json"
    done = run_cli("lr-sweep", "-q", *WIDE, "--json", str(report), GROUPS)
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    confirmation = data["confirmation"]
    assert confirmation["runs"]
    assert data["divergence_lr"] <= data["sweep_divergence_lr"]
    assert "divergence" in done.stdout


@pytest.mark.slow
def test_repeats_shift_the_seeds_and_report_the_spread(tmp_path: Path):
    report = tmp_path / "report.json"
    done = run_cli("lr-sweep", "-q", "--no-confirm", "--repeats", "2", *WIDE,
                   "--json", str(report), GROUPS)
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    first, second = data["repeats"]
    assert (first["seed_offset"], second["seed_offset"]) == (0, 1)
    # Another initialisation: the very first loss differs.
    assert first["curve"][0]["loss"] != second["curve"][0]["loss"]
    assert data["rules"]["valley"]["spread"]["count"] >= 1
    assert "min … max (2 repeats)" in done.stdout
