"""The launcher keeps one child ready for each pass still to come, no more:
a spare nobody takes imports torch on a core the running passes need."""
from __future__ import annotations

from pathlib import Path

from nandoctor import runner


class _Alive:
    def poll(self):
        return None


def _fake_spawns(monkeypatch) -> list:
    spawned = []

    def spawn(threads):
        child = runner._Child(workdir=Path("/nonexistent"), process=_Alive(),
                              threads=threads)
        spawned.append(child)
        return child

    monkeypatch.setattr(runner, "_spawn", spawn)
    return spawned


def test_a_child_is_ready_for_each_announced_pass_and_none_is_left_over(monkeypatch):
    spawned = _fake_spawns(monkeypatch)
    launcher = runner.Launcher()
    launcher.expect(1, 3)
    assert len(spawned) == 1  # one ready ahead, not three importing at once
    taken = [launcher.take(1) for _ in range(3)]
    assert taken[0] is spawned[0]
    assert len(spawned) == 3  # each take readied the next pass's child
    assert launcher._ready == []  # the last take left no spare behind


def test_passes_nobody_announced_start_their_own_child(monkeypatch):
    spawned = _fake_spawns(monkeypatch)
    launcher = runner.Launcher()
    launcher.take(2)
    assert len(spawned) == 1 and launcher._ready == []
