"""Rules: pure functions from the evidence to findings, one module per family."""
from __future__ import annotations

from ..evidence import Evidence
from ..findings import Finding


def run_rules(evidence: Evidence) -> list[Finding]:
    return []


def rank(findings: list[Finding]) -> list[Finding]:
    return findings
