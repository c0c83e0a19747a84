"""Rules: pure functions from the evidence to findings, one module per family.

`run_rules` asks every family; `rank` orders the answers so the report leads
with the root cause and keeps where it surfaced, and warning signs, after it.
"""
from __future__ import annotations

from dataclasses import replace

from ..evidence import Evidence
from ..findings import Cause, Finding
from . import data, dynamics, losses, numerics, precursors, run

FAMILIES = (run.check, data.check, losses.check, numerics.check,
            dynamics.check, precursors.check)
ROLE_ORDER = {"root": 0, "surfaced": 1, "precursor": 2}
# Causes that, once established, explain growth that looks like a step size
# problem: the rate and the gradient size are then only where it shows.
STRUCTURAL = {Cause.MISSING_ZERO_GRAD, Cause.BAD_INITIALIZATION}
SYMPTOMS = {Cause.LR_TOO_HIGH, Cause.EXPLODING_GRADIENTS, Cause.NUMERIC_OVERFLOW}
DEMOTE_AT = 0.6


def run_rules(evidence: Evidence) -> list[Finding]:
    findings = [f for family in FAMILIES for f in family(evidence)]
    findings += run.unexplained(evidence, findings)
    return findings


def rank(findings: list[Finding]) -> list[Finding]:
    findings = _demote_symptoms(_dedupe(findings))
    return sorted(findings, key=lambda f: (ROLE_ORDER.get(f.role, 3),
                                           -f.confidence, -f.severity.rank))


def _demote_symptoms(findings: list[Finding]) -> list[Finding]:
    structural = any(f.cause in STRUCTURAL and f.role == "root"
                     and f.confidence >= DEMOTE_AT for f in findings)
    if not structural:
        return findings
    return [replace(f, role="surfaced", confidence=round(f.confidence * 0.6, 2))
            if f.cause in SYMPTOMS and f.role == "root" else f for f in findings]


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (cause, location): the most confident one."""
    best: dict[tuple, Finding] = {}
    for f in findings:
        key = (f.cause, f.location, f.role)
        if key not in best or f.confidence > best[key].confidence:
            best[key] = f
    return list(best.values())
