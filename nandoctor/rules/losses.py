"""Losses fed the wrong kind of input: NLL on raw scores, KL on probabilities."""
from __future__ import annotations

from ..evidence import Evidence
from ..findings import Cause, Finding, Fix, Location, Severity

CODE = "ND203"
_LOG_PROB_LOSSES = ("nll_loss", "kl_div")
# log_softmax can round a hair above 0; raw scores are far above it.
ROUNDING = 1e-4


def check(ev: Evidence) -> list[Finding]:
    divergence = ev.divergence or {}
    if divergence.get("kind") == "negative_loss" and divergence.get(
            "function") in _LOG_PROB_LOSSES:
        return [_negative(ev, divergence)]
    top = _max_nll_input(ev)
    if top is not None and top > ROUNDING:
        return [_positive_inputs(ev, top)]
    return []


def _negative(ev: Evidence, divergence: dict) -> Finding:
    fn = divergence["function"]
    site = divergence.get("site") or {}
    evidence = [f"{fn} returned {divergence['loss']:.4g} at step "
                f"{divergence['step']}: a negative log-likelihood of "
                "log-probabilities is never below zero"]
    top = _max_nll_input(ev)
    if top is not None and top > ROUNDING:
        evidence.append(f"its input reached {top:.4g}; log-probabilities are <= 0, "
                        "so these are raw scores (logits)")
    evidence.append("minimising it pushes the scores up without bound instead of "
                    "learning the classes")
    return Finding(
        code=CODE, cause=Cause.MISSING_ACTIVATION,
        title=f"{fn} on raw scores: log_softmax is missing",
        severity=Severity.ERROR,
        confidence=0.85 if top is not None and top > ROUNDING else 0.75,
        location=Location(file=site.get("file"), line=site.get("line")),
        step=divergence["step"], evidence=tuple(evidence),
        fixes=(Fix(text="Return log-probabilities from the model",
                   code="return F.log_softmax(logits, dim=1)"),
               Fix(text="Or keep the logits and use `nn.CrossEntropyLoss()`, which "
                        "applies log_softmax itself")),
    )


def _positive_inputs(ev: Evidence, top: float) -> Finding:
    return Finding(
        code=CODE, cause=Cause.MISSING_ACTIVATION,
        title="nll_loss receives values above zero",
        severity=Severity.WARNING, confidence=0.6,
        evidence=(f"the input of nll_loss reached {top:.4g}; log-probabilities are "
                  "<= 0, so the model's output is not a log_softmax",),
        fixes=(Fix(text="Apply `F.log_softmax(logits, dim=1)` before NLLLoss, or use "
                        "`nn.CrossEntropyLoss` on the logits"),),
        role="precursor",
    )


def _max_nll_input(ev: Evidence) -> float | None:
    values = [s["nll_input_max"] for s in ev.watch.steps
              if isinstance(s.get("nll_input_max"), (int, float))]
    return max(values) if values else None
