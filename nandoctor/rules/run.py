"""How the run itself went: the script crashed, the replay disagreed with the
watch, or nothing explains the failure."""
from __future__ import annotations

import re

from ..evidence import Evidence
from ..findings import Cause, Finding, Fix, Location, Severity

CODES = {Cause.SCRIPT_ERROR: "ND502", Cause.NONDETERMINISM: "ND501",
         Cause.UNEXPLAINED: "ND900", Cause.BAD_TARGET: "ND202"}
# Crashes whose message names a target a loss cannot take.
_TARGET_ERRORS = re.compile(
    r"Target -?\d+ is out of bounds|out of bounds.*target|"
    r"elements of target should be between 0 and 1|t >= 0 && t < n_classes",
    re.IGNORECASE)


# BCELoss on raw scores: torch refuses inputs outside [0, 1].
_PROBABILITY_ERRORS = re.compile(r"input.*should be between 0 and 1", re.IGNORECASE)
# argparse and click, refusing what they were given.
_ARGUMENT_ERRORS = re.compile(r"unrecognized arguments|no such option|error: argument")


def check(ev: Evidence) -> list[Finding]:
    findings = []
    crash = _crash(ev)
    if crash is not None:
        findings.append(crash)
    mismatch = _nondeterminism(ev)
    if mismatch is not None:
        findings.append(mismatch)
    return findings


def unexplained(ev: Evidence, findings: list[Finding]) -> list[Finding]:
    """A failure no rule explained: say where it surfaced, and that we don't know."""
    if ev.bad_step is None or any(f.role == "root" for f in findings):
        return []
    first = ev.first_nonfinite() or {}
    where = Location(file=first.get("file"), line=first.get("line"),
                     module=first.get("module"))
    evidence = []
    if first:
        evidence.append(f"first non-finite at step {first['step']} in phase "
                        f"{first['phase']}: {first.get('tensor')}")
        if first.get("op"):
            evidence.append(f"produced by {first['op']}")
    evidence.append("no rule matched this evidence: read the operand statistics "
                    "in the JSON report (--json PATH) for clues")
    return [Finding(code=CODES[Cause.UNEXPLAINED], cause=Cause.UNEXPLAINED,
                    title="the failure has no explanation nandoctor can stand by",
                    severity=Severity.ERROR, confidence=0.2, location=where,
                    step=ev.bad_step, evidence=tuple(evidence),
                    fixes=(Fix(text="Try the probes' suggestions: a lower rate, "
                                    "gradient clipping, float64"),))]


def _crash(ev: Evidence):
    end = ev.watch.end
    reason = end.get("reason")
    if reason == "killed":
        return Finding(
            code=CODES[Cause.SCRIPT_ERROR], cause=Cause.SCRIPT_ERROR,
            title=f"the script was killed by signal {end.get('signal')}",
            severity=Severity.ERROR, confidence=0.9,
            evidence=(f"after {len(ev.watch.steps)} steps the operating system "
                      "ended the process; signal 9 usually means out of memory",),
            fixes=(Fix(text="Lower the batch size or the model size, or run with "
                            "--max-steps to stop earlier"),))
    if reason != "crashed" and not (reason == "exit" and end.get("exit_code")):
        return None
    error = end.get("error") or f"exit code {end.get('exit_code')}"
    location = Location.of_site(end.get("site"))
    if _PROBABILITY_ERRORS.search(error):
        return Finding(
            code="ND203", cause=Cause.MISSING_ACTIVATION,
            title="BCELoss got values outside [0, 1]: the sigmoid is missing",
            severity=Severity.ERROR, confidence=0.8, location=location,
            step=len(ev.watch.steps), evidence=(error,),
            fixes=(Fix(text="Feed the logits to `nn.BCEWithLogitsLoss()` instead "
                            "(it applies the sigmoid in a stable way)"),))
    if _TARGET_ERRORS.search(error):
        return Finding(
            code=CODES[Cause.BAD_TARGET], cause=Cause.BAD_TARGET,
            title="a target outside the range the loss accepts",
            severity=Severity.ERROR, confidence=0.85, location=location,
            step=len(ev.watch.steps), evidence=(error,),
            fixes=(Fix(text="Class labels must lie in [0, num_classes); BCE "
                            "targets in [0, 1]: check the label encoding"),))
    if reason == "exit":
        return _exit_with_code(ev, end.get("exit_code"))
    return Finding(
        code=CODES[Cause.SCRIPT_ERROR], cause=Cause.SCRIPT_ERROR,
        title="the script raised an error", severity=Severity.ERROR,
        confidence=0.95, location=location, step=len(ev.watch.steps),
        evidence=(error, "the full traceback is in the report"),
        fixes=(Fix(text="Fix the error at the line shown; nandoctor reports it "
                        "as it found it"),))


def _exit_with_code(ev: Evidence, code: int) -> Finding:
    """sys.exit(n) or os._exit(n): no traceback, only the script's output."""
    lines = [line for line in ev.watch.output_tail.splitlines() if line.strip()]
    evidence = [f"exit code {code} after {len(ev.watch.steps)} steps"]
    if lines:
        evidence.append(f"its last output: {lines[-1].strip()[:300]}")
    fixes = [Fix(text="Read the script's last output (below) for why it stopped")]
    if _ARGUMENT_ERRORS.search(ev.watch.output_tail):
        fixes.insert(0, Fix(
            text="The script rejected its arguments. Everything after the "
                 "script's name is passed to it: put nandoctor's own options "
                 "(--json, --max-steps, ...) before the script",
            code="nandoctor diagnose --json report.json train.py -- --lr 0.1"))
    return Finding(
        code=CODES[Cause.SCRIPT_ERROR], cause=Cause.SCRIPT_ERROR,
        title=f"the script exited with code {code}", severity=Severity.ERROR,
        confidence=0.95, step=len(ev.watch.steps), evidence=tuple(evidence),
        fixes=tuple(fixes))


def _nondeterminism(ev: Evidence):
    reproduced = ev.replay_reproduced()
    if reproduced is not False:
        return None
    watch = ev.first_event or {}
    seen = ev.replay.first_event if ev.replay else None
    replay = (f"step {seen['step']}, {seen['phase']}: {seen['tensor']}" if seen
              else "no non-finite value")
    return Finding(
        code=CODES[Cause.NONDETERMINISM], cause=Cause.NONDETERMINISM,
        title="the replay did not reproduce the run", severity=Severity.WARNING,
        confidence=0.7,
        evidence=(f"watch: step {watch.get('step')}, {watch.get('phase')}: "
                  f"{watch.get('tensor')}", f"replay: {replay}",
                  "the same seed and thread settings gave a different run: "
                  "something in the script is not seeded or not deterministic; "
                  "the op-level evidence may describe a different failure"),
        fixes=(Fix(text="Seed every source of randomness (torch, numpy, random, "
                        "DataLoader generators) and avoid time-dependent code",
                   code="torch.use_deterministic_algorithms(True)"),))
