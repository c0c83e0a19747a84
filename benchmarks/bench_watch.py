"""Wall time of nandoctor's watch pass against a plain run of the same script.

The plain side is `python WORKLOAD`; the watched side is `nandoctor diagnose
--no-probes --quiet WORKLOAD`, which on a healthy script runs the watch pass
alone. Both are whole processes, start-up included (for nandoctor: its CLI,
the child it starts, and the report at the end). Runs alternate, plain then
watched, and the medians are compared.

    python benchmarks/bench_watch.py --rounds 5
    python benchmarks/bench_watch.py --rounds 5 -- --epochs 20   # workload args
    python benchmarks/bench_watch.py --diagnose-args "--threads 1"

Target: watched / plain <= 1.05, goal 1.03, on a plain run of 10 s or more.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from timing import (DEFAULT_THREADS, alternate, ratio_lines, run_timed,
                    thread_env)

WORKLOAD = Path(__file__).resolve().parent / "workloads" / "healthy_long.py"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", type=Path, default=WORKLOAD,
                        help="a training script that stays finite")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="OMP/MKL threads on both sides (0: as set now)")
    parser.add_argument("--diagnose-args", default="",
                        help="extra nandoctor options, one string: "
                             "'--threads 1' spares its CLI the torch import")
    parser.add_argument("--same-hash-seed", action="store_true",
                        help="PYTHONHASHSEED=0 for the plain run too, as "
                             "nandoctor's child has it")
    parser.add_argument("script_args", nargs="*",
                        help="arguments for the workload, after --")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    workload = str(args.workload.resolve())
    env = thread_env(args.threads)
    # nandoctor pins the hash seed in its child; on this machine that alone
    # changes start-up by a few tenths of a second, which can hide the
    # watch's own cost.
    plain_env = {**env, "PYTHONHASHSEED": "0"} if args.same_hash_seed else env
    plain = [sys.executable, workload, *args.script_args]
    watched = [sys.executable, "-m", "nandoctor", "diagnose", "--no-probes",
               "--quiet", *shlex.split(args.diagnose_args), workload,
               *args.script_args]

    print(f"workload: {workload} {' '.join(args.script_args)}")
    print(f"threads: {args.threads or 'as set'}, rounds: {args.rounds}, "
          f"nandoctor options: {args.diagnose_args or 'none'}, "
          f"plain PYTHONHASHSEED: {'0' if args.same_hash_seed else 'as set'}")
    # A scratch folder as the working directory: nothing the runs write stays.
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as scratch:
        series = alternate({
            "plain": lambda: run_timed(plain, env=plain_env, cwd=scratch),
            "watch": lambda: run_timed(watched, env=env, cwd=scratch),
        }, args.rounds)
    for line in ratio_lines(series[1], series[0]):
        print(line)


if __name__ == "__main__":
    main()
