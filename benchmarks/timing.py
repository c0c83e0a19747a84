"""Timing whole processes, alternately, and summing them up as medians.

Shared by the benchmark scripts. Each command is timed from `Popen` to exit,
so interpreter start-up and imports count on every side. CPU time (user +
system, children included) is read from `getrusage` beside the wall clock:
on a busy machine it moves less than wall time does.
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

# One OpenMP thread unless asked otherwise: on a shared machine, threads
# that spin-wait for a core held by someone else slow a run several-fold.
DEFAULT_THREADS = 1
ROOT = Path(__file__).resolve().parent.parent


def say(line: str) -> None:
    """Prints at once: a benchmark's progress must show while it runs."""
    print(line, flush=True)


@dataclass
class Timing:
    wall: float
    cpu: float


@dataclass
class Series:
    """Every timing of one command, in the order they ran."""

    label: str
    timings: list[Timing] = field(default_factory=list)

    def median(self, kind: str = "wall") -> float:
        return statistics.median(getattr(t, kind) for t in self.timings)


def thread_env(threads: int) -> dict[str, str]:
    """The environment with the thread count pinned (0: left as it is), and
    this checkout's nandoctor first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def measure(work: Callable[[], object]) -> Timing:
    """Wall and CPU time of `work`, which must wait for the processes it
    starts (their CPU time counts only once they are reaped)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    work()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall=wall, cpu=cpu)


def run_timed(command: Sequence[str], env: Optional[dict[str, str]] = None,
              cwd: Optional[str] = None,
              expect: Sequence[int] = (0,)) -> Timing:
    """Times `command` to its end; fails loudly on an unexpected exit code."""

    def run() -> None:
        done = subprocess.run(list(command), env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if done.returncode not in expect:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:"
                               f"\n{done.stderr[-2000:]}")

    return measure(run)


def alternate(runners: dict[str, Callable[[], Timing]], rounds: int,
              report: Callable[[str], None] = say) -> list[Series]:
    """Runs each runner once per round, in turn: A B A B ..., so that a
    change in the machine's load falls on every side alike."""
    series = [Series(label) for label in runners]
    for round_number in range(1, rounds + 1):
        for one, run in zip(series, runners.values()):
            timing = run()
            one.timings.append(timing)
            report(f"  round {round_number}/{rounds}  {one.label:<12} "
                   f"wall {timing.wall:7.2f} s  cpu {timing.cpu:7.2f} s")
    return series


def paired_ratio(over: Series, base: Series, kind: str = "wall") -> float:
    """Median of the round-by-round ratios: each pair ran back to back."""
    ratios = [getattr(a, kind) / getattr(b, kind)
              for a, b in zip(over.timings, base.timings)]
    return statistics.median(ratios)


def ratio_lines(over: Series, base: Series) -> list[str]:
    """The comparison of two series as a few printable lines."""
    lines = []
    for kind in ("wall", "cpu"):
        a, b = over.median(kind), base.median(kind)
        lines.append(
            f"{kind:>4}: {over.label} {a:.2f} s / {base.label} {b:.2f} s "
            f"= {a / b:.3f}x  (median of paired ratios "
            f"{paired_ratio(over, base, kind):.3f}x)"
        )
    return lines
