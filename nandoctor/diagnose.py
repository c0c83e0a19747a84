"""The diagnosis pipeline: watch, replay, probes, rules.

Each pass is a fresh child process. This module decides what to run next
from what the last pass saw; it prints nothing (progress goes to a callback)
and renders nothing.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

from . import probes as probe_runs
from .config import Settings
from .errors import NandoctorError
from .evidence import Evidence
from .exitcodes import ExitCode
from .findings import Cause, Finding
from .plan import Plan, Probe
from .rules import rank, run_rules
from .rules.common import probe_learns
from .runner import Interrupted, Launcher, PassResult, run_pass
from .sweep import Bracket

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
    if not path.exists() and script.startswith("-"):
        # Unknown options are passed on as the script, so a typo lands here.
        raise NandoctorError(
            f"{script}: neither an option of nandoctor (see --help) nor a "
            "file. Put nandoctor's options before the script; write a script "
            f"whose name starts with '-' as ./{script} or after `--`.")
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
    if path.suffix == ".ipynb":
        raise NandoctorError(
            f"{script}: is a Jupyter notebook. Export it as a script first "
            f"(jupyter nbconvert --to script {script}) and diagnose the .py file.")
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise NandoctorError(f"{script}: cannot be read ({exc.strerror}).") from None
    try:
        if b"\0" in source:  # compile() would call it a syntax error
            raise ValueError("binary data")
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise NandoctorError(
            f"{exc.filename or script}:{exc.lineno or 0}:{exc.offset or 0}: the "
            f"script does not compile ({exc.msg}). nandoctor runs Python training "
            "scripts; fix the syntax error, or pass the .py file that trains."
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise NandoctorError(
            f"{script}: is not a Python source file (it holds bytes Python cannot "
            "read). Pass the .py file that trains your model."
        ) from None
    return Target(script=path, args=list(args))


def default_threads(settings: Settings) -> int:
    if settings.threads:
        return settings.threads
    import torch  # the plain run's default, so failing steps match it

    return torch.get_num_threads()


def base_plan(target: Target, settings: Settings,
              threads: Optional[int]) -> Plan:
    watch = settings.watch
    return Plan(
        script=str(target.script), args=list(target.args), seed=settings.seed,
        threads=threads, max_steps=settings.max_steps,
        stop_after_nonfinite=watch.steps_after_nonfinite,
        stop_after_runaway=watch.steps_after_runaway,
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
    # Without --threads the watch and the replay keep torch's default, as a
    # plain run does: the same environment gives them the same count.
    plan = base_plan(target, settings, settings.threads)
    started = time.monotonic()
    seconds: dict[str, float] = {}

    with Launcher() as launcher:
        ahead = (os.cpu_count() or 1) > 1
        if ahead:
            # The replay's child imports torch (seconds) beside the watch's
            # own import, on the core that import leaves idle.
            launcher.prepare(settings.threads)
        try:
            # The watch starts its own child: the one prepared is the replay's.
            watch = _run("watch", plan, settings,
                         _prepare_on_failure(notify, launcher, settings.threads,
                                             replay_ready=ahead))
        except Interrupted as stop:  # Ctrl-C: report what the watch saw so far
            watch = stop.partial
        seconds["watch"] = watch.seconds
        threads = settings.threads or _reported_threads(watch)
        evidence = Evidence(script=str(target.script), watch=watch)
        _refuse_if_not_training(target, watch, settings.timeout)

        interrupted = watch.reason == "interrupted"
        if evidence.bad_step is not None and not interrupted:
            try:
                seconds.update(_explain(plan, evidence, settings, notify, probes,
                                        launcher, threads))
            except (Interrupted, KeyboardInterrupt):  # the watch's evidence stands
                interrupted = True

        findings = rank(run_rules(evidence))
        if not interrupted and _wants_stable_lr(findings, settings, probes):
            try:
                seconds["sweep"] = _find_stable_lr(target, settings, evidence,
                                                   notify, launcher)
            except (Interrupted, KeyboardInterrupt):
                interrupted = True
            findings = rank(run_rules(evidence))

    # The passes overlap (probes run beside the replay): their sum is no total.
    seconds["total"] = time.monotonic() - started
    status = STATUS_INTERRUPTED if interrupted else _status(watch)
    return Diagnosis(target=target, settings=settings, status=status,
                     evidence=evidence, findings=findings, threads=threads,
                     seconds=seconds)


def _find_stable_lr(target: Target, settings: Settings, evidence: Evidence,
                    notify: ProgressCallback, launcher: Launcher) -> float:
    """State the largest stable rate in an lr_too_high finding; its seconds."""
    from .range_test import largest_stable_lr  # it builds on this module

    notify("start", {"pass": "sweep"})
    started = time.monotonic()
    known = _known_bracket(evidence)
    if known is None:
        evidence.stable_lr = largest_stable_lr(target, settings, launcher)
    else:  # the probes bracket it already: constant-rate runs only
        until = probe_runs.horizon(evidence.bad_step, settings.probes)
        evidence.stable_lr = largest_stable_lr(target, settings, launcher,
                                               known, until)
    elapsed = time.monotonic() - started
    notify("done", {"pass": "sweep", "seconds": elapsed})
    return elapsed


def _known_bracket(evidence: Evidence) -> Optional[Bracket]:
    """[a lower rate that trained, the script's rate that failed], when a
    learning-rate probe found one at the script's constant starting rate."""
    lrs = evidence.watch.steps[0].get("lrs") if evidence.watch.steps else None
    rate = lrs[0] if lrs and isinstance(lrs[0], (int, float)) else None
    if rate is None or rate <= 0:
        return None
    if any((s.get("lrs") or [rate])[0] != rate for s in evidence.watch.steps):
        return None  # a schedule: the failing rate was not the first one
    factors = [p.lr_factor for p in evidence.probes
               if p.lr_factor is not None and probe_learns(evidence, p.name)]
    if not factors:
        return None
    return Bracket(rate * max(factors), rate, low_verified=True,
                   high_verified=True)


def _wants_stable_lr(findings: list[Finding], settings: Settings,
                     probes: bool) -> bool:
    roots = [f for f in findings if f.role == "root"]
    return (probes and settings.probes.enabled and settings.probes.stable_lr
            and bool(roots) and roots[0].cause is Cause.LR_TOO_HIGH)


def _reported_threads(watch: PassResult) -> int:
    start = next(iter(watch.of_kind("start")), {})
    return start.get("threads") or os.cpu_count() or 1


def _prepare_on_failure(notify: ProgressCallback, launcher: Launcher,
                        threads: Optional[int],
                        replay_ready: bool) -> ProgressCallback:
    """Start the first probe's child (and the replay's, unless it is ready)
    as soon as the watch sees the failure: they import torch while the watch
    finishes."""
    prepared = []

    def relay(stage: str, info: dict) -> None:
        if not prepared and info.get("event") in ("nonfinite", "divergence"):
            prepared.append(True)
            if not replay_ready:
                launcher.prepare(threads)
            launcher.prepare(probe_runs.PROBE_THREADS)
        notify(stage, info)

    return relay


def _run(name: str, plan: Plan, settings: Settings, notify: ProgressCallback,
         launcher: Optional[Launcher] = None) -> PassResult:
    notify("start", {"pass": name, "max_steps": plan.max_steps})
    result = run_pass(name, plan, settings.timeout,
                      on_event=lambda event: notify("event", event),
                      launcher=launcher)
    notify("done", {"pass": name, "seconds": result.seconds})
    if result.reason == "internal":
        raise _internal_error(name, result)
    return result


def _internal_error(name: str, result: PassResult) -> NandoctorError:
    """nandoctor's own code failed in the child, around the script."""
    detail = ""
    if os.environ.get("NANDOCTOR_DEBUG"):
        detail = "\n" + result.end.get("traceback", "")
    return NandoctorError(
        f"internal error in the {name} pass: {result.end.get('error')}. This is "
        "a bug in nandoctor, not in your script; run again with "
        "NANDOCTOR_DEBUG=1 for the traceback and report it." + detail,
        code=ExitCode.INTERNAL)


def _refuse_if_not_training(target: Target, watch: PassResult,
                            timeout: float) -> None:
    """A script that never reached a step gives nothing to diagnose."""
    if watch.steps or watch.reason in ("crashed", "killed", "interrupted"):
        return
    if watch.reason == "timeout":
        raise NandoctorError(
            f"{target.script}: no training step in {timeout:g} s, so the script "
            "was stopped (--timeout). If it loads data or compiles for longer, "
            "raise --timeout (or `timeout:` in nandoctor.yaml); if it waits for "
            "input, a lock or a server, make it run unattended first.")
    if watch.reason == "syntax_error":
        end = watch.end
        raise NandoctorError(f"{end.get('file')}:{end.get('line')}: "
                             f"{end.get('error')}. Fix it and run again.")
    if watch.reason == "exit" and watch.end.get("exit_code"):
        return  # exited with an error code: reported as a crash
    ended = {"exit": "called sys.exit()"}.get(watch.reason, "ended")
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
    if watch.reason in ("crashed", "killed", "syntax_error"):
        return STATUS_CRASHED
    if watch.reason == "exit" and watch.end.get("exit_code"):
        return STATUS_CRASHED
    if watch.reason == "timeout":
        return STATUS_TIMEOUT
    return STATUS_HEALTHY


def _replay_plan(plan: Plan, evidence: Evidence, settings: Settings) -> Plan:
    bad = evidence.bad_step
    steps = [bad - 1, bad] if settings.replay.previous_step and bad else [bad]
    phase = (evidence.first_event or {}).get("phase")
    return replace(plan, check_steps=steps, max_steps=bad + 1,
                   check_data=phase == "input",
                   check_update=phase in ("optimizer", None),
                   stop_after_nonfinite=0)


def _explain(plan: Plan, evidence: Evidence, settings: Settings,
             notify: ProgressCallback, with_probes: bool,
             launcher: Launcher, replay_threads: int) -> dict[str, float]:
    """Replay and probes, overlapped where cores allow: the probes that need
    no op from the replay (baseline, lower rates, clipping) start beside it
    when it leaves a core free; the others (a guard at the flagged op,
    precision, data) once it has answered."""
    replay = settings.replay.enabled
    # A replay whose threads share their cores with probes waits on its
    # slowest thread at every parallel op: on two cores it took 3x longer.
    beside = not replay or (os.cpu_count() or 1) > replay_threads
    probing = with_probes and settings.probes.enabled
    until = probe_runs.horizon(evidence.bad_step, settings.probes)
    if settings.max_steps is not None:
        until = min(until, settings.max_steps)
    parallel = settings.probes.jobs or os.cpu_count() or 1
    cancel = threading.Event()
    seconds: dict[str, float] = {}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:

        def submit(name: str, job_plan: Plan) -> Future:
            notify("start", {"pass": name, "max_steps": job_plan.max_steps})
            return pool.submit(run_pass, name, job_plan, settings.timeout,
                               lambda event: notify("event", event), cancel,
                               launcher)

        try:
            pending = submit("replay", _replay_plan(plan, evidence, settings)) \
                if replay else None
            def start_probe(p: Optional[Probe]) -> tuple[Optional[Probe], Future]:
                name = p.name if p else probe_runs.BASELINE
                return p, submit(name, probe_runs.probe_plan(plan, p, until))

            early = [None, *probe_runs.independent(settings.probes)] \
                if probing else []
            launcher.expect(probe_runs.PROBE_THREADS, len(early))
            jobs = [start_probe(p) for p in (early if beside else [])]
            if pending is not None:
                evidence.replay = _checked(pending.result(), "replay")
                seconds["replay"] = evidence.replay.seconds
                notify("done", {"pass": "replay", "seconds": seconds["replay"]})
            late = probe_runs.dependent(evidence, settings.probes) if probing else []
            launcher.expect(probe_runs.PROBE_THREADS, len(late))
            jobs += [start_probe(p) for p in ([] if beside else early) + late]
            results = [(p, _checked(f.result(), "probe")) for p, f in jobs]
        except KeyboardInterrupt:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if results:
        outcomes = [probe_runs.outcome(
            r, r.name, probe_runs.describe_change(p), until,
            p.lr_factor if p is not None and p.lr_factor != 1.0 else None)
            for p, r in results]
        evidence.baseline, evidence.probes = outcomes[0], outcomes[1:]
        seconds["probes"] = time.monotonic() - started
        notify("done", {"pass": "probes", "seconds": seconds["probes"]})
    return seconds


def _checked(result: PassResult, name: str) -> PassResult:
    if result.reason == "internal":
        raise _internal_error(name, result)
    return result
