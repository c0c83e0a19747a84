"""Bad data: non-finite inputs or targets, targets a loss cannot take."""
from __future__ import annotations

from ..evidence import Evidence
from ..findings import Cause, Finding, Fix, Location, Severity
from .common import location, plural, probe_failed_like_baseline, verified, where

CODES = {Cause.BAD_INPUT_DATA: "ND201", Cause.BAD_TARGET: "ND202"}
_TARGET_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits",
                  "poisson_nll_loss", "cross_entropy")


def check(ev: Evidence) -> list[Finding]:
    findings = []
    event = ev.first_event
    if event is not None and event.get("phase") == "input":
        findings.append(_nonfinite_batch(ev, event))
    divergence = ev.divergence or {}
    if divergence.get("kind") == "negative_loss" and divergence.get(
            "function") in _TARGET_LOSSES:
        findings.append(_targets_out_of_range(ev, divergence))
    return findings


def _nonfinite_batch(ev: Evidence, event: dict) -> Finding:
    target = event.get("tensor", "").startswith("target")
    stats = event.get("stats") or {}
    layout = event.get("layout") or {}
    bad = stats.get("nan", 0) + stats.get("posinf", 0) + stats.get("neginf", 0)
    what = "target" if target else "input batch"
    evidence = [f"at step {event['step']} the {what} ({event.get('tensor')}) held "
                f"{plural(bad, 'non-finite value')}"
                + _rows(layout)]
    source = ev.primary_producer()
    if source is not None and source.get("pass") == "entered":
        evidence.append(f"no torch op made them: they were already in the data "
                        f"when {where(source)} turned it into a tensor"
                        + _rows(source.get("layout") or {}, "dataset"))
    elif source is not None:
        evidence.append(f"they were made by {where(source)} before the model saw "
                        "the batch")
    if target:
        evidence.append("the predictions were finite: the loss is NaN because of "
                        "the target alone")
    if probe_failed_like_baseline(ev, "lr_x0.1"):
        evidence.append("with a tenth of the learning rate the NaN comes at the "
                        "same step: the data, not the step size")
    fixes = [
        verified("Drop or impute the rows with missing values before training "
                 "(e.g. `SimpleImputer`, or `keep = torch.isfinite(y)`)", None, ev,
                 "drop_nonfinite_samples", "skip_nonfinite_batches"),
        Fix(text="Check the data once up front",
            code="assert torch.isfinite(x).all() and torch.isfinite(y).all()"),
    ]
    cause = Cause.BAD_TARGET if target else Cause.BAD_INPUT_DATA
    title = ("non-finite values in the targets" if target
             else "non-finite values in the input data")
    loc = location(source) if source is not None else Location(
        file=(event.get("site") or {}).get("file"),
        line=(event.get("site") or {}).get("line"), module=event.get("module"))
    confidence = 0.9 if source is None or source.get("pass") == "entered" else 0.8
    return Finding(code=CODES[cause], cause=cause, title=title,
                   severity=Severity.ERROR, confidence=confidence, location=loc,
                   step=event["step"], evidence=tuple(evidence),
                   figures={"stats": stats, "layout": layout}, fixes=tuple(fixes))


def _targets_out_of_range(ev: Evidence, divergence: dict) -> Finding:
    fn = divergence.get("function")
    evidence = [f"{fn} returned {divergence.get('loss'):.4g} at step "
                f"{divergence['step']}; with targets in [0, 1] (or valid class "
                "probabilities) it cannot go below zero"]
    fixes = [Fix(text="Scale or threshold the targets into [0, 1] before the loss")]
    return Finding(code=CODES[Cause.BAD_TARGET], cause=Cause.BAD_TARGET,
                   title=f"targets outside the range {fn} expects",
                   severity=Severity.ERROR, confidence=0.7,
                   location=Location.of_site(divergence.get("site")),
                   step=divergence["step"], evidence=tuple(evidence),
                   fixes=tuple(fixes))


def _rows(layout: dict, noun: str = "batch") -> str:
    if not layout.get("samples"):
        return ""
    text = f", in {noun} rows {layout['samples'][:8]}"
    if layout.get("features") is not None:
        text += f", columns {layout['features'][:8]}"
    return text
