"""What a diagnosis costs, as ratios to the plain run up to the bad step.

    python benchmarks/bench_diagnosis.py [--rounds 3] [CASE_FILE ...]

For each script (default: a few of ../shared/cases), three commands run in
turn, round after round: the plain script up to its bad step; the first
verdict (`nandoctor diagnose --no-probes`: watch and replay, when and where);
the whole diagnosis (probes, and the sweep when the rate is the cause). The
bad step is read from a first diagnosis. Interpreter start-up counts on
every side. Targets (issue 4): first verdict <= 2.2x, whole <= 6x.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from timing import ROOT, alternate, paired_ratio, run_timed, say, thread_env

CASES = ROOT.parent / "shared" / "cases"
DEFAULT_CASES = ("01_lr_too_high_linreg.py", "04_manual_bce_log_zero.py",
                 "11_l2norm_zero_embedding.py", "12_triplet_sqrt_zero_distance.py",
                 "14_fp16_activation_overflow.py")
NANDOCTOR = [sys.executable, "-m", "nandoctor", "diagnose", "--quiet"]


def bad_step(script: Path, env: dict) -> int:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.json"
        run_timed([*NANDOCTOR, "--no-probes", "--json", str(out), str(script)],
                  env=env, expect=(0, 1))
        report = json.loads(out.read_text())
    event = report.get("first_nonfinite") or report.get("first_divergence")
    if event is None:
        raise SystemExit(f"{script}: healthy, nothing to diagnose")
    return event["step"]


def bench(script: Path, rounds: int) -> list[str]:
    env = thread_env(0)  # the plain run's own threads, as nandoctor's watch
    step = bad_step(script, env)
    say(f"{script.name}: bad step {step}")
    runners = {
        "plain": lambda: run_timed(
            [sys.executable, str(Path(__file__).parent / "run_until.py"),
             str(step), str(script)], env=env),
        "first": lambda: run_timed([*NANDOCTOR, "--no-probes", str(script)],
                                   env=env, expect=(1,)),
        "whole": lambda: run_timed([*NANDOCTOR, str(script)], env=env,
                                   expect=(1,)),
    }
    plain, first, whole = alternate(runners, rounds)
    return [f"{script.name:<36} plain {plain.median():6.2f} s  "
            f"first verdict {paired_ratio(first, plain):5.2f}x  "
            f"whole {paired_ratio(whole, plain):5.2f}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=list(DEFAULT_CASES))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lines = []
    for name in args.cases:
        script = Path(name) if Path(name).is_file() else CASES / name
        lines += bench(script, args.rounds)
    say("\nwall-clock ratios (median of paired rounds):")
    for line in lines:
        say(line)


if __name__ == "__main__":
    main()
