"""The diagnosis pipeline: watch, replay, probes, rules.

Each pass is a fresh child process. This module decides what to run next
from what the last pass saw; it prints nothing (progress goes to a callback)
and renders nothing.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

from . import probes as probe_runs
from .config import Settings
from .errors import NandoctorError
from .evidence import Evidence
from .exitcodes import ExitCode
from .findings import Finding
from .plan import Plan
from .rules import rank, run_rules
from .runner import PassResult, run_pass, run_passes

ProgressCallback = Callable[[str, dict], None]

STATUS_HEALTHY = "healthy"
STATUS_DIVERGED = "diverged"
STATUS_CRASHED = "crashed"
STATUS_TIMEOUT = "timeout"
STATUS_INTERRUPTED = "interrupted"


@dataclass
class Target:
    """The script to run and its arguments, checked before anything starts."""

    script: Path
    args: list[str] = field(default_factory=list)


@dataclass
class Diagnosis:
    target: Target
    settings: Settings
    status: str
    evidence: Evidence
    findings: list[Finding] = field(default_factory=list)
    threads: int = 1
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return {
            STATUS_HEALTHY: ExitCode.HEALTHY,
            STATUS_TIMEOUT: ExitCode.HEALTHY,
            STATUS_DIVERGED: ExitCode.DIVERGED,
            STATUS_CRASHED: ExitCode.SCRIPT_CRASHED,
            STATUS_INTERRUPTED: ExitCode.INTERRUPTED,
        }[self.status]


def check_target(script: str, args: list[str]) -> Target:
    """A script that can be started: exists, is a file, compiles."""
    path = Path(script)
    if not path.exists():
        raise NandoctorError(
            f"{script}: no such file. Give the path of your training script, "
            "e.g. `nandoctor diagnose train.py -- --lr 0.1`."
        )
    if path.is_dir():
        raise NandoctorError(
            f"{script}: is a folder, not a script. Name the training script "
            f"inside it, e.g. `nandoctor diagnose {path / 'train.py'}`."
        )
    try:
        source = path.read_bytes()
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise NandoctorError(
            f"{exc.filename or script}:{exc.lineno or 0}:{exc.offset or 0}: the "
            f"script does not compile ({exc.msg}). nandoctor runs Python training "
            "scripts; fix the syntax error and run again."
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise NandoctorError(
            f"{script}: is not a Python source file (it holds bytes Python cannot "
            "read). Pass the .py file that trains your model."
        ) from None
    except OSError as exc:
        raise NandoctorError(f"{script}: cannot be read ({exc.strerror}).") from None
    return Target(script=path, args=list(args))


def default_threads(settings: Settings) -> int:
    if settings.threads:
        return settings.threads
    import torch  # the plain run's default, so failing steps match it

    return torch.get_num_threads()


def base_plan(target: Target, settings: Settings, threads: int) -> Plan:
    watch = settings.watch
    return Plan(
        script=str(target.script), args=list(target.args), seed=settings.seed,
        threads=threads, max_steps=settings.max_steps,
        stop_after_nonfinite=watch.steps_after_nonfinite,
        runaway_factor=watch.runaway_factor,
        runaway_patience=watch.runaway_patience,
        stats_every=watch.stats_every,
    )


def diagnose(
    target: Target,
    settings: Settings,
    progress: Optional[ProgressCallback] = None,
    probes: bool = True,
) -> Diagnosis:
    notify = progress or (lambda stage, info: None)
    threads = default_threads(settings)
    plan = base_plan(target, settings, threads)
    seconds: dict[str, float] = {}

    watch = _run("watch", plan, settings, notify)
    seconds["watch"] = watch.seconds
    evidence = Evidence(script=str(target.script), watch=watch)
    _refuse_if_not_training(target, watch)

    if evidence.bad_step is not None and settings.replay.enabled:
        evidence.replay = _replay(plan, evidence, settings, notify)
        seconds["replay"] = evidence.replay.seconds
    if evidence.bad_step is not None and probes and settings.probes.enabled:
        seconds["probes"] = _probe(plan, evidence, settings, notify)

    findings = rank(run_rules(evidence))
    status = _status(watch)
    return Diagnosis(target=target, settings=settings, status=status,
                     evidence=evidence, findings=findings, threads=threads,
                     seconds=seconds)


def _run(name: str, plan: Plan, settings: Settings,
         notify: ProgressCallback) -> PassResult:
    notify("start", {"pass": name, "max_steps": plan.max_steps})
    result = run_pass(name, plan, settings.timeout,
                      on_event=lambda event: notify("event", event))
    notify("done", {"pass": name, "seconds": result.seconds})
    return result


def _refuse_if_not_training(target: Target, watch: PassResult) -> None:
    """A script that never reached a step gives nothing to diagnose."""
    if watch.steps or watch.reason in ("crashed", "killed", "interrupted"):
        return
    if watch.reason == "syntax_error":
        end = watch.end
        raise NandoctorError(f"{end.get('file')}:{end.get('line')}: "
                             f"{end.get('error')}. Fix it and run again.")
    if watch.reason == "exit" and watch.end.get("exit_code"):
        return  # exited with an error code: reported as a crash
    ended = {"timeout": "ran into the time limit",
             "exit": "called sys.exit()"}.get(watch.reason, "ended")
    raise NandoctorError(
        f"{target.script}: the script {ended} without a single training step "
        "(no optimizer.step() and no backward() call). nandoctor diagnoses "
        "training loops: check the arguments after `--` (a wrong --epochs 0, a "
        "--help), or that the loop runs when the script is the main program."
    )


def _status(watch: PassResult) -> str:
    if watch.reason == "interrupted":
        return STATUS_INTERRUPTED
    if watch.first_event is not None or watch.divergence is not None:
        return STATUS_DIVERGED
    if watch.reason in ("crashed", "killed"):
        return STATUS_CRASHED
    if watch.reason == "exit" and watch.end.get("exit_code"):
        return STATUS_CRASHED
    if watch.reason == "timeout":
        return STATUS_TIMEOUT
    return STATUS_HEALTHY


def _replay(plan: Plan, evidence: Evidence, settings: Settings,
            notify: ProgressCallback) -> PassResult:
    bad = evidence.bad_step
    steps = [bad - 1, bad] if settings.replay.previous_step and bad else [bad]
    phase = (evidence.first_event or {}).get("phase")
    replay_plan = replace(plan, check_steps=steps, max_steps=bad + 1,
                          check_data=phase == "input", stop_after_nonfinite=0)
    return _run("replay", replay_plan, settings, notify)


def _probe(plan: Plan, evidence: Evidence, settings: Settings,
           notify: ProgressCallback) -> float:
    """Runs the chosen probes beside a baseline; returns their wall time."""
    until = probe_runs.horizon(evidence.bad_step, settings.probes)
    if settings.max_steps is not None:
        until = min(until, settings.max_steps)
    chosen = probe_runs.choose(evidence, settings.probes)
    jobs = [(probe_runs.BASELINE, probe_runs.probe_plan(plan, None, until))]
    jobs += [(p.name, probe_runs.probe_plan(plan, p, until)) for p in chosen]
    parallel = settings.probes.jobs or os.cpu_count() or 1
    notify("start", {"pass": "probes", "count": len(jobs), "max_steps": until})
    started = time.monotonic()
    results = run_passes(jobs, settings.timeout, parallel,
                         on_event=lambda event: notify("event", event))
    elapsed = time.monotonic() - started
    notify("done", {"pass": "probes", "seconds": elapsed})
    changes = {p.name: probe_runs.describe_change(p) for p in chosen}
    changes[probe_runs.BASELINE] = "none (1 thread, the probes' settings)"
    outcomes = [probe_runs.outcome(r, r.name, changes[r.name], until)
                for r in results]
    evidence.baseline = outcomes[0]
    evidence.probes = outcomes[1:]
    return elapsed
