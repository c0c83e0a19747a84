"""Progress on stderr: a line per pass on a terminal, a line now and then
elsewhere."""
from __future__ import annotations

import io

from rich.console import Console

from nandoctor.progress import ProgressReporter


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=100)


def test_passes_side_by_side_each_show_their_own_steps():
    # The replay and a probe run at once: each line keeps its own pass's step.
    with ProgressReporter(terminal()) as progress:
        progress("start", {"pass": "replay", "max_steps": 10})
        progress("start", {"pass": "lr_x0.1", "max_steps": 20})
        progress("event", {"pass": "replay", "event": "step", "step": 3,
                           "loss": 0.5})
        progress("event", {"pass": "lr_x0.1", "event": "step", "step": 7,
                           "loss": 0.25})
        lines = {t.description: (t.completed, t.fields["detail"])
                 for t in progress._progress.tasks}
        assert lines == {
            "replay: checking every op of the bad step": (4, "step 3 loss 0.5"),
            "lr_x0.1": (8, "step 7 loss 0.25"),
        }
        progress("done", {"pass": "replay", "seconds": 1.0})
        assert [t.description for t in progress._progress.tasks] == ["lr_x0.1"]


def test_without_a_terminal_progress_is_plain_lines_naming_the_pass():
    out = io.StringIO()
    with ProgressReporter(Console(file=out, width=100)) as progress:
        progress("start", {"pass": "watch"})
        progress("event", {"pass": "watch", "event": "step", "step": 0,
                           "loss": 1.5})
        progress("done", {"pass": "watch", "seconds": 2.0})
    assert out.getvalue().splitlines() == [
        "watch: running the script ...", "watch step 0 loss 1.5",
        "watch: done in 2.0 s"]
