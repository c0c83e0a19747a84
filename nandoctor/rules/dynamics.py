"""Training dynamics: a step size too large, gradients that explode, an
initialisation at the wrong scale, gradients never zeroed between steps.

None of these has a bad op to point at: the values grow until something
overflows. They are told apart by the shape of the history and by the probes
(a tenth of the rate, gradient clipping), and each claims less confidence
when an op-level cause already explains the failure.
"""
from __future__ import annotations

import math
from typing import Optional

from ..evidence import Evidence
from ..findings import Cause, Finding, Fix, Location, Severity
from . import numerics, signals
from .common import number, probe_learns, verified

CODES = {
    Cause.LR_TOO_HIGH: "ND301",
    Cause.EXPLODING_GRADIENTS: "ND302",
    Cause.MISSING_ZERO_GRAD: "ND303",
    Cause.BAD_INITIALIZATION: "ND304",
}
LARGE_FIRST_GRAD = 1e3
LARGE_FIRST_LOSS = 100.0
UNSCALED_INPUT_STD = 5.0
EARLY_FAILURE = 100
# A schedule that multiplied the rate this much after the best loss drove
# the failure.
RATE_RISE = 10.0


def check(ev: Evidence) -> list[Finding]:
    failed = ev.bad_step is not None
    findings = [f for f in (_missing_zero_grad(ev, failed), _bad_init(ev, failed))
                if f is not None]
    if failed:
        explained = _explained_by_op(ev)
        dyn = signals.dynamics(ev)
        findings += [f for f in (_lr_too_high(ev, dyn, explained),
                                 _exploding(ev, dyn, explained)) if f is not None]
    return findings


def _explained_by_op(ev: Evidence) -> bool:
    if (ev.first_event or {}).get("phase") == "input":
        return True
    return any(f.role == "root" and f.confidence >= 0.6
               for f in numerics.check(ev))


def _lr_too_high(ev: Evidence, dyn: signals.Dynamics,
                 explained: bool) -> Optional[Finding]:
    lower = probe_learns(ev, "lr_x0.1") or _any_lr_probe(ev)
    rise = _scheduled_rise(ev)
    if lower is None and not dyn.rises_from_start and rise is None:
        return None
    confidence = 0.3 + 0.25 * bool(lower) + 0.2 * dyn.rises_from_start
    confidence += 0.3 * (rise is not None)
    confidence -= 0.3 * explained
    if confidence < 0.3:
        return None
    evidence = []
    if rise is not None:
        best_rate, best_step, peak, peak_step = rise
        evidence.append(f"the learning rate rose from {number(best_rate)} at step "
                        f"{best_step}, where the loss was lowest, to "
                        f"{number(peak)} by step {peak_step} "
                        f"({peak / best_rate:.3g}x): the schedule drove it past "
                        "what this model can take")
    if dyn.rises_from_start:
        evidence.append(f"the loss rose on {dyn.rising_fraction:.0%} of the first "
                        f"steps, from {number(dyn.first_loss)} to "
                        f"{number(dyn.last_loss)}: each update overshoots")
    if dyn.grad_growth_per_step and dyn.grad_growth_per_step > 1.5:
        evidence.append(f"the gradient norm grew {dyn.grad_growth_per_step:.2g}x "
                        f"per step ({number(dyn.first_grad)} -> "
                        f"{number(dyn.last_grad)})")
    if lower is not None:
        evidence.append(lower.summary())
    else:
        evidence.append("no probe confirmed it: a lower rate was not tried or "
                        "still failed")
    input_std = _input_std(ev)
    if input_std is not None and input_std > UNSCALED_INPUT_STD:
        evidence.append(f"the inputs are not standardised (std {input_std:.3g}); "
                        "unscaled features shrink the largest stable rate")
    fixes = [verified("Lower the learning rate (a tenth is a good start)", None,
                      ev, lower.name if lower else "lr_x0.1")]
    if ev.stable_lr is not None:
        evidence.append(f"runs at fixed rates below the failing one: the "
                        f"largest rate that stayed stable is {ev.stable_lr:.3g}")
        fixes.insert(0, Fix(text=f"Use a learning rate of at most "
                                 f"{ev.stable_lr:.3g}, with some margin",
                            verified_by="lr_sweep",
                            verification="a fixed-rate run at this rate stayed "
                                         "stable"))
    if input_std is not None and input_std > UNSCALED_INPUT_STD:
        fixes.append(Fix(text="Standardise the inputs (zero mean, unit variance)"))
    if rise is not None:
        fixes.insert(0, Fix(text="Cap the schedule: end a warm-up at the base "
                                 "rate and hold it there",
                            code="LambdaLR(opt, lambda e: min(1.0, (e + 1) / warmup))"))
    fixes.append(Fix(text="Find a safe rate with `nandoctor lr-sweep`"))
    return Finding(code=CODES[Cause.LR_TOO_HIGH], cause=Cause.LR_TOO_HIGH,
                   title="learning rate too high", severity=Severity.ERROR,
                   confidence=min(confidence, 0.8),
                   location=_scheduler_location(ev) if rise else _lr_location(ev),
                   step=ev.bad_step, evidence=tuple(evidence),
                   figures=_figures(dyn), fixes=tuple(fixes))


def _exploding(ev: Evidence, dyn: signals.Dynamics,
               explained: bool) -> Optional[Finding]:
    clipped = probe_learns(ev, "clip_grad_norm")
    lower = probe_learns(ev, "lr_x0.1")
    big_first = dyn.first_grad is not None and dyn.first_grad >= LARGE_FIRST_GRAD
    recurrent = signals.has_recurrent(ev)
    confidence = (0.25 + 0.3 * bool(clipped) + 0.15 * big_first + 0.1 * recurrent
                  + 0.1 * bool(clipped and not lower) - 0.3 * explained)
    if confidence < 0.35 or not (clipped or big_first):
        return None
    if not recurrent and (not _trains_well(clipped) or dyn.rises_from_start):
        # Outside recurrent models the probes cannot tell this from other
        # causes, so claim little: a huge first gradient also comes from
        # unscaled targets or inputs, where clipping only slows the damage;
        # and a loss that overshot from the first step on took steps too
        # large, which clipping shortens as a lower rate would.
        confidence = min(confidence, 0.5)
    evidence = []
    if big_first:
        evidence.append(f"the gradient norm was already {number(dyn.first_grad)} "
                        "at the first step")
    if dyn.last_grad and dyn.first_grad:
        evidence.append(f"gradient norm before the failure: {number(dyn.last_grad)}")
    if recurrent:
        evidence.append("the model is recurrent: backpropagation through time "
                        "multiplies by the recurrent weights once per time step")
    if clipped is not None:
        evidence.append(clipped.summary())
    lr_probe = ev.probe("lr_x0.1")
    if lr_probe is not None and not lower:
        evidence.append(f"a lower rate did not fix it: {lr_probe.summary()}")
    fixes = [verified("Clip the gradient norm before each step",
                      "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)",
                      ev, "clip_grad_norm")]
    if recurrent:
        fixes.append(Fix(text="Use an LSTM/GRU, or an orthogonal recurrent init "
                              "scaled below 1, instead of an identity init"))
    return Finding(code=CODES[Cause.EXPLODING_GRADIENTS],
                   cause=Cause.EXPLODING_GRADIENTS, title="exploding gradients",
                   severity=Severity.ERROR, confidence=min(confidence, 0.85),
                   location=_lr_location(ev), step=ev.bad_step,
                   evidence=tuple(evidence), figures=_figures(dyn),
                   fixes=tuple(fixes))


def _missing_zero_grad(ev: Evidence, failed: bool) -> Optional[Finding]:
    stale, checked = signals.stale_gradients(ev)
    if checked < 3 or stale < 0.5 * checked:
        return None
    grads = [round(v, 3) for _, v in ev.series("grad_norm")[:8]]
    evidence = [f"before {stale} of {checked} steps, .grad still held the "
                "previous step's gradient when backward() ran: the gradients "
                "add up across steps",
                f"gradient norm by step: {grads} ..."]
    return Finding(
        code=CODES[Cause.MISSING_ZERO_GRAD], cause=Cause.MISSING_ZERO_GRAD,
        title="gradients are not zeroed between steps",
        severity=Severity.ERROR if failed else Severity.WARNING,
        confidence=0.9 if failed else 0.6, location=_lr_location(ev),
        step=ev.bad_step, evidence=tuple(evidence),
        fixes=(Fix(text="Call zero_grad() once per iteration, inside the batch "
                        "loop, before backward()", code="optimizer.zero_grad()"),),
        role="root" if failed else "precursor",
    )


def _bad_init(ev: Evidence, failed: bool) -> Optional[Finding]:
    gains = signals.weight_gains(ev)
    worst = max(gains, key=lambda g: g[2], default=None)
    big_weights = worst is not None and worst[2] >= signals.WEIGHT_GAIN_LIMIT
    growth = signals.growing_layers(ev)
    if not big_weights and growth is None:
        return None
    dyn = signals.dynamics(ev)
    huge_start = (dyn.first_loss is not None and dyn.first_loss >= LARGE_FIRST_LOSS
                  and ev.bad_step is not None and ev.bad_step <= EARLY_FAILURE)
    confidence = (0.3 + 0.3 * big_weights + 0.2 * (growth is not None)
                  + 0.15 * huge_start)
    evidence = []
    if big_weights:
        name, std, gain = worst
        evidence.append(f"weight {name} has std {std:.3g}; for its fan-in about "
                        f"{std / gain:.3g} keeps activations at scale "
                        f"({gain:.3g}x too large)")
    if growth is not None:
        evidence.append(f"at step 0 the activation scale grows about {growth:.3g}x "
                        "per layer")
    if dyn.first_loss is not None:
        evidence.append(f"loss at step 0: {number(dyn.first_loss)}")
    if dyn.first_grad is not None:
        evidence.append(f"gradient norm at step 0: {number(dyn.first_grad)}")
    fixes = (Fix(text="Initialise with a fan-in scale, e.g. He init for ReLU",
                 code="nn.init.kaiming_normal_(w, nonlinearity='relu')"),
             Fix(text="or scale random weights by sqrt(2 / fan_in)",
                 code="torch.randn(fan_in, fan_out) * (2 / fan_in) ** 0.5"))
    location = Location(module=worst[0]) if worst else Location()
    return Finding(
        code=CODES[Cause.BAD_INITIALIZATION], cause=Cause.BAD_INITIALIZATION,
        title="weights initialised at the wrong scale",
        severity=Severity.ERROR if failed else Severity.WARNING,
        confidence=min(confidence, 0.85) if failed else 0.5, location=location,
        step=0, evidence=tuple(evidence), fixes=fixes,
        role="root" if failed else "precursor",
    )


def _trains_well(probe) -> bool:
    """The probe's loss fell to under half of where it started."""
    if probe is None or probe.final_loss is None or probe.first_loss is None:
        return False
    return probe.final_loss <= 0.5 * probe.first_loss


def _any_lr_probe(ev: Evidence):
    for probe in ev.probes:
        if probe.name.startswith("lr_x") and probe_learns(ev, probe.name):
            return probe
    return None


def _input_std(ev: Evidence) -> Optional[float]:
    stds = [i.get("std") for s in ev.watch.steps for i in s.get("inputs", [])
            if isinstance(i.get("std"), (int, float)) and math.isfinite(i["std"])]
    return max(stds) if stds else None


def _scheduled_rise(ev: Evidence) -> Optional[tuple[float, int, float, int]]:
    """(rate, step) at the best loss and (rate, step) at the highest rate
    after it, when a schedule raised the rate tenfold or more past the point
    where training went best: a warm-up left without a cap. A warm-up that
    ended before the best loss is no suspect."""
    bad = ev.bad_step
    points = [(s["step"], max(s["lrs"]), s.get("loss")) for s in ev.watch.steps
              if s.get("lrs") and all(isinstance(r, (int, float)) for r in s["lrs"])
              and (bad is None or s["step"] <= bad)]
    finite = [p for p in points
              if isinstance(p[2], (int, float)) and math.isfinite(p[2])]
    if not finite:
        return None
    best_step, best_rate, _ = min(finite, key=lambda p: p[2])
    later = [p for p in points if p[0] > best_step]
    if best_rate <= 0 or not later:
        return None
    peak_step, peak, _ = max(later, key=lambda p: p[1])
    if peak < RATE_RISE * best_rate:
        return None
    return best_rate, best_step, peak, peak_step


def _scheduler_location(ev: Evidence) -> Location:
    made = ev.watch.of_kind("scheduler")
    at = Location.of_site(made[0].get("site") if made else None)
    return at if at.line else _lr_location(ev)


def _lr_location(ev: Evidence) -> Location:
    return Location.of_site((ev.first_event or {}).get("site"))


def _figures(dyn: signals.Dynamics) -> dict:
    return {"first_loss": dyn.first_loss, "last_loss": dyn.last_loss,
            "first_grad_norm": dyn.first_grad, "last_grad_norm": dyn.last_grad,
            "grad_growth_per_step": dyn.grad_growth_per_step,
            "rising_fraction": dyn.rising_fraction}
