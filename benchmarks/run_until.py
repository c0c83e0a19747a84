"""Runs a training script plainly up to (and including) step N, then stops.

    python benchmarks/run_until.py N SCRIPT [ARGS...]

The baseline of `bench_diagnosis.py`: the run a person makes to reach the
bad step. One global optimizer post-hook counts the steps; nothing else is
installed. Ends with `os._exit` like nandoctor's own children.
"""
import os
import runpy
import sys

from torch.optim.optimizer import register_optimizer_step_post_hook


class _Reached(BaseException):
    pass


def main() -> None:
    last = int(sys.argv[1])
    script = os.path.abspath(sys.argv[2])
    sys.argv = sys.argv[2:]
    sys.path.insert(0, os.path.dirname(script))
    steps = [0]

    def count(optimizer, args, kwargs) -> None:
        steps[0] += 1
        if steps[0] > last:
            raise _Reached

    register_optimizer_step_post_hook(count)
    try:
        runpy.run_path(script, run_name="__main__")
    except _Reached:
        pass
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
