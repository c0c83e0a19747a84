"""Starts one child process for a pass, streams its events, enforces the timeout.

The runner knows plans and events, nothing of rules or rendering. The child
runs in its own process group so that a timeout or Ctrl-C ends its DataLoader
workers and threads with it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .plan import Plan

POLL_SECONDS = 0.05
OUTPUT_TAIL_BYTES = 8000
# A script's output is kept in a temporary file; past this size it is cut
# to its tail, so that a script printing without end cannot fill the disk.
OUTPUT_CAP_BYTES = 64 << 20
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)

EventCallback = Callable[[dict], None]


@dataclass
class PassResult:
    """Everything one child reported, in arrival order, plus how it ended."""

    name: str
    plan: Plan
    steps: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    end: dict = field(default_factory=dict)
    output_tail: str = ""
    seconds: float = 0.0

    @property
    def reason(self) -> str:
        return self.end.get("reason", "killed")

    @property
    def first_event(self) -> Optional[dict]:
        return self.end.get("first_event") or next(
            (e for e in self.events if e["event"] == "nonfinite"), None
        )

    @property
    def divergence(self) -> Optional[dict]:
        return self.end.get("divergence") or next(
            (e for e in self.events if e["event"] == "divergence"), None
        )

    def of_kind(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["event"] == kind]

    def losses(self) -> list[Optional[float]]:
        return [_number(s.get("loss")) for s in self.steps]


class Interrupted(Exception):
    """Ctrl-C reached the parent; carries what the pass had reported so far."""

    def __init__(self, partial: PassResult) -> None:
        super().__init__("interrupted")
        self.partial = partial


@dataclass
class _Child:
    """A started child: torch imported, waiting for its plan on stdin."""

    workdir: Path
    process: subprocess.Popen
    threads: Optional[int]

    @property
    def events_file(self) -> Path:
        return self.workdir / "events.jsonl"

    @property
    def log_file(self) -> Path:
        return self.workdir / "output.log"

    def discard(self) -> None:
        _kill_group(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


class Launcher:
    """Starts children, some of them ahead of need.

    Importing torch is most of a short pass's start-up; a child started while
    the previous pass runs has done it by the time its plan arrives.
    """

    def __init__(self) -> None:
        self._ready: list[_Child] = []
        self._lock = threading.Lock()
        # Passes announced and not yet started, per thread count: while one
        # is still to come, a child is kept ready for it, and no more (a
        # spare nobody takes imports torch on a core the passes need).
        self._wanted: dict[Optional[int], int] = {}

    def prepare(self, threads: Optional[int], count: int = 1) -> None:
        started = [_spawn(threads) for _ in range(count)]
        with self._lock:
            self._ready += started

    def expect(self, threads: Optional[int], count: int) -> None:
        """`count` passes with `threads` will start: keep a child ready."""
        with self._lock:
            self._wanted[threads] = self._wanted.get(threads, 0) + count
        self._top_up(threads)

    def take(self, threads: Optional[int]) -> _Child:
        with self._lock:
            ready = next((c for c in self._ready if c.threads == threads
                          and c.process.poll() is None), None)
            if ready is not None:
                self._ready.remove(ready)
            if self._wanted.get(threads):
                self._wanted[threads] -= 1
        self._top_up(threads)
        return ready if ready is not None else _spawn(threads)

    def _top_up(self, threads: Optional[int]) -> None:
        with self._lock:
            spares = sum(1 for c in self._ready if c.threads == threads)
            short = spares == 0 and self._wanted.get(threads, 0) > 0
        if short:
            self.prepare(threads)

    def close(self) -> None:
        with self._lock:
            unused, self._ready = self._ready, []
        for child in unused:
            child.discard()

    def __enter__(self) -> "Launcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run_pass(
    name: str,
    plan: Plan,
    timeout: Optional[float],
    on_event: Optional[EventCallback] = None,
    cancel: Optional[threading.Event] = None,
    launcher: Optional[Launcher] = None,
) -> PassResult:
    child = launcher.take(plan.threads) if launcher else _spawn(plan.threads)
    try:
        return _run_in(child, name, plan, timeout, on_event, cancel)
    finally:
        shutil.rmtree(child.workdir, ignore_errors=True)


def run_passes(
    jobs: list[tuple[str, Plan]],
    timeout: Optional[float],
    parallel: int,
    on_event: Optional[EventCallback] = None,
    launcher: Optional[Launcher] = None,
) -> list[PassResult]:
    """Runs several passes, `parallel` at a time, results in the order given.

    Ctrl-C reaches the main thread only: it tells the passes to end their
    children and goes on up as KeyboardInterrupt, leaving nothing running.
    """
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(run_pass, n, p, timeout, on_event, cancel,
                               launcher) for n, p in jobs]
        try:
            return [f.result() for f in futures]
        except KeyboardInterrupt:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _spawn(threads: Optional[int]) -> _Child:
    workdir = Path(tempfile.mkdtemp(prefix="nandoctor-"))
    events_file = workdir / "events.jsonl"
    events_file.touch()
    # Appending, the child carries on at the end after cap_output cuts it.
    with open(workdir / "output.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "nandoctor.capture", str(events_file)],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            env=_child_env(threads), start_new_session=True,
        )
    return _Child(workdir=workdir, process=process, threads=threads)


def _child_env(threads_count: Optional[int]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    if threads_count:
        # The same thread settings in every pass: on CPU they decide the numbers.
        threads = str(threads_count)
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p
    )
    return env


def _send_plan(process: subprocess.Popen, plan: Plan) -> None:
    try:
        process.stdin.write((plan.to_json() + "\n").encode())
        process.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # it died before its plan came: reported as an unreported end


def _run_in(started_child: _Child, name: str, plan: Plan,
            timeout: Optional[float], on_event: Optional[EventCallback],
            cancel: Optional[threading.Event]) -> PassResult:
    result = PassResult(name=name, plan=plan)
    started = time.monotonic()
    child = started_child.process
    _send_plan(child, plan)
    with open(started_child.events_file) as feed:
        try:
            timed_out = _follow(child, feed, result, started, timeout, on_event,
                                cancel, started_child.log_file)
        except KeyboardInterrupt:
            _kill_group(child)
            _drain(feed, result, on_event)
            result.end = {"reason": "interrupted", **result.end}
            result.seconds = time.monotonic() - started
            raise Interrupted(result) from None
        _drain(feed, result, on_event)
    result.seconds = time.monotonic() - started
    result.output_tail = _tail(started_child.log_file)
    if not result.end:
        result.end = _unreported_end(child.returncode, timed_out)
    return result


def _unreported_end(returncode: int, timed_out: bool) -> dict:
    """How a child that wrote no `end` event ended: the time limit, a signal
    (9 from the OOM killer), or the script's own os._exit(code)."""
    if timed_out:
        return {"reason": "timeout"}
    if returncode < 0:
        return {"reason": "killed", "signal": -returncode}
    return {"reason": "exit", "exit_code": returncode}


def _follow(child: subprocess.Popen, feed: Any, result: PassResult,
            started: float, timeout: Optional[float],
            on_event: Optional[EventCallback],
            cancel: Optional[threading.Event], log: Path) -> bool:
    while child.poll() is None:
        _drain(feed, result, on_event)
        cap_output(log)
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt  # a sibling pass saw Ctrl-C
        if timeout is not None and time.monotonic() - started > timeout:
            _kill_group(child)
            return True
        time.sleep(POLL_SECONDS)
    _kill_group(child)  # workers or threads the script left behind
    return False


def _drain(feed: Any, result: PassResult, on_event: Optional[EventCallback]) -> None:
    while True:
        position = feed.tell()
        line = feed.readline()
        if not line.endswith("\n"):
            feed.seek(position)  # a line still being written
            return
        event = json.loads(line)
        kind = event.pop("event")
        if kind == "step":
            result.steps.append(event)
        elif kind == "end":
            result.end = event
        else:
            result.events.append({"event": kind, **event})
        if on_event is not None:
            on_event({"pass": result.name, "event": kind, **event})


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()


def cap_output(path: Path, cap: int = OUTPUT_CAP_BYTES) -> None:
    """Cuts the output file to its tail once it is over `cap` bytes. Lines the
    child writes between the read and the cut are lost with the rest."""
    if path.stat().st_size <= cap:
        return
    tail = _tail(path)
    os.truncate(path, 0)
    with open(path, "ab") as log:
        log.write(b"[earlier output cut by nandoctor]\n" + tail.encode())


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - OUTPUT_TAIL_BYTES))
        return f.read().decode("utf-8", "replace")


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value)  # "nan", "inf", "-inf" as the child wrote them
    return None
