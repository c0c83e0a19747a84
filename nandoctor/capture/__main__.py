"""Child entry point: `python -m nandoctor.capture EVENTS`, the plan on stdin.

The child imports torch first and only then waits for its plan, so the
parent can start it ahead of need while another pass runs.
"""
import os
import shutil
import signal
import sys
import threading
import time
import traceback

from ..plan import Plan
from .child import run
from .events import EventWriter


def main() -> None:
    # Every optimizer's constructor imports torch._dynamo (seconds): do it
    # while waiting, as the user's script would do it anyway.
    import torch._dynamo  # noqa: F401

    text = sys.stdin.readline()
    if not text.strip():  # started ahead of need and not needed after all,
        # or nandoctor is gone: nobody else will remove the pass's folder
        shutil.rmtree(os.path.dirname(sys.argv[1]), ignore_errors=True)
        os._exit(0)
    plan = Plan.from_json(text)
    _end_with_parent(os.getppid(), os.path.dirname(sys.argv[1]))
    # The script gets no input, as it would under a scheduler: input() fails fast.
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    events = EventWriter(open(sys.argv[1], "w", buffering=1 << 16))
    try:
        run(plan, events)
    except BaseException as exc:  # run() reports the script's own errors: ours
        events.emit("end", reason="internal", error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc())
    finally:
        events.close()
    # The user's script may have left non-daemon threads behind; the evidence
    # is written, so do not wait for them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _end_with_parent(parent: int, workdir: str) -> None:
    """A nandoctor killed outright (SIGKILL, no chance to end its children)
    leaves this child re-parented: then remove the pass's temporary folder
    and end the child with its DataLoader workers (its process group)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        shutil.rmtree(workdir, ignore_errors=True)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    if hasattr(os, "killpg"):
        threading.Thread(target=watch, name="nandoctor-parent",
                         daemon=True).start()


if __name__ == "__main__":
    main()
