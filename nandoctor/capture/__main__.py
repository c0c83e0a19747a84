"""Child entry point: `python -m nandoctor.capture PLAN EVENTS`."""
import os
import sys
import traceback
from pathlib import Path

from ..plan import Plan
from .child import run
from .events import EventWriter


def main() -> None:
    plan = Plan.from_json(Path(sys.argv[1]).read_text())
    events = EventWriter(open(sys.argv[2], "w", buffering=1 << 16))
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


if __name__ == "__main__":
    main()
