"""Every bad input and fault gets a clear answer, and nothing is left behind.

Each test runs `nandoctor diagnose` as a user would, on a tiny script in
tests/scripts/rel_*.py, and checks the exit code, a few words of the answer,
that no traceback of nandoctor's own appears, that no process of the run
survives it, and that the user's files are as they were.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, run_cli

# Every process of a run (nandoctor, its children, DataLoader workers)
# inherits this variable: a process that still carries it afterwards was
# left behind.
MARKER = "NANDOCTOR_TEST_MARKER"
FAST = ("diagnose", "--no-probes", "--threads", "1", "-q")


def script(name: str) -> str:
    return str(SCRIPTS / f"{name}.py")


def survivors(marker: str, grace: float = 3.0) -> list[str]:
    """Command lines of live processes carrying `marker`, after a grace."""
    deadline = time.monotonic() + grace
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                if f"{MARKER}={marker}".encode() in environ.split(b"\0"):
                    found.append((entry / "cmdline").read_bytes().decode())
            except OSError:  # gone meanwhile, or not ours to read
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def assert_no_own_traceback(result: subprocess.CompletedProcess) -> None:
    """A traceback may only be the script's own, shown inside the report."""
    assert "Traceback" not in result.stderr, result.stderr
    if "Traceback" in result.stdout:
        assert "the script's traceback" in result.stdout, result.stdout
        assert result.stdout.count("Traceback (most recent call last)") == 1


def assert_one_paragraph(result: subprocess.CompletedProcess, *names: str) -> None:
    """An error: one paragraph on stderr that names the input."""
    message = result.stderr.strip()
    assert message.startswith(("error:", "config error:")), message
    assert "\n\n" not in message, message
    flat = " ".join(message.split())
    for name in names:
        assert name in flat, (name, flat)


def diagnose(*args: str, cwd: Path | None = None, env: dict | None = None,
             timeout: float = 180) -> subprocess.CompletedProcess:
    """A fast diagnosis; asserts nothing of the run outlives it."""
    marker = uuid.uuid4().hex
    result = run_cli(*FAST, *args, cwd=cwd, timeout=timeout,
                     env={MARKER: marker, **(env or {})})
    assert survivors(marker) == []
    assert_no_own_traceback(result)
    return result


def flat(text: str) -> str:
    """Output with rich's line wrapping and panel borders undone."""
    return " ".join(text.replace("│", " ").split())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- scripts that cannot start: refused before any child runs ---------------

def _write_inputs(folder: Path) -> dict[str, Path]:
    """Things passed as a script that are not one."""
    (folder / "a_folder").mkdir()
    binary = folder / "model.py"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    notes = folder / "notes.txt"
    notes.write_text("These are my notes about the training run.\n")
    broken = folder / "broken.py"
    broken.write_text("import torch\ndef train(:\n    pass\n")
    notebook = folder / "train.ipynb"
    notebook.write_text('{"cells": [], "nbformat": 4, "metadata": null}\n')
    return {"folder": folder / "a_folder", "binary": binary, "notes": notes,
            "broken": broken, "notebook": notebook,
            "missing": folder / "no_such_script.py",
            "markup": folder / "[bold]train[/].py"}


@pytest.mark.parametrize("kind, words", [
    ("missing", "no such file"),
    ("markup", "no such file"),  # the name printed as is, not as rich markup
    ("folder", "is a folder, not a script"),
    ("binary", "is not a Python source file"),
    ("notes", "notes.txt:1:7: the script does not compile"),
    ("broken", "broken.py:2:11: the script does not compile"),
    ("notebook", "is a Jupyter notebook"),
])
def test_a_script_that_cannot_start_is_refused_with_exit_2(tmp_path, kind, words):
    path = _write_inputs(tmp_path)[kind]
    before = snapshot(tmp_path)
    result = diagnose(path.name, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_paragraph(result, path.name, words)
    assert snapshot(tmp_path) == before


# -- the script's own failures: exit 3, with its traceback ------------------

@pytest.mark.parametrize("name, words", [
    ("rel_missing_package",
     ["crashed after 0 steps", "No module named 'rel_no_such_package_anywhere'"]),
    ("rel_raise_before_step", ["crashed after 0 steps", "data/train.csv"]),
    ("rel_raise_at_step",
     ["crashed after 3 steps", "batch 3 has the wrong shape", "check_batch"]),
    ("rel_reads_stdin", ["crashed after 0 steps", "EOFError"]),  # stdin closed
])
def test_a_script_that_raises_exits_3_with_its_own_traceback(name, words):
    result = diagnose(script(name))
    assert result.returncode == 3, result.stderr
    out = flat(result.stdout)
    assert "the script's traceback" in out
    for word in words:
        assert word in out


@pytest.mark.parametrize("name, args, code, words", [
    ("rel_exit_early", ["0"], 2, "called sys.exit() without a single training step"),
    ("rel_exit_early", ["3"], 3, "exited with code 3 after 0 steps"),
    ("rel_exit_after_steps", [], 3, "exited with code 3 after 2 steps"),
    ("rel_no_backward", [], 2, "ended without a single training step"),
])
def test_sys_exit_and_a_script_that_never_steps(name, args, code, words):
    result = diagnose(script(name), *args)
    assert result.returncode == code
    assert words in flat(result.stdout + result.stderr)
    if code == 2:
        assert_one_paragraph(result, name)


def test_a_syntax_error_raised_after_some_steps_is_a_crash_not_healthy():
    result = diagnose(script("rel_syntax_error_at_step"))
    assert result.returncode == 3
    out = flat(result.stdout)
    assert "crashed after 2 steps: SyntaxError" in out
    assert "the script's traceback" in out


def test_a_failure_of_nandoctors_own_child_code_is_internal_not_a_kill():
    result = diagnose(script("rel_breaks_nandoctor"))
    assert result.returncode == 4
    assert_one_paragraph(result, "internal error in the watch pass",
                         "KeyError: 'class'", "NANDOCTOR_DEBUG=1")


def test_a_script_killed_by_the_os_is_a_crash_and_keeps_every_step_it_made():
    result = diagnose(script("rel_sigkill"))
    assert result.returncode == 3
    assert "killed (signal 9) after 3 steps" in flat(result.stdout)


def test_a_script_that_never_steps_is_stopped_by_the_timeout():
    started = time.monotonic()
    result = diagnose("--timeout", "3", script("rel_loop_forever"))
    assert result.returncode == 2
    assert_one_paragraph(result, "rel_loop_forever.py",
                         "no training step in 3 s", "raise --timeout")
    assert time.monotonic() - started < 60


@pytest.mark.slow  # the limit must leave room for torch's import on a busy box
def test_the_timeout_after_some_steps_is_not_a_failure():
    result = diagnose("--timeout", "12", script("rel_slow_steps"))
    assert result.returncode == 0
    assert "before the time limit (12 s)" in flat(result.stdout)


# -- what training scripts do: all of it must work --------------------------

def test_megabytes_of_output_keep_only_a_tail():
    result = diagnose(script("rel_prints_megabytes"))
    assert result.returncode == 3
    assert "last line of the log" in result.stdout
    assert len(result.stdout) < 20_000


def test_the_parent_holds_only_the_tail_of_megabytes_of_output():
    from nandoctor.plan import Plan
    from nandoctor.runner import OUTPUT_TAIL_BYTES, run_pass

    tracemalloc.start()
    try:
        result = run_pass("watch", Plan(script=script("rel_prints_megabytes")), 120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.steps) == 4
    assert len(result.output_tail) <= OUTPUT_TAIL_BYTES
    assert peak < 2_000_000  # the script printed 20 MB


def test_output_past_the_cap_is_cut_to_its_tail(tmp_path):
    from nandoctor.runner import OUTPUT_TAIL_BYTES, cap_output

    log = tmp_path / "output.log"
    log.write_bytes(b"x" * 5000 + b"\nthe last line\n")
    cap_output(log, cap=10_000)
    assert log.stat().st_size == 5015  # under the cap: untouched
    with open(log, "ab") as f:
        f.write(b"y" * 20_000 + b"\nthe very last line\n")
    cap_output(log, cap=10_000)
    text = log.read_text()
    assert text.startswith("[earlier output cut by nandoctor]")
    assert text.endswith("the very last line\n")
    assert len(text) < OUTPUT_TAIL_BYTES + 100


def test_files_the_script_writes_stay_its_own_and_nandoctor_adds_only_json(
        tmp_path):
    (tmp_path / "data.csv").write_text("x,y\n1,2\n")
    (tmp_path / "report.json").write_text('{"mine": true}\n')
    (tmp_path / "checkpoint.txt").write_text("an old checkpoint\n")
    (tmp_path / "out").mkdir()
    before = snapshot(tmp_path)
    result = diagnose("--json", "out/nd.json", script("rel_writes_files"),
                      cwd=tmp_path)
    assert result.returncode == 1
    after = snapshot(tmp_path)
    untouched = set(before) - {"checkpoint.txt"}  # the script rewrites that
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}
    assert set(after) - set(before) == {"train.log", "out/nd.json"}
    # The watch and the replay each run the script once.
    assert after["train.log"] == b"run started\n" * 2


def test_dataloader_workers_run_and_none_is_left_behind():
    result = diagnose(script("rel_dataloader_workers"))
    assert result.returncode == 0
    assert "healthy: 8 steps" in flat(result.stdout)


def test_a_non_daemon_thread_does_not_hang_nandoctor():
    result = diagnose(script("rel_threads"), timeout=60)
    assert result.returncode == 0
    assert "healthy: 3 steps" in flat(result.stdout)


def test_two_optimizers_count_steps_of_the_one_created_first(tmp_path):
    result = diagnose("--json", str(tmp_path / "r.json"),
                      script("rel_two_optimizers"))
    assert result.returncode == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["steps"] == 4  # the generator's, not the discriminator's 8
    assert report["history"][0]["lrs"] == [0.001]


def test_a_script_that_sets_the_default_dtype_keeps_it():
    result = diagnose(script("rel_default_dtype"))
    assert result.returncode == 0  # the script asserts its weights are float64
    assert "healthy: 3 steps" in flat(result.stdout)


def test_a_script_with_anomaly_detection_on_is_still_diagnosed():
    result = diagnose(script("rel_detect_anomaly"))
    assert result.returncode == 1
    out = flat(result.stdout)
    assert "diverged at step 2" in out
    assert "aten.log" in out  # the replay's op checks ran beside anomaly mode
    assert "returned nan values" in out  # the script's own anomaly error


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("g++")),
                    reason="torch.compile on CPU needs a C compiler")
def test_a_compiled_model_is_watched_from_outside():
    # The watch's hooks used to run inside the compile trace and broke it.
    result = diagnose(script("rel_compile"), timeout=600)
    assert result.returncode == 0, result.stdout
    assert "healthy: 3 steps" in flat(result.stdout)


def test_one_thread_is_reported_and_used(tmp_path):
    result = diagnose("--json", str(tmp_path / "r.json"), script("rel_train"))
    assert result.returncode == 0
    assert json.loads((tmp_path / "r.json").read_text())["threads"] == 1


# -- Ctrl-C and SIGTERM -----------------------------------------------------

def _interrupt_when(marker: str, ready: str, send: str, *args: str,
                    wait: float = 0.0) -> subprocess.CompletedProcess:
    """Starts nandoctor, waits for a progress line starting with `ready`,
    then signals it as a terminal (the group, SIGINT) or CI (SIGTERM) does."""
    env = {**os.environ, MARKER: marker, "NO_COLOR": "1", "COLUMNS": "100",
           "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "nandoctor", "diagnose", "--threads", "1", *args],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    for line in child.stderr:
        seen.append(line)
        if line.startswith(ready):
            break
    time.sleep(wait)
    if send == "SIGINT":
        os.killpg(child.pid, signal.SIGINT)
    else:
        child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    return subprocess.CompletedProcess(child.args, child.returncode, out,
                                       "".join(seen) + err)


@pytest.mark.parametrize("send", ["SIGINT", "SIGTERM"])
def test_an_interrupted_watch_reports_its_steps_and_exits_130(send):
    marker = uuid.uuid4().hex
    result = _interrupt_when(marker, "watch step", send, "--no-probes",
                             script("rel_slow_steps"), wait=1.0)
    assert result.returncode == 130, result.stderr
    assert survivors(marker) == []
    assert_no_own_traceback(result)
    assert "interrupted after" in flat(result.stdout)
    assert "history" in result.stdout


@pytest.mark.slow
def test_ctrl_c_during_the_probes_ends_them_and_keeps_the_watch_evidence():
    marker = uuid.uuid4().hex
    result = _interrupt_when(marker, "replay:", "SIGINT",
                             script("rel_nan_then_slow"), wait=4.0)
    assert result.returncode == 130, result.stderr
    assert survivors(marker) == []
    assert_no_own_traceback(result)
    assert "interrupted after" in flat(result.stdout)
    assert "first non-finite value" in result.stdout


def test_a_nandoctor_killed_outright_leaves_no_child_nor_temporary_folder(
        tmp_path):
    # SIGKILL gives nandoctor no chance to end its children: they notice
    # they were re-parented and end themselves.
    marker = uuid.uuid4().hex
    env = {**os.environ, MARKER: marker, "TMPDIR": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    nandoctor = subprocess.Popen(
        [sys.executable, "-m", "nandoctor", "diagnose", "--threads", "1",
         "--no-probes", script("rel_slow_steps")],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    for line in nandoctor.stderr:
        if line.startswith("watch step"):
            break
    nandoctor.kill()
    nandoctor.wait()
    assert survivors(marker, grace=10.0) == []
    assert list(tmp_path.glob("nandoctor-*")) == []  # torch keeps its caches


# -- --json -------------------------------------------------------------------

def _read_only_target(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through file modes
        if not Path("/sys").is_dir():
            pytest.skip("needs a read-only place; root ignores file modes")
        return Path("/sys/nandoctor-report.json")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "report.json"


@pytest.mark.parametrize("where, words", [
    ("missing_folder", "does not exist"),
    ("read_only", "cannot be written"),
    ("the_script", "would overwrite it"),
])
def test_json_that_cannot_be_written_is_refused_before_the_run(
        tmp_path, where, words):
    target = tmp_path / "train.py"
    shutil.copy(script("rel_train"), target)
    path = {"missing_folder": tmp_path / "no" / "such" / "r.json",
            "read_only": _read_only_target(tmp_path),
            "the_script": target}[where]
    before = target.read_bytes()
    started = time.monotonic()
    result = diagnose("--json", str(path), str(target))
    assert result.returncode == 2
    assert_one_paragraph(result, str(path), words, "--json")
    assert time.monotonic() - started < 20  # refused before any pass ran
    assert target.read_bytes() == before


def test_json_to_an_existing_file_replaces_it(tmp_path):
    report = tmp_path / "report.json"
    report.write_text("an older report\n")
    result = diagnose("--json", str(report), script("rel_train"))
    assert result.returncode == 0
    assert json.loads(report.read_text())["status"] == "healthy"
