"""Wall time of the replay pass and of per-op checking, as ratios.

(a) replay: the replay pass, op checks on the bad step and the one before,
    against the watch pass, both stopped right after the bad step, on a
    script that goes non-finite. Target: replay / watch <= 1.1.
(b) per-op: op checks on every step of a whole healthy run (a replay child,
    watch included) against the same run under
    `torch.autograd.detect_anomaly`, both also against the plain
    run (those two through benchmarks/run_script.py, which skips the
    interpreter's teardown as nandoctor's child does). Timed twice: with
    the optimizer's step checked too ("per-op"), and as the replay runs
    when the watch saw the failure outside the update ("per-op, no
    update"), which is what anomaly mode covers: forward and backward.

Every side is a whole child process, start-up included; nandoctor's passes
are started as `nandoctor diagnose` starts them (`runner.run_pass`). Runs
alternate and the medians are compared.

    python benchmarks/bench_replay.py --rounds 5
    python benchmarks/bench_replay.py --part b --healthy-args "--epochs 10"
"""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from timing import (DEFAULT_THREADS, ROOT, Series, Timing, alternate,
                    measure, ratio_lines, run_timed, thread_env)

sys.path.insert(0, str(ROOT))  # this checkout's nandoctor, not an installed one

from nandoctor.plan import Plan  # noqa: E402
from nandoctor.runner import PassResult, run_pass  # noqa: E402

HERE = Path(__file__).resolve().parent
DIVERGING = ROOT / "nandoctor" / "examples" / "sigmoid_bce_log_zero.py"
HEALTHY = HERE / "workloads" / "healthy_long.py"
RUN_SCRIPT = HERE / "run_script.py"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("a", "b", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--diverging", type=Path, default=DIVERGING)
    parser.add_argument("--diverging-args", default="",
                        help="arguments for the diverging script, one string")
    parser.add_argument("--healthy", type=Path, default=HEALTHY)
    parser.add_argument("--healthy-args", default="",
                        help="arguments for the healthy script, one string")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads must be 1 or more: nandoctor's passes pin it")
    return args


def timed_pass(name: str, plan: Plan,
               check: Callable[[PassResult], None]) -> Callable[[], Timing]:
    """A runner for `alternate`: one pass, timed, its result checked."""

    def run() -> None:
        check(run_pass(name, plan, timeout=None))

    return lambda: measure(run)


def ended_normally(result: PassResult) -> None:
    if result.reason not in ("finished", "max_steps", "evidence_complete"):
        raise RuntimeError(f"{result.name} pass ended: {result.end}\n"
                           f"{result.output_tail}")


def replay_part(args: argparse.Namespace) -> None:
    script = str(args.diverging.resolve())
    base = Plan(script=script, args=shlex.split(args.diverging_args),
                threads=args.threads)
    first = run_pass("watch", base, timeout=None).first_event
    if first is None:
        raise SystemExit(f"{script} did not go non-finite: nothing to replay")
    bad = first["step"]
    until = replace(base, max_steps=bad + 1, stop_after_nonfinite=0)
    # The replay plan as the pipeline makes it: the bad step and the one before.
    replay = replace(until, check_steps=[s for s in (bad - 1, bad) if s >= 0],
                     check_data=first["phase"] == "input")
    print(f"(a) {script} {args.diverging_args}: bad step {bad} "
          f"({first['phase']}), both passes stop after it")

    series = alternate({
        "watch": timed_pass("watch", until, ended_normally),
        "replay": timed_pass("replay", replay, found_producer),
    }, args.rounds)
    for line in ratio_lines(series[1], series[0]):
        print(line)


def found_producer(result: PassResult) -> None:
    ended_normally(result)
    if not result.of_kind("producer"):
        raise RuntimeError("the replay found no producing op:\n"
                           f"{result.output_tail}")


def per_op_part(args: argparse.Namespace) -> None:
    script = str(args.healthy.resolve())
    script_args = shlex.split(args.healthy_args)
    base = Plan(script=script, args=script_args, threads=args.threads)
    watch = run_pass("watch", base, timeout=None)
    if watch.first_event is not None or watch.reason != "finished":
        raise SystemExit(f"{script} is not healthy: {watch.end}")
    steps = len(watch.steps)
    every_step = replace(base, check_steps=list(range(steps)))
    no_update = replace(every_step, check_update=False)
    env = thread_env(args.threads)
    print(f"(b) {script} {args.healthy_args}: {steps} steps, whole runs")

    plain_run = [sys.executable, str(RUN_SCRIPT), script, *script_args]
    anomaly_run = [sys.executable, str(RUN_SCRIPT), "--anomaly", script,
                   *script_args]
    series = alternate({
        "plain": lambda: run_timed(plain_run, env=env),
        "anomaly": lambda: run_timed(anomaly_run, env=env),
        "per-op": timed_pass("per-op", every_step, ended_normally),
        "per-op, no update": timed_pass("per-op", no_update, ended_normally),
    }, args.rounds)
    plain, anomaly, per_op, forward_backward = series
    for over, base_series in ((per_op, anomaly), (forward_backward, anomaly),
                              (anomaly, plain), (per_op, plain),
                              (forward_backward, plain)):
        for line in ratio_lines(over, base_series):
            print(line)
    for one in (anomaly, per_op, forward_backward):
        print(f"{one.label}: {extra_ms_per_step(one, plain, steps):.2f} ms "
              "a step more than plain (wall medians)")


def extra_ms_per_step(over: Series, base: Series, steps: int) -> float:
    return (over.median() - base.median()) / steps * 1000


def main() -> None:
    args = parse_args()
    print(f"threads: {args.threads or 'as set'}, rounds: {args.rounds}")
    if args.part in ("a", "both"):
        replay_part(args)
    if args.part in ("b", "both"):
        per_op_part(args)


if __name__ == "__main__":
    main()
