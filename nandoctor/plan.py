"""What one child process is asked to do: plain data shared by parent and child.

The parent writes a `Plan` as JSON; `nandoctor.capture` reads it. Nothing here
imports torch, so the parent stays fast to start.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

# Ops an epsilon guard can make safe: clamp the argument of a log, sqrt or
# fractional power, keep a divisor away from zero, cap the argument of exp.
GUARDABLE_OPS = frozenset({"log", "log2", "log10", "log1p", "sqrt", "rsqrt",
                           "pow", "acos", "asin", "atanh", "exp", "div",
                           "reciprocal"})
# Ops that break at zero. A guard on one of them covers the others at the
# same line: a loss like log(var) + (y - mu)**2 / var fails in both places
# at once, and a guard on the log alone would wrongly clear the line.
ZERO_EDGE_OPS = frozenset({"log", "log2", "log10", "sqrt", "rsqrt", "div",
                           "reciprocal"})


@dataclass
class Probe:
    """One counterfactual change applied from outside the script."""

    name: str
    lr_factor: float = 1.0
    clip_norm: Optional[float] = None
    float64: bool = False
    no_autocast: bool = False
    skip_nonfinite_steps: bool = False
    drop_nonfinite_samples: bool = False
    guard_op: Optional[str] = None  # aten op name, e.g. "aten.log"
    guard_file: Optional[str] = None
    guard_line: Optional[int] = None
    guard_eps: float = 1e-6


@dataclass
class Sweep:
    """Exponential learning-rate schedule for the range test."""

    start_lr: float
    end_lr: float
    steps: int
    divergence_factor: float = 4.0


@dataclass
class Plan:
    script: str
    args: list[str] = field(default_factory=list)
    seed: Optional[int] = 0
    seed_offset: int = 0
    # None: torch's own default, as in a plain run; the child reports it.
    threads: Optional[int] = None
    # Probes run at a lower priority, so a replay beside them keeps its pace.
    nice: int = 0
    max_steps: Optional[int] = None
    stop_after_nonfinite: Optional[int] = 10
    # A finite runaway usually overflows later: keep going to see where.
    stop_after_runaway: Optional[int] = 100
    runaway_factor: float = 1000.0
    runaway_patience: int = 10
    stats_every: int = 10
    # replay: op-level checks during these steps; check_data also watches the
    # ops outside forward/backward/update from the start of the script.
    check_steps: list[int] = field(default_factory=list)
    check_data: bool = False
    # The ops inside optimizer.step(): needed only when the watch saw the
    # update make the weights non-finite.
    check_update: bool = True
    probe: Optional[Probe] = None
    sweep: Optional[Sweep] = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        raw: dict[str, Any] = json.loads(text)
        probe = raw.pop("probe", None)
        sweep = raw.pop("sweep", None)
        return cls(
            **raw,
            probe=Probe(**probe) if probe else None,
            sweep=Sweep(**sweep) if sweep else None,
        )

    def write(self, path: Path) -> None:
        path.write_text(self.to_json())
