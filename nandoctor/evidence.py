"""What the passes observed, gathered for the rules and the report.

Plain data over the runner's results: no torch, no rendering, no decisions
beyond naming what was seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from .runner import PassResult


@dataclass
class ProbeOutcome:
    """How a counterfactual run ended, against the baseline of the same threads."""

    name: str
    change: str
    horizon: int
    first_nonfinite_step: Optional[int]
    first_divergence_step: Optional[int]
    final_loss: Optional[float]
    best_loss: Optional[float]
    first_loss: Optional[float]
    steps_run: int
    ended: str
    # The factor on every group's rate, for a learning-rate probe.
    lr_factor: Optional[float] = None

    @property
    def failed(self) -> bool:
        return (self.first_nonfinite_step is not None
                or self.first_divergence_step is not None)

    @property
    def crashed(self) -> bool:
        return self.ended in ("crashed", "killed", "timeout", "syntax_error")

    @property
    def learns(self) -> bool:
        """Stayed finite to its horizon and ended below where it started."""
        if self.failed or self.crashed or self.final_loss is None:
            return False
        return self.first_loss is None or self.final_loss <= self.first_loss

    def verdict(self) -> str:
        """How the run ended, in a few words: `non-finite at step 30`."""
        if self.crashed:
            return f"ended early ({self.ended})"
        if self.first_nonfinite_step is not None:
            return f"non-finite at step {self.first_nonfinite_step}"
        if self.first_divergence_step is not None:
            return f"loss ran away from step {self.first_divergence_step}"
        return f"finite for all {self.steps_run} steps"

    def summary(self) -> str:
        """`with learning rate x0.1: finite for all 57 steps, loss 10.5 -> 10.0`."""
        text = f"with {self.change}: {self.verdict()}"
        if self.first_nonfinite_step is None and not self.crashed:
            text += f", loss {_fmt(self.first_loss)} -> {_fmt(self.final_loss)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "change": self.change, "horizon": self.horizon,
            "first_nonfinite_step": self.first_nonfinite_step,
            "first_divergence_step": self.first_divergence_step,
            "final_loss": self.final_loss, "best_loss": self.best_loss,
            "first_loss": self.first_loss,
            "steps_run": self.steps_run, "ended": self.ended,
        }


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4g}"


@dataclass
class Evidence:
    """Everything the rules may read."""

    script: str
    watch: PassResult
    replay: Optional[PassResult] = None
    probes: list[ProbeOutcome] = field(default_factory=list)
    baseline: Optional[ProbeOutcome] = None
    stable_lr: Optional[float] = None

    @property
    def first_event(self) -> Optional[dict]:
        return self.watch.first_event

    @property
    def divergence(self) -> Optional[dict]:
        return self.watch.divergence

    @property
    def bad_step(self) -> Optional[int]:
        event = self.first_event
        if event is not None:
            return event["step"]
        divergence = self.divergence
        return divergence["step"] if divergence else None

    def producer(self, key: str) -> Optional[dict]:
        """A replay producer: forward, forward_nan, backward, update, data, masked."""
        if self.replay is None:
            return None
        return next((e for e in self.replay.of_kind("producer")
                     if e.get("key") == key), None)

    def primary_producer(self) -> Optional[dict]:
        """The replay's producer for the phase where the watch saw the event."""
        phase = (self.first_event or {}).get("phase")
        order = {
            "input": ("data", "forward"),
            "forward": ("forward", "data"),
            "loss": ("forward", "data"),
            "backward": ("backward", "forward"),
            "optimizer": ("update", "backward"),
        }.get(phase, ())
        for key in order:
            producer = self.producer(key)
            if producer is not None:
                return producer
        return None

    def replay_reproduced(self) -> Optional[bool]:
        """Did the replay see the watch's first event, at the same step and phase?"""
        if self.replay is None or self.first_event is None:
            return None
        seen = self.replay.first_event
        if seen is None:
            return False
        return (seen["step"], seen["phase"], seen["tensor"]) == (
            self.first_event["step"], self.first_event["phase"],
            self.first_event["tensor"])

    def first_nonfinite(self) -> Optional[dict]:
        """The watch's event with the replay's producer merged in."""
        event = self.first_event
        if event is None:
            return None
        merged = {k: event[k] for k in ("step", "phase", "tensor") if k in event}
        merged["stats"] = event.get("stats")
        for key in ("parameter", "group", "module", "function", "layout"):
            if key in event:
                merged[key] = event[key]
        site = event.get("site") or {}
        merged["seen_at"] = {"file": site.get("file"), "line": site.get("line")}
        producer = self.primary_producer()
        if producer is not None:
            where = producer.get("site") or {}
            merged.update(
                op=producer.get("op"), call=producer.get("call"),
                module=producer.get("module") or merged.get("module"),
                file=where.get("file") or producer.get("forward_file"),
                line=where.get("line") or producer.get("forward_line"),
                producer_pass=producer.get("pass"),
            )
            for key in ("node", "forward_file", "forward_line", "inputs",
                        "output", "forward_inputs", "grad_in", "grad_out",
                        "masked_from"):
                if key in producer:
                    merged[key] = producer[key]
            if "layout" in producer and "layout" not in merged:
                merged["layout"] = producer["layout"]
        else:
            merged.update(file=site.get("file"), line=site.get("line"))
        nan = self.producer(f"{(producer or {}).get('key')}_nan")
        if (nan is not None and producer is not None
                and nan.get("op") != producer.get("op")):
            merged["first_nan"] = {"op": nan.get("op"), "call": nan.get("call"),
                                   **(nan.get("site") or {})}
        return merged

    def probe(self, name: str) -> Optional[ProbeOutcome]:
        return next((p for p in self.probes if p.name == name), None)

    @property
    def baseline_reproduced(self) -> bool:
        """The probes' baseline (one thread) failed too, or it was not run.
        When it ran clean, the failure hangs on the thread count, and a probe
        that runs clean proves nothing about its change."""
        base = self.baseline
        return base is None or base.failed or base.crashed

    def finite_losses(self) -> list[tuple[int, float]]:
        return [(s["step"], v) for s, v in zip(self.watch.steps, self.watch.losses())
                if v is not None and math.isfinite(v)]

    def series(self, key: str) -> list[tuple[int, float]]:
        out = []
        for s in self.watch.steps:
            value = s.get(key)
            if isinstance(value, (int, float)):
                out.append((s["step"], float(value)))
        return out

    def step_record(self, step: int) -> Optional[dict]:
        return next((s for s in self.watch.steps if s["step"] == step), None)

    def init_records(self) -> list[dict]:
        """Output statistics of each layer during the first forward pass."""
        first = self.step_record(0)
        return first.get("init", []) if first else []

    def init_records_weights(self) -> list[dict]:
        """Standard deviation and fans of each weight matrix at step 0."""
        first = self.step_record(0)
        return first.get("weights", []) if first else []
