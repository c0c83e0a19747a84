"""Wall time of `nandoctor lr-sweep` against torch-lr-finder's `range_test`.

Both sweep the same model (tests/scripts/sweep_mlp.py), the same data and
the same number of steps, each from a fresh Python process, so that start-up
(imports, and nandoctor's parent and child processes) counts on both sides.
Neither may stop early: the divergence thresholds are set out of reach and
the range kept below the rates that diverge. Runs alternate, so that a
change in the machine's load hits both sides alike; the medians are compared.

    pip install torch-lr-finder   # for this benchmark only
    python benchmarks/bench_sweep.py --steps 800 --batch-size 64 --threads 1

Target: nandoctor / torch-lr-finder <= 1.1 on a sweep of 20 s or more.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "sweep_mlp.py"
DIGITS = 1797  # samples; the loader drops the last partial batch
UNREACHABLE = 1e9  # a divergence threshold no loss reaches


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--start-lr", type=float, default=1e-5)
    parser.add_argument("--end-lr", type=float, default=1e-2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lr-finder", action="store_true",
                        help="internal: run torch-lr-finder's side in this process")
    return parser.parse_args()


def script_args(args: argparse.Namespace) -> list[str]:
    epochs = -(-args.steps // (DIGITS // args.batch_size)) + 1
    return ["--width", str(args.width), "--batch-size", str(args.batch_size),
            "--epochs", str(epochs)]


def run_lr_finder(args: argparse.Namespace) -> None:
    """torch-lr-finder's side: the same model and data, built by the script."""
    import importlib.util

    import torch
    from torch_lr_finder import LRFinder

    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("sweep_mlp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, optimizer, loader, criterion = module.build(
        module.parse_args(script_args(args)))
    finder = LRFinder(model, optimizer, criterion)
    finder.range_test(loader, start_lr=args.start_lr, end_lr=args.end_lr,
                      num_iter=args.steps, diverge_th=UNREACHABLE)
    assert len(finder.history["lr"]) == args.steps, "torch-lr-finder stopped early"


def nandoctor_command(args: argparse.Namespace, config: Path) -> list[str]:
    return [sys.executable, "-m", "nandoctor", "lr-sweep", "-q", "--no-confirm",
            "--config", str(config), "--threads", str(args.threads),
            "--steps", str(args.steps), "--start-lr", str(args.start_lr),
            "--end-lr", str(args.end_lr), "--format", "json", str(SCRIPT), "--",
            *script_args(args)]


def lr_finder_command(args: argparse.Namespace) -> list[str]:
    return [sys.executable, __file__, "--lr-finder", "--steps", str(args.steps),
            "--width", str(args.width), "--batch-size", str(args.batch_size),
            "--start-lr", str(args.start_lr), "--end-lr", str(args.end_lr),
            "--threads", str(args.threads)]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system, children included) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{command[2:4]} failed ({done.returncode}):\n"
                 f"{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def check_full_length(report: str, steps: int) -> None:
    import json

    data = json.loads(report)
    ran = data["repeats"][0]["steps"]
    if ran != steps:
        sys.exit(f"nandoctor's sweep ran {ran} of {steps} steps: it must not "
                 "stop early")


def main() -> None:
    args = parse_args()
    if args.lr_finder:
        run_lr_finder(args)
        return
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "nandoctor.yaml"
        config.write_text(f"sweep:\n  divergence_factor: {UNREACHABLE:g}\n")
        ours, theirs = [], []
        for round_ in range(args.rounds):
            wall, cpu, report = timed(nandoctor_command(args, config), env)
            check_full_length(report, args.steps)
            ours.append((wall, cpu))
            theirs.append(timed(lr_finder_command(args), env)[:2])
            print(f"round {round_ + 1}: nandoctor {wall:.1f} s (cpu {cpu:.1f} s), "
                  f"torch-lr-finder {theirs[-1][0]:.1f} s "
                  f"(cpu {theirs[-1][1]:.1f} s)", flush=True)
    wall_ratio = statistics.median(w for w, _ in ours) / statistics.median(
        w for w, _ in theirs)
    cpu_ratio = statistics.median(c for _, c in ours) / statistics.median(
        c for _, c in theirs)
    print(f"{args.steps} steps, width {args.width}, batch {args.batch_size}, "
          f"{args.threads} threads, {args.rounds} rounds")
    print(f"median wall: nandoctor {statistics.median(w for w, _ in ours):.1f} s, "
          f"torch-lr-finder {statistics.median(w for w, _ in theirs):.1f} s, "
          f"ratio {wall_ratio:.3f} (target <= 1.1)")
    print(f"median cpu ratio {cpu_ratio:.3f}")


if __name__ == "__main__":
    main()
