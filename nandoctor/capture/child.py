"""Runs the user's script, unmodified, under the instrumentation of one plan."""
from __future__ import annotations

import os
import random
import runpy
import sys
import traceback
from typing import Any, Optional

import torch

from ..plan import Plan
from .events import EventWriter
from .hooks import Hooks
from .sites import is_user_file
from .watch import StopRun, Watch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(seed % 2**32)


def build_watch(plan: Plan, events: EventWriter) -> Watch:
    # Imported here so that a plain watch pass never loads the replay or probes.
    change = checker = None
    if plan.sweep is not None:
        from .sweep import LrSweep

        change = LrSweep(plan.sweep, plan.seed_offset, events)
    elif plan.probe is not None:
        from .interventions import probe_change

        change = probe_change(plan.probe)
    if plan.check_steps or plan.check_data:
        from .opcheck import OpChecker

        checker = OpChecker(plan, events)
    return Watch(plan, events, change=change, checker=checker)


def run(plan: Plan, events: EventWriter) -> None:
    if plan.nice and hasattr(os, "nice"):
        os.nice(plan.nice)
    if plan.threads:
        torch.set_num_threads(plan.threads)
    if plan.seed is not None:
        seed_everything(plan.seed)
    watch = build_watch(plan, events)
    events.emit("start", pid=os.getpid(), threads=torch.get_num_threads(),
                torch=torch.__version__)
    outcome: dict[str, Any] = {"reason": "finished"}
    hooks = Hooks(watch)
    hooks.install()
    if watch.change is not None and hasattr(watch.change, "install"):
        watch.change.install()
    if watch.checker is not None:
        watch.checker.install()
    try:
        _run_script(plan)
    except StopRun as stop:
        outcome = {"reason": stop.reason}
    except SystemExit as exc:
        outcome = {"reason": "exit", "exit_code": _exit_code(exc.code)}
    except KeyboardInterrupt:
        outcome = {"reason": "interrupted"}
    except SyntaxError as exc:
        outcome = {"reason": "syntax_error", "error": _one_line(exc),
                   "file": exc.filename, "line": exc.lineno,
                   "traceback": _user_traceback(exc)}
    except BaseException as exc:  # the user's crash is evidence, not ours
        outcome = {"reason": "crashed", "error": _one_line(exc),
                   "error_type": type(exc).__name__,
                   "traceback": _user_traceback(exc),
                   "site": _crash_site(exc)}
    finally:
        if watch.checker is not None:
            watch.checker.remove()
        if watch.change is not None and hasattr(watch.change, "remove"):
            watch.change.remove()
        hooks.remove()
    watch.finish()
    events.emit("end", steps=watch.step, first_event=watch.first_event,
                divergence=watch.divergence, nonfinite_steps=watch.nonfinite_steps,
                **outcome)


def _run_script(plan: Plan) -> None:
    script = os.path.abspath(plan.script)
    sys.argv = [plan.script, *plan.args]
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name="__main__")


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 2000 else text[:2000] + "..."


def _user_traceback(exc: BaseException) -> str:
    """The traceback as Python prints it, less the frames of nandoctor and runpy."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if is_user_file(f.filename) or "site-packages" in f.filename]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def _crash_site(exc: BaseException) -> Optional[dict]:
    user = [f for f in traceback.extract_tb(exc.__traceback__)
            if is_user_file(f.filename)]
    if not user:
        return None
    return {"file": user[-1].filename, "line": user[-1].lineno,
            "function": user[-1].name}
