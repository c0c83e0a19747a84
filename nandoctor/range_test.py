"""The learning-rate range test: runs the sweep's child processes, reads them.

Each repeat is a fresh child running the script under an `LrSweep` change,
with every seed the script sets shifted by the repeat's index. Then, unless
told not to, constant-rate runs place the divergence more closely than a
sweep can (see `Bracket`). This module decides nothing about rates
(nandoctor.sweep does) and renders nothing.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

from .config import Settings, SweepSettings
from .diagnose import Target, base_plan, default_threads
from .errors import NandoctorError
from .exitcodes import ExitCode
from .plan import Plan, Sweep
from .runner import Launcher, PassResult, run_pass, run_passes
from .sweep import (
    STOP_REASON,
    Bracket,
    CurveReading,
    SweepSummary,
    constant_rates,
    read_curve,
    scheduled_lr,
    summarize,
)

ProgressCallback = Callable[[str, dict], None]
log = logging.getLogger("nandoctor")

SWEEP_PASS = "sweep"
CONFIRM_PASS = "constant-rate runs"
STATUS_OK = "ok"
STATUS_UNRELIABLE = "unreliable"  # ran, but the curve gives no trustworthy rate
STATUS_CRASHED = "crashed"
# A largest_stable_lr sweep: a step every ~1.6x over the default 8 decades,
# fine enough to bound the divergence for the constant-rate runs.
SHORT_SWEEP_STEPS = 40
# Constant-rate runs search below the sweep's divergence rate, down to this
# factor under it, until the bracket is this narrow or the rounds run out.
CONFIRM_SPAN = 30.0
CONFIRM_PRECISION = 1.5
CONFIRM_ROUNDS = 3
_NORMAL_ENDS = ("finished", "max_steps", STOP_REASON, "evidence_complete",
                "timeout")


@dataclass
class Repeat:
    """One run of the range test, and what its curve says."""

    index: int
    seed_offset: int
    result: PassResult
    reading: CurveReading
    current_lrs: list[float] = field(default_factory=list)
    base_lrs: list[float] = field(default_factory=list)

    @property
    def crashed(self) -> bool:
        return _crashed(self.result)


@dataclass(frozen=True)
class ConstantRun:
    lr: float
    diverged: bool
    steps: int
    ended: str


@dataclass
class Confirmation:
    """Constant-rate runs over `horizon` steps, and the bracket they leave."""

    horizon: int
    bracket: Bracket
    runs: list[ConstantRun] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class RangeTest:
    target: Target
    sweep: Sweep
    repeats: list[Repeat]
    summary: SweepSummary
    threads: int
    seed: Optional[int]
    seconds: float
    confirmation: Optional[Confirmation] = None

    @property
    def crash(self) -> Optional[Repeat]:
        return next((r for r in self.repeats if r.crashed), None)

    @property
    def status(self) -> str:
        if self.crash is not None:
            return STATUS_CRASHED
        if self.summary.suggested_lr is None:
            return STATUS_UNRELIABLE
        return STATUS_OK

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.SCRIPT_CRASHED if self.crash else ExitCode.HEALTHY


def sweep_plan(target: Target, settings: Settings, threads: int,
               sweep: Sweep, offset: int = 0) -> Plan:
    seed = None if settings.seed is None else settings.seed + offset
    return replace(
        base_plan(target, settings, threads), seed=seed, seed_offset=offset,
        max_steps=sweep.steps, sweep=sweep,
        # The sweep stops itself at a non-finite loss; this ends a run whose
        # weights went non-finite while its loss did not (yet) show it.
        stop_after_nonfinite=1,
    )


def run_range_test(target: Target, settings: Settings,
                   progress: Optional[ProgressCallback] = None,
                   confirm: bool = True,
                   launcher: Optional[Launcher] = None) -> RangeTest:
    notify = progress or (lambda stage, info: None)
    sweep = _sweep_of(settings.sweep)
    count = settings.sweep.repeats
    # Alone, a repeat gets the plain run's threads (its numbers match the
    # script's); several share the cores, one thread each.
    threads = default_threads(settings) if count == 1 else 1
    plans = [sweep_plan(target, settings, threads, sweep, offset=i)
             for i in range(count)]
    notify("start", {"pass": SWEEP_PASS, "max_steps": sweep.steps})
    started = time.monotonic()
    results = _run(SWEEP_PASS, plans, settings, notify, launcher)
    seconds = time.monotonic() - started
    notify("done", {"pass": SWEEP_PASS, "seconds": seconds})

    repeats = [_read(i, sweep, result) for i, result in enumerate(results)]
    _refuse_if_untestable(target, repeats)
    current = repeats[0].current_lrs[0] if repeats[0].current_lrs else None
    summary = summarize([r.reading for r in repeats], current)
    test = RangeTest(target=target, sweep=sweep, repeats=repeats,
                     summary=summary, threads=threads, seed=settings.seed,
                     seconds=seconds)
    if confirm and test.crash is None and summary.divergence is not None:
        divergence = summary.divergence.median
        test.confirmation = _confirm(
            target, settings, Bracket(divergence / CONFIRM_SPAN, divergence),
            sweep, notify, launcher)
        test.summary = summarize([r.reading for r in repeats], current,
                                 _confirmed_divergence(test.confirmation))
    return test


def largest_stable_lr(target: Target, settings: Settings,
                      launcher: Optional[Launcher] = None,
                      known: Optional[Bracket] = None,
                      horizon: Optional[int] = None) -> Optional[float]:
    """The largest constant rate that stayed stable, for `diagnose` to state.

    A short sweep (SHORT_SWEEP_STEPS steps over the configured range, one
    repeat) bounds the divergence; constant-rate runs over as many steps
    then find the highest rate below it that stays stable. With a `known`
    bracket (diagnose's probes: a lower rate that trained, the script's
    rate that failed) the sweep is skipped and the runs, `horizon` steps
    each, start from it. None when the loss did not diverge up to `end_lr`,
    no constant rate was seen stable, or the script could not be swept (no
    optimizer, a crash); the reason is logged.
    """
    if known is not None:
        sweep = replace(_sweep_of(settings.sweep),
                        steps=max(horizon or 0, SHORT_SWEEP_STEPS))
        confirmation = _confirm(target, settings, known, sweep,
                                lambda stage, info: None, launcher)
        bracket = confirmation.bracket
        return bracket.low if bracket.low_verified else None
    steps = min(settings.sweep.steps, SHORT_SWEEP_STEPS)
    sweep = replace(settings.sweep, repeats=1, steps=steps)
    short = replace(settings, sweep=sweep)
    try:
        test = run_range_test(target, short, launcher=launcher)
    except NandoctorError as exc:
        log.info("no largest stable rate: %s", exc.message)
        return None
    if test.crash is not None or test.confirmation is None:
        log.info("no largest stable rate: the sweep %s",
                 "crashed" if test.crash else "did not diverge")
        return None
    bracket = test.confirmation.bracket
    return bracket.low if bracket.low_verified else None


def _sweep_of(settings: SweepSettings) -> Sweep:
    if settings.start_lr >= settings.end_lr:
        raise NandoctorError(
            f"the sweep must rise: start_lr ({settings.start_lr:g}) must be "
            f"below end_lr ({settings.end_lr:g}). Set --start-lr/--end-lr or "
            "sweep.start_lr/sweep.end_lr in the config.")
    return Sweep(start_lr=settings.start_lr, end_lr=settings.end_lr,
                 steps=settings.steps,
                 divergence_factor=settings.divergence_factor)


def _run(name: str, plans: list[Plan], settings: Settings,
         notify: ProgressCallback,
         launcher: Optional[Launcher] = None) -> list[PassResult]:
    def on_event(event: dict) -> None:
        notify("event", event)

    if launcher is not None:
        launcher.expect(plans[0].threads, len(plans))
    if len(plans) == 1:
        return [run_pass(name, plans[0], settings.timeout, on_event,
                         launcher=launcher)]
    jobs = [(f"{name} {i + 1}", plan) for i, plan in enumerate(plans)]
    parallel = min(len(plans), os.cpu_count() or 1)
    return run_passes(jobs, settings.timeout, parallel, on_event, launcher)


def _read(index: int, sweep: Sweep, result: PassResult) -> Repeat:
    steps = [s["step"] for s in result.steps]
    lrs = [scheduled_lr(sweep.start_lr, sweep.end_lr, sweep.steps, i)
           for i in range(max(steps, default=-1) + 1)]
    losses: list[Optional[float]] = [None] * len(lrs)
    for step, loss in zip(steps, result.losses()):
        losses[step] = loss
    start = next(iter(result.of_kind("sweep_start")), {})
    reading = read_curve(lrs, losses, sweep.divergence_factor,
                         planned_steps=sweep.steps)
    return Repeat(index=index, seed_offset=result.plan.seed_offset,
                  result=result, reading=reading,
                  current_lrs=start.get("current_lrs", []),
                  base_lrs=start.get("base_lrs", []))


def _confirm(target: Target, settings: Settings, start: Bracket,
             sweep: Sweep, notify: ProgressCallback,
             launcher: Optional[Launcher]) -> Confirmation:
    """Rounds of constant-rate runs in parallel, each round narrowing the
    bracket by the cores' count + 1."""
    cores = max(2, os.cpu_count() or 1)
    confirmation = Confirmation(horizon=sweep.steps, bracket=start)
    notify("start", {"pass": CONFIRM_PASS, "max_steps": sweep.steps})
    started = time.monotonic()
    for _ in range(CONFIRM_ROUNDS):
        bracket = confirmation.bracket
        if bracket.high / bracket.low <= CONFIRM_PRECISION:
            break
        rates = constant_rates(bracket.low, bracket.high, cores)
        plans = [sweep_plan(target, settings, 1,
                            replace(sweep, start_lr=rate, end_lr=rate))
                 for rate in rates]
        results = _run(CONFIRM_PASS, plans, settings, notify, launcher)
        runs = [_constant_run(rate, r) for rate, r in zip(rates, results)]
        confirmation.runs += runs
        confirmation.bracket = bracket.narrowed({r.lr: r.diverged for r in runs})
    confirmation.seconds = time.monotonic() - started
    notify("done", {"pass": CONFIRM_PASS, "seconds": confirmation.seconds})
    return confirmation


def _constant_run(lr: float, result: PassResult) -> ConstantRun:
    # A crash at a constant rate counts as a divergence: the script cannot
    # train at that rate (many raise on a non-finite loss themselves).
    nonfinite = any(v is not None and not math.isfinite(v)
                    for v in result.losses())
    diverged = result.reason == STOP_REASON or _crashed(result) or nonfinite
    return ConstantRun(lr=lr, diverged=diverged, steps=len(result.steps),
                       ended=result.reason)


def _confirmed_divergence(confirmation: Confirmation) -> Optional[float]:
    bracket = confirmation.bracket
    return bracket.high if bracket.high_verified else None


def _crashed(result: PassResult) -> bool:
    if result.reason == "exit":
        return bool(result.end.get("exit_code"))
    return result.reason not in _NORMAL_ENDS


def _refuse_if_untestable(target: Target, repeats: list[Repeat]) -> None:
    """A script that never stepped, or stepped without an optimizer."""
    first = repeats[0]
    if first.crashed or first.current_lrs:
        return
    if first.result.steps:
        raise NandoctorError(
            f"{target.script}: the script updates its parameters without a "
            "torch.optim optimizer, so there is no learning rate to sweep. "
            "lr-sweep sets the rate of the optimizer created first; use one "
            "(torch.optim.SGD for a hand-written update).")
    if first.result.reason == "syntax_error":
        end = first.result.end
        raise NandoctorError(f"{end.get('file')}:{end.get('line')}: "
                             f"{end.get('error')}. Fix it and run again.")
    raise NandoctorError(
        f"{target.script}: the script ended without a single training step "
        "(no optimizer.step() call). Check the arguments after `--` (a wrong "
        "--epochs 0, a --help), or that the loop runs when the script is the "
        "main program.")
