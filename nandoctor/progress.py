"""Progress of long passes on stderr: a live line on a terminal, a line every
few seconds elsewhere (CI logs), nothing when asked to be quiet."""
from __future__ import annotations

import math
import time
from typing import Any, Optional

from rich.console import Console
from rich.progress import (
    BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
)

PLAIN_EVERY_SECONDS = 10.0
PASS_WORDS = {"watch": "watch: running the script",
              "replay": "replay: checking every op of the bad step",
              "probes": "probes: counterfactual runs",
              "sweep": "lr sweep"}


class ProgressReporter:
    """Turns pass events into progress; used as the pipeline's callback."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.live = enabled and console.is_terminal
        self._progress: Optional[Progress] = None
        self._tasks: dict[str, Any] = {}
        self._last_line = 0.0
        self._steps: dict[str, int] = {}

    def __enter__(self) -> "ProgressReporter":
        if self.live:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                console=self.console, transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def __call__(self, stage: str, info: dict) -> None:
        if not self.enabled:
            return
        name = info.get("pass", "")
        if stage == "start":
            self._start(name, info)
        elif stage == "event" and info.get("event") == "step":
            self._step(name, info)
        elif stage == "done" and self._progress is not None:
            task = self._tasks.pop(name, None)
            if task is not None:  # passes run side by side: a line each
                self._progress.remove_task(task)
        elif stage == "done":
            self.console.print(f"{name}: done in {info.get('seconds', 0):.1f} s")

    def _start(self, name: str, info: dict) -> None:
        words = PASS_WORDS.get(name, name)
        if self._progress is not None:
            if name in self._tasks:
                self._progress.remove_task(self._tasks[name])
            self._tasks[name] = self._progress.add_task(
                words, total=info.get("max_steps"), detail="")
        else:
            self.console.print(f"{words} ...")

    def _step(self, name: str, info: dict) -> None:
        step = info.get("step", 0)
        loss = info.get("loss")
        detail = f"step {step}"
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            detail += f" loss {loss:.4g}"
        elif loss is not None:
            detail += f" loss {loss}"
        task = self._tasks.get(name)
        if self._progress is not None and task is not None:
            done = max(self._steps.get(name, 0), step + 1)
            self._steps[name] = done
            self._progress.update(task, completed=done, detail=detail)
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_EVERY_SECONDS:
            self._last_line = now
            self.console.print(f"{name} {detail}")
