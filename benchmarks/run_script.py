"""Runs a training script as nandoctor's child does, optionally under anomaly mode.

    python benchmarks/run_script.py [--anomaly] SCRIPT [ARGS...]

The script runs unmodified as `__main__`, with its folder on `sys.path`. Like
nandoctor's child, this ends with `os._exit` once the script returns, so the
interpreter's teardown (most of a second for a process that has loaded
torch) counts on neither side of a comparison with a nandoctor pass. With
`--anomaly`, `torch.autograd.set_detect_anomaly(True)` holds for the run.
"""
import os
import runpy
import sys

import torch


def main() -> None:
    anomaly = sys.argv[1:2] == ["--anomaly"]
    script = os.path.abspath(sys.argv[2 if anomaly else 1])
    sys.argv = sys.argv[2 if anomaly else 1:]
    sys.path.insert(0, os.path.dirname(script))
    torch.autograd.set_detect_anomaly(anomaly)
    runpy.run_path(script, run_name="__main__")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
