"""Which counterfactual runs to make, and how each one ended.

A probe is the watch pass with one change applied from outside. Probes run
with one thread each, in parallel as the cores allow; since the thread count
alone changes the numbers on CPU, a baseline under the same settings is run
beside them, and every probe is read against that baseline.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

from .config import ProbeSettings
from .evidence import Evidence, ProbeOutcome
from .opnames import forward_op_of
from .plan import GUARDABLE_OPS, ZERO_EDGE_OPS, Plan, Probe
from .runner import PassResult

BASELINE = "baseline"
# Probes run one thread each, side by side; the baseline shares the setting.
PROBE_THREADS = 1
PROBE_NICE = 10
_LOW_PRECISION = ("float16", "bfloat16")
# exp overflows float16 above ~11 and float32 above ~88.
_EXP_GUARD_FROM = 10.0


def horizon(bad_step: int, settings: ProbeSettings) -> int:
    return max(int(math.ceil(bad_step * settings.horizon_factor)),
               bad_step + settings.min_horizon)


def guard_target(evidence: Evidence) -> Optional[tuple[str, Optional[str], int]]:
    """The op and line an epsilon guard would protect, if one can."""
    forward = evidence.producer("forward") or evidence.producer("data")
    backward = evidence.producer("backward")
    phase = (evidence.first_event or {}).get("phase")
    if backward and (phase == "backward" or not forward):
        op = forward_op_of(backward.get("node") or "")
        operands = backward.get("forward_inputs") or []
        if op in GUARDABLE_OPS and backward.get("forward_line") and _at_edge(
                op, operands):
            return f"aten.{op}", backward.get("forward_file"), backward["forward_line"]
    if forward and forward.get("site"):
        op = forward["op"].removeprefix("aten.")
        if op in GUARDABLE_OPS and _at_edge(op, forward.get("inputs") or []):
            return forward["op"], forward["site"]["file"], forward["site"]["line"]
    return None


def _at_edge(op: str, operands: list[dict]) -> bool:
    """The operands sit where the op breaks (a zero, a negative, a huge exp
    argument): a guard can help there, and only there."""
    if not operands:
        return False
    if op == "exp":
        return (operands[0].get("max") or 0) > _EXP_GUARD_FROM
    if op in ("acos", "asin", "atanh"):
        return (operands[0].get("max") or 0) >= 1 or (operands[0].get("min") or 0) <= -1
    checked = operands[1:2] if op == "div" else operands[:1]
    return any(s.get("zeros") or s.get("negatives") or s.get("tiny")
               for s in checked)


def uses_low_precision(evidence: Evidence) -> bool:
    for key in ("forward", "backward", "update"):
        producer = evidence.producer(key) or {}
        outputs = [producer.get("output") or {}] + producer.get("grad_out", [])
        if any(o.get("dtype") in _LOW_PRECISION for o in outputs):
            return True
    stats = (evidence.first_event or {}).get("stats", {})
    return stats.get("dtype") in _LOW_PRECISION


def independent(settings: ProbeSettings) -> list[Probe]:
    """Probes that need nothing from the replay: the step size and its size."""
    probes = [Probe(name=f"lr_x{f:g}", lr_factor=f) for f in settings.lr_factors]
    probes.append(Probe(name="clip_grad_norm", clip_norm=settings.clip_norm))
    return probes


def dependent(evidence: Evidence, settings: ProbeSettings) -> list[Probe]:
    """Probes chosen from what the replay found."""
    probes = []
    target = guard_target(evidence)
    if settings.guard and target is not None:
        op, file, line = target
        probes.append(Probe(name="eps_guard", guard_op=op, guard_file=file,
                            guard_line=line))
    if settings.precision and uses_low_precision(evidence):
        probes.append(Probe(name="no_autocast", no_autocast=True))
    elif settings.precision and overflowed(evidence) and not _ran_away_before(evidence):
        probes.append(Probe(name="float64", float64=True))
    phase = (evidence.first_event or {}).get("phase")
    weights_survived = not any(isinstance(s.get("param_norm"), str)
                               for s in evidence.watch.steps)
    if settings.data and (phase == "input" or phase == "loss" and weights_survived
                          and not _ran_away_before(evidence)):
        probes.append(Probe(name="skip_nonfinite_batches", skip_nonfinite_steps=True))
    if settings.data and phase == "input":
        probes.append(Probe(name="drop_nonfinite_samples",
                            drop_nonfinite_samples=True))
    return probes


def _ran_away_before(evidence: Evidence) -> bool:
    """The loss had run away while still finite. What acts only from the
    first non-finite value on cannot change that run: skipping the steps
    whose gradients are non-finite, or float64, whose wider range only moves
    the overflow later."""
    divergence, bad = evidence.divergence, evidence.bad_step
    return divergence is not None and bad is not None and divergence["step"] < bad


def overflowed(evidence: Evidence) -> bool:
    """The first producer made inf from finite values: a range problem."""
    producer = evidence.primary_producer()
    if producer is None:
        return evidence.first_event is not None
    op = producer.get("op", "").removeprefix("aten.")
    out = producer.get("output") or (producer.get("grad_out") or [{}])[0]
    return op == "exp" or (op not in GUARDABLE_OPS and bool(
        out.get("posinf") or out.get("neginf")))


def describe_change(probe: Optional[Probe]) -> str:
    if probe is None:
        return "none (1 thread, the probes' settings)"
    if probe.lr_factor != 1.0:
        return f"learning rate x{probe.lr_factor:g}"
    if probe.clip_norm is not None:
        return f"clip_grad_norm_(max_norm={probe.clip_norm:g}) before every step"
    if probe.float64:
        return "model, inputs and losses in float64"
    if probe.no_autocast:
        return "autocast disabled (float32)"
    if probe.guard_op:
        text = (f"epsilon guard ({probe.guard_eps:g}) on {probe.guard_op} at "
                f"line {probe.guard_line}")
        if probe.guard_op.removeprefix("aten.") in ZERO_EDGE_OPS:
            text += " and on the line's other logs, roots and divisions"
        return text
    if probe.skip_nonfinite_steps:
        return "skip every step whose gradients are non-finite"
    if probe.drop_nonfinite_samples:
        return "drop samples with non-finite inputs or targets"
    return "no change"


def probe_plan(base: Plan, probe: Optional[Probe], until: int) -> Plan:
    tolerant = probe is not None and (probe.skip_nonfinite_steps
                                      or probe.drop_nonfinite_samples)
    return replace(
        base, threads=PROBE_THREADS, nice=PROBE_NICE, max_steps=until,
        probe=probe, check_steps=[],
        check_data=False,
        # A probe's verdict is clear at its first non-finite step, except for
        # those that step over bad batches: they must show training goes on.
        stop_after_nonfinite=None if tolerant else 0,
        stop_after_runaway=0,
    )


def outcome(result: PassResult, name: str, change: str, until: int,
            lr_factor: Optional[float] = None) -> ProbeOutcome:
    losses = [v for v in result.losses() if v is not None]
    finite = [v for v in losses if math.isfinite(v)]
    bad = next((s["step"] for s in result.steps if _broken(s)), None)
    divergence = result.divergence
    return ProbeOutcome(
        name=name, change=change, horizon=until,
        first_nonfinite_step=bad,
        first_divergence_step=divergence["step"] if divergence else None,
        final_loss=_tail_mean(finite) if finite and bad is None else None,
        best_loss=min(finite) if finite else None,
        first_loss=finite[0] if finite else None,
        steps_run=len(result.steps), ended=result.reason, lr_factor=lr_factor,
    )


def _broken(step: dict) -> bool:
    """A non-finite loss the probe did not skip on purpose (a GradScaler's
    skip still counts), or non-finite weights after the step."""
    loss, weights = step.get("loss"), step.get("param_norm")
    bad_loss = isinstance(loss, str) and step.get("skipped_by") != "probe"
    return bad_loss or isinstance(weights, str)


def _tail_mean(values: list[float], n: int = 10) -> float:
    tail = values[-n:]
    return sum(tail) / len(tail)
