"""What reaches the script: its arguments, its folder on sys.path, and the
user's working directory, however the command line is written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS
from test_reliability import assert_one_paragraph, diagnose

TRAIN = str(SCRIPTS / "rel_train.py")


def seen_by_script(tmp_path: Path, *args: str, cwd: Path | None = None) -> dict:
    """Runs nandoctor; returns what the script saw (rel_train.py's report)."""
    report = tmp_path / "seen.json"
    result = diagnose(*args, cwd=cwd or tmp_path, env={"REL_REPORT": str(report)})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(report.read_text())


@pytest.mark.parametrize("command, argv", [
    ([TRAIN, "--lr", "0.2"], ["--lr", "0.2"]),
    ([TRAIN, "--", "--lr", "0.3"], ["--lr", "0.3"]),
    (["--", TRAIN, "--lr", "0.4"], ["--lr", "0.4"]),
    # Only the first `--` after the script is nandoctor's; later ones are the
    # script's, as are options that nandoctor also has.
    ([TRAIN, "--steps", "1", "--", "--lr", "0.5"],
     ["--steps", "1", "--", "--lr", "0.5"]),
    ([TRAIN, "--threads", "3", "--json", "x.json"],
     ["--threads", "3", "--json", "x.json"]),
])
def test_everything_after_the_script_goes_to_the_script(tmp_path, command, argv):
    seen = seen_by_script(tmp_path, *command)
    assert seen["argv"] == argv
    assert seen["name"] == "__main__"
    assert not (tmp_path / "x.json").exists()  # that --json was the script's


@pytest.mark.parametrize("spelling", [["./-odd.py"], ["--", "-odd.py"]])
def test_a_script_whose_name_starts_with_a_dash(tmp_path, spelling):
    shutil.copy(TRAIN, tmp_path / "-odd.py")
    seen = seen_by_script(tmp_path, *spelling, "--lr", "0.6")
    assert seen["argv"] == ["--lr", "0.6"]


def test_an_unknown_option_is_named_not_run_as_a_script(tmp_path):
    result = diagnose("--max-step", "3", TRAIN, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_paragraph(result, "--max-step", "neither an option of nandoctor")


def test_a_relative_path_runs_in_the_users_folder_with_its_own_on_sys_path(
        tmp_path):
    relative = (SCRIPTS / "rel_uses_neighbour.py").relative_to(ROOT)
    seen = seen_by_script(tmp_path, str(relative), cwd=ROOT)
    assert seen["cwd"] == str(ROOT)
    assert seen["path0"] == str(SCRIPTS)


def test_an_absolute_path_leaves_the_working_directory_alone(tmp_path):
    seen = seen_by_script(tmp_path, TRAIN)
    assert seen["cwd"] == str(tmp_path)
    assert seen["path0"] == str(SCRIPTS)


def test_no_script_and_no_config_says_how_to_name_one(tmp_path):
    result = diagnose(cwd=tmp_path)
    assert result.returncode == 2
    assert_one_paragraph(result, "no script given", "nandoctor.yaml")
