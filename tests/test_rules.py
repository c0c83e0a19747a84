"""Rules as pure functions: hand-built evidence in, findings out.

Each rule gets evidence that must trigger it and evidence that must not.
The end-to-end counterparts (real scripts) are in test_rule_scripts.py.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Optional

import pytest

from nandoctor.evidence import Evidence, ProbeOutcome
from nandoctor.findings import Cause
from nandoctor.plan import Plan
from nandoctor.rules import rank, run_rules
from nandoctor.rules.signals import dynamics
from nandoctor.runner import PassResult


def steps(losses: list[Any], grads: Optional[list[Any]] = None,
          **extra: Any) -> list[dict]:
    grads = grads or [1.0] * len(losses)
    return [{"step": i, "loss": loss, "grad_norm": g, "param_norm": 10.0, **extra}
            for i, (loss, g) in enumerate(zip(losses, grads))]


def evidence(history: list[dict], event: Optional[dict] = None,
             producers: tuple[dict, ...] = (), divergence: Optional[dict] = None,
             probes: tuple[ProbeOutcome, ...] = (),
             baseline: Optional[ProbeOutcome] = None) -> Evidence:
    watch = PassResult(name="watch", plan=Plan(script="train.py"), steps=history,
                       end={"reason": "finished", "first_event": event,
                            "divergence": divergence})
    replay = None
    if producers:
        replay = PassResult(name="replay", plan=Plan(script="train.py"),
                            events=[{"event": "producer", **p} for p in producers],
                            end={"reason": "max_steps", "first_event": event})
    return Evidence(script="train.py", watch=watch, replay=replay,
                    probes=list(probes), baseline=baseline)


def outcome(name: str, bad: Optional[int], final: Optional[float] = 0.1,
            first: float = 1.0) -> ProbeOutcome:
    return ProbeOutcome(name=name, change=name, horizon=100,
                        first_nonfinite_step=bad, first_divergence_step=None,
                        final_loss=None if bad is not None else final,
                        best_loss=final, first_loss=first, steps_run=100,
                        ended="max_steps")


def stats(**counts: Any) -> dict:
    base = {"dtype": "float32", "numel": 32, "nan": 0, "posinf": 0, "neginf": 0,
            "zeros": 0, "negatives": 0, "tiny": 0, "min": 0.1, "max": 1.0}
    return {**base, **counts}


def site(line: int) -> dict:
    return {"file": "train.py", "line": line, "function": "f"}


def causes(ev: Evidence) -> list[Cause]:
    return [f.cause for f in rank(run_rules(ev))]


LOSS_EVENT = {"step": 5, "phase": "loss", "tensor": "the loss", "site": site(50),
              "stats": stats(nan=1)}


def test_log_of_zero_is_the_root_cause():
    producer = {"key": "forward", "pass": "forward", "op": "aten.log",
                "call": "torch.log", "site": site(21),
                "inputs": [stats(zeros=1, min=0.0)], "output": stats(neginf=1)}
    ev = evidence(steps([0.7, 0.5, 0.3, 0.2, 0.1, "nan"]), LOSS_EVENT, (producer,))
    top = rank(run_rules(ev))[0]
    assert top.cause is Cause.LOG_OF_NONPOSITIVE
    assert (top.location.file, top.location.line) == ("train.py", 21)
    assert top.confidence > 0.5


def test_a_probe_verifies_nothing_when_the_baseline_ran_clean():
    producer = {"key": "forward", "pass": "forward", "op": "aten.log",
                "call": "torch.log", "site": site(21),
                "inputs": [stats(zeros=1, min=0.0)], "output": stats(neginf=1)}
    history = steps([0.7, 0.5, 0.3, 0.2, 0.1, "nan"])
    guard = outcome("eps_guard", None, final=0.05)

    def fixes(baseline: ProbeOutcome) -> list:
        ev = evidence(history, LOSS_EVENT, (producer,), probes=(guard,),
                      baseline=baseline)
        return [f.verified_by for f in rank(run_rules(ev))[0].fixes]

    assert "eps_guard" in fixes(outcome("baseline", 5))
    # One thread, unchanged, and no failure: the guard's clean run shows nothing.
    assert "eps_guard" not in fixes(outcome("baseline", None))


def test_log_of_positive_values_is_not_blamed():
    producer = {"key": "forward", "pass": "forward", "op": "aten.log",
                "call": "torch.log", "site": site(21),
                "inputs": [stats(min=1e-3)], "output": stats(nan=1)}
    ev = evidence(steps([0.7, 0.5, 0.3, 0.2, 0.1, "nan"]), LOSS_EVENT, (producer,))
    assert Cause.LOG_OF_NONPOSITIVE not in causes(ev)


def test_exp_overflow_needs_an_argument_past_the_dtype_limit():
    over = {"key": "forward", "pass": "forward", "op": "aten.exp", "site": site(12),
            "inputs": [stats(max=90.4)], "output": stats(posinf=3)}
    ev = evidence(steps([2.0, 1.0, 0.5, 0.3, 0.2, "nan"]), LOSS_EVENT, (over,))
    assert causes(ev)[0] is Cause.EXP_OVERFLOW
    below = {**over, "inputs": [stats(max=20.0)]}
    ev = evidence(steps([2.0, 1.0, 0.5, 0.3, 0.2, "nan"]), LOSS_EVENT, (below,))
    assert Cause.EXP_OVERFLOW not in causes(ev)


def test_a_finite_but_huge_exp_before_an_overflow_is_the_root_cause():
    # exp(0.5 * logvar) stays finite at 1e26; the square after it does not.
    overflow = {"key": "forward", "pass": "forward", "op": "aten.pow", "step": 5,
                "site": site(28), "inputs": [stats(min=-8e24, max=8e24)],
                "output": stats(posinf=4)}
    grown = {"key": "huge_exp", "pass": "forward", "op": "aten.exp", "step": 5,
             "call": "torch.exp", "site": site(22), "inputs": [stats(max=60.2)],
             "output": stats(max=1.4e26)}
    history = steps([2.0, 1.0, 0.5, 0.3, 0.2, "inf"])
    findings = rank(run_rules(evidence(history, LOSS_EVENT, (overflow, grown))))
    assert findings[0].cause is Cause.EXP_OVERFLOW
    assert findings[0].location.line == 22
    assert Cause.NUMERIC_OVERFLOW in [f.cause for f in findings]
    alone = evidence(history, LOSS_EVENT, (overflow,))
    assert Cause.EXP_OVERFLOW not in causes(alone)
    earlier = evidence(history, LOSS_EVENT, (overflow, {**grown, "step": 4}))
    assert Cause.EXP_OVERFLOW not in causes(earlier)


def test_division_by_a_zero_divisor():
    producer = {"key": "forward", "pass": "forward", "op": "aten.div",
                "site": site(45), "inputs": [stats(zeros=4), stats(zeros=1)],
                "output": stats(nan=4)}
    ev = evidence(steps([1.0] * 5 + ["nan"]), LOSS_EVENT, (producer,))
    assert causes(ev)[0] is Cause.DIVISION_BY_ZERO
    safe = {**producer, "inputs": [stats(zeros=4), stats(min=0.5)]}
    ev = evidence(steps([1.0] * 5 + ["nan"]), LOSS_EVENT, (safe,))
    assert Cause.DIVISION_BY_ZERO not in causes(ev)


def test_sqrt_gradient_at_zero_names_the_forward_line():
    event = {**LOSS_EVENT, "phase": "backward", "tensor": "gradient of w"}
    producer = {"key": "backward", "pass": "backward", "node": "SqrtBackward0",
                "op": "aten.div", "call": "torch.sqrt", "forward_file": "train.py",
                "forward_line": 13, "forward_inputs": [stats(zeros=64, min=0.0)],
                "grad_in": [stats()], "grad_out": [stats(posinf=64)]}
    ev = evidence(steps([0.7] * 5), event, (producer,))
    top = rank(run_rules(ev))[0]
    assert top.cause is Cause.SQRT_OR_POW_AT_ZERO
    assert top.location.line == 13


def test_where_leak_needs_a_masked_forward_value_and_a_backward_producer():
    event = {**LOSS_EVENT, "step": 0, "phase": "backward", "tensor": "gradient of w"}
    forward = {"key": "forward", "pass": "forward", "op": "aten.log",
               "site": site(24), "inputs": [stats(zeros=60)],
               "output": stats(neginf=60)}
    masked = {"key": "masked", "pass": "forward", "op": "aten.where",
              "site": site(24), "hidden": [stats(nan=60)]}
    backward = {"key": "backward", "pass": "backward", "node": "LogBackward0",
                "forward_file": "train.py", "forward_line": 24,
                "forward_inputs": [stats(zeros=60)], "grad_in": [stats()],
                "grad_out": [stats(nan=60)]}
    ev = evidence(steps([1.3]), event, (forward, masked, backward))
    assert causes(ev)[0] is Cause.WHERE_GRADIENT_LEAK
    ev = evidence(steps([1.3]), event, (forward, backward))
    assert Cause.WHERE_GRADIENT_LEAK not in causes(ev)


def test_float16_overflow_from_finite_inputs():
    producer = {"key": "forward", "pass": "forward", "op": "aten.convolution",
                "site": site(35), "inputs": [stats(max=3.1e4, dtype="float16")],
                "output": stats(posinf=2, dtype="float16")}
    ev = evidence(steps([1.0] * 5 + ["nan"]), LOSS_EVENT, (producer,))
    assert causes(ev)[0] is Cause.LOW_PRECISION_OVERFLOW


def scheduled(losses: list[Any], rates: list[float]) -> list[dict]:
    return [{**s, "lrs": [r]} for s, r in zip(steps(losses), rates)]


RUNAWAY = {"step": 9, "kind": "loss_runaway", "best_smoothed": 0.2}


def test_a_schedule_that_kept_raising_the_rate_is_blamed_at_the_scheduler():
    history = scheduled([2.0, 1.0, 0.5, 0.3, 0.2, 0.4, 3.0, 40.0, 900.0, 1e5],
                        [0.01 * 2 ** i for i in range(10)])
    ev = evidence(history, divergence=RUNAWAY)
    ev.watch.events.append({"event": "scheduler", "type": "LambdaLR",
                            "site": site(19)})
    top = rank(run_rules(ev))[0]
    assert top.cause is Cause.LR_TOO_HIGH and top.location.line == 19
    assert "Cap the schedule" in top.fixes[0].text


def test_a_warm_up_that_ended_before_the_best_loss_is_no_suspect():
    history = scheduled([2.0, 1.0, 0.5, 0.3, 0.2, 0.2, 0.1, 0.1, 0.1, "nan"],
                        [1e-4, 1e-3, 1e-2] + [1e-2] * 7)
    producer = {"key": "forward", "pass": "forward", "op": "aten.log",
                "call": "torch.log", "site": site(21),
                "inputs": [stats(zeros=1, min=0.0)], "output": stats(neginf=1)}
    event = {**LOSS_EVENT, "step": 9}
    assert Cause.LR_TOO_HIGH not in causes(evidence(history, event, (producer,)))


def update_event(eps: float) -> dict:
    return {"step": 3, "phase": "optimizer", "site": site(46),
            "tensor": "parameter emb.weight after the update",
            "stats": stats(nan=9), "parameter": "emb.weight", "group": 0,
            "optimizer": {"type": "Adam", "eps": eps, "site": site(37)}}


def update_producer(denominator: dict) -> dict:
    return {"key": "update", "pass": "update", "op": "aten.addcdiv_",
            "site": site(46),
            "inputs": [stats(nan=9, written=True, finite_before=True),
                       stats(zeros=9, min=0.0), denominator],
            "output": stats(nan=9)}


def test_an_update_dividing_by_zero_blames_the_optimizers_eps_at_its_line():
    ev = evidence(steps([1.4, 1.3, 1.2, "nan"]), update_event(0.0),
                  (update_producer(stats(zeros=9, min=0.0)),))
    top = rank(run_rules(ev))[0]
    assert (top.cause, top.code) == (Cause.OPTIMIZER_EPSILON, "ND403")
    assert top.location.line == 37 and top.confidence > 0.8
    assert any("0/0" in line for line in top.evidence)


def test_an_update_that_overflows_with_a_positive_denominator_is_no_eps_fault():
    ev = evidence(steps([1.4, 1.3, 1.2, "nan"]), update_event(1e-8),
                  (update_producer(stats(min=1e-8, max=3.0)),))
    assert Cause.OPTIMIZER_EPSILON not in causes(ev)


def test_all_targets_ignored_is_an_empty_reduction():
    producer = {"key": "forward", "pass": "forward", "op": "aten.nll_loss_forward",
                "site": site(78), "inputs": [stats(), {"dtype": "int64", "numel": 384,
                                                       "min": -100, "max": -100}],
                "output": stats(nan=1, numel=1)}
    ev = evidence(steps([2.3] * 5 + ["nan"]), LOSS_EVENT, (producer,))
    top = rank(run_rules(ev))[0]
    assert top.cause is Cause.EMPTY_REDUCTION
    assert any("-100" in line for line in top.evidence)


def test_nan_in_the_input_batch_is_bad_data_and_a_nan_target_bad_target():
    event = {"step": 9, "phase": "input", "tensor": "input[0] of Sequential",
             "site": site(40), "stats": stats(nan=1),
             "layout": {"count": 1, "numel": 960, "samples": [7], "features": [0]}}
    ev = evidence(steps([0.7] * 10), event)
    assert causes(ev)[0] is Cause.BAD_INPUT_DATA
    target = {**event, "tensor": "target of MSELoss"}
    assert causes(evidence(steps([0.7] * 10), target))[0] is Cause.BAD_TARGET
    assert not {Cause.BAD_INPUT_DATA, Cause.BAD_TARGET} & set(
        causes(evidence(steps([0.7] * 10))))


def test_nll_on_raw_scores_is_a_missing_activation():
    divergence = {"step": 0, "kind": "negative_loss", "loss": -0.07,
                  "function": "nll_loss", "site": site(40)}
    history = steps([-0.07, -1.0, -5.0], nll_input_max=3.2)
    ev = evidence(history, divergence=divergence)
    assert causes(ev)[0] is Cause.MISSING_ACTIVATION
    healthy = evidence(steps([2.3, 1.0, 0.5], nll_input_max=-0.01))
    assert Cause.MISSING_ACTIVATION not in causes(healthy)


def test_rising_loss_fixed_by_a_lower_rate_is_lr_too_high():
    losses = [10.0 * 5 ** i for i in range(10)] + ["inf"]
    grads = [12.0 * 4.9 ** i for i in range(11)]
    event = {**LOSS_EVENT, "step": 10}
    producer = {"key": "forward", "pass": "forward", "op": "aten.mse_loss",
                "site": site(32), "inputs": [stats(max=1e19)],
                "output": stats(posinf=1, numel=1)}
    baseline = outcome("baseline", bad=10)
    probes = (outcome("lr_x0.1", bad=None, final=10.0, first=10.5),
              outcome("clip_grad_norm", bad=10))
    ev = evidence(steps(losses, grads), event, (producer,), probes=probes,
                  baseline=baseline)
    ranked = rank(run_rules(ev))
    assert ranked[0].cause is Cause.LR_TOO_HIGH
    assert ranked[0].fixes[0].verified_by == "lr_x0.1"


def test_falling_loss_that_a_lower_rate_postpones_is_not_lr_too_high():
    producer = {"key": "forward", "pass": "forward", "op": "aten.log",
                "site": site(21), "inputs": [stats(zeros=1, min=0.0)],
                "output": stats(neginf=1)}
    probes = (outcome("lr_x0.1", bad=None, final=0.01, first=0.7),)
    ev = evidence(steps([0.7, 0.5, 0.3, 0.2, 0.1, "nan"]), LOSS_EVENT, (producer,),
                  probes=probes, baseline=outcome("baseline", bad=5))
    top = rank(run_rules(ev))[0]
    assert top.cause is Cause.LOG_OF_NONPOSITIVE
    lr = [f for f in run_rules(ev) if f.cause is Cause.LR_TOO_HIGH]
    assert all(f.confidence <= 0.5 for f in lr)


def test_huge_first_gradient_fixed_by_clipping_is_exploding_gradients():
    event = {**LOSS_EVENT, "step": 1}
    probes = (outcome("lr_x0.1", bad=None, final=3823.0, first=97.0),
              outcome("clip_grad_norm", bad=None, final=0.02, first=97.0))
    ev = evidence(steps([97.0, "inf"], [1.48e4, "nan"]), event, probes=probes,
                  baseline=outcome("baseline", bad=1))
    assert causes(ev)[0] is Cause.EXPLODING_GRADIENTS


def test_a_loss_that_overshoots_from_the_first_step_claims_little_either_way():
    # SGD at rate 1 on raw targets: every step overshoots; clipping helps,
    # a tenth of the rate still runs away. Exploding gradients or a rate too
    # high: the probes cannot tell, so neither is stated above 0.5.
    losses = [3.2e4, 9e5, 4e8, 2e12, "inf"]
    grads = [420.0, 3e4, 2e7, 1e10, "nan"]
    probes = (replace(outcome("lr_x0.1", bad=None, final=1.6e12, first=3.2e4),
                      first_divergence_step=6),
              outcome("clip_grad_norm", bad=None, final=5.7e3, first=3.2e4))
    event = {**LOSS_EVENT, "step": 4}
    ev = evidence(steps(losses, grads), event, probes=probes,
                  baseline=outcome("baseline", bad=4))
    ranked = rank(run_rules(ev))
    assert ranked[0].cause in (Cause.EXPLODING_GRADIENTS, Cause.LR_TOO_HIGH)
    assert all(f.confidence <= 0.5 for f in ranked
               if f.cause in (Cause.EXPLODING_GRADIENTS, Cause.LR_TOO_HIGH))
    # The same probes on a recurrent model: exploding gradients, stated.
    history = steps(losses, grads)
    history[0]["init"] = [{"class": "RNN", "module": "rnn"}]
    recurrent = evidence(history, event, probes=probes,
                         baseline=outcome("baseline", bad=4))
    assert rank(run_rules(recurrent))[0].confidence > 0.5


def test_gradients_left_over_between_steps_is_missing_zero_grad():
    history = steps([0.5, 0.6, 1.0, 3.0, 30.0, 600.0], stale_grads=True)
    ev = evidence(history, divergence={"step": 4, "kind": "loss_runaway"})
    ranked = rank(run_rules(ev))
    assert ranked[0].cause is Cause.MISSING_ZERO_GRAD
    cleared = evidence(steps([0.5, 0.4, 0.3, 0.2], stale_grads=False))
    assert Cause.MISSING_ZERO_GRAD not in causes(cleared)


def test_weights_drawn_with_unit_variance_are_a_bad_initialization():
    history = steps([41149.0, 6.8e6, 7.2e7, 9e15, 1.6e32, "inf"])
    history[0]["weights"] = [{"name": "weights.1", "std": 1.0,
                              "fans": [256, 256], "shape": [256, 256]}]
    event = {**LOSS_EVENT, "step": 5}
    ev = evidence(history, event)
    assert causes(ev)[0] is Cause.BAD_INITIALIZATION
    history[0]["weights"] = [{"name": "fc.weight", "std": 0.036,
                              "fans": [256, 256], "shape": [256, 256]}]
    assert Cause.BAD_INITIALIZATION not in causes(evidence(history, event))


def test_a_crash_is_a_script_error_and_out_of_range_labels_a_bad_target():
    ev = evidence(steps([1.0]))
    ev.watch.end = {"reason": "crashed", "error": "ValueError: boom",
                    "site": site(9)}
    assert causes(ev)[0] is Cause.SCRIPT_ERROR
    ev.watch.end = {"reason": "crashed",
                    "error": "IndexError: Target 10 is out of bounds."}
    assert causes(ev)[0] is Cause.BAD_TARGET


def test_an_exit_code_is_a_script_error_that_shows_the_last_output():
    ev = evidence([])
    ev.watch.end = {"reason": "exit", "exit_code": 2}
    ev.watch.output_tail = ("usage: train.py [-h]\n"
                            "train.py: error: unrecognized arguments: --json r\n")
    top = rank(run_rules(ev))[0]
    assert (top.cause, top.title) == (Cause.SCRIPT_ERROR,
                                      "the script exited with code 2")
    assert "unrecognized arguments" in top.evidence[1]
    assert "before the script" in top.fixes[0].text
    ev.watch.output_tail = "out of patience\n"
    assert "before the script" not in rank(run_rules(ev))[0].fixes[0].text


def test_a_replay_that_disagrees_is_nondeterminism():
    ev = evidence(steps([1.0] * 6), LOSS_EVENT)
    ev.replay = PassResult(name="replay", plan=Plan(script="t"),
                           end={"reason": "max_steps", "first_event": None})
    assert Cause.NONDETERMINISM in causes(ev)


def test_a_failure_nothing_explains_says_so_with_low_confidence():
    ev = evidence(steps([1.0] * 5 + ["nan"]), LOSS_EVENT)
    top = rank(run_rules(ev))[0]
    assert top.cause is Cause.UNEXPLAINED and top.confidence <= 0.3


def test_healthy_runs_get_no_error_findings():
    ev = evidence(steps([1.0 / (i + 1) for i in range(100)]))
    assert not [f for f in run_rules(ev) if f.severity.value == "error"]


def test_dynamics_oracle():
    ev = evidence(steps([1.0, 2.0, 4.0, 8.0], [1.0, 2.0, 4.0, 8.0]))
    d = dynamics(ev)
    assert d.rising_fraction == 1.0
    assert d.grad_growth_per_step == pytest.approx(2.0)
    assert d.rises_from_start is False  # 8x is not 10x
    assert math.isclose(d.last_loss, 8.0)


def test_the_probes_bracket_the_largest_stable_rate_only_at_a_constant_rate():
    from nandoctor.diagnose import _known_bracket

    history = [{**s, "lrs": [0.03]} for s in steps([10.0, 50.0, "inf"])]
    lower = replace(outcome("lr_x0.1", None, final=5.0, first=10.0),
                    lr_factor=0.1)
    failed = outcome("baseline", 2)
    ev = evidence(history, LOSS_EVENT, probes=(lower,), baseline=failed)
    bracket = _known_bracket(ev)
    assert (bracket.low, bracket.high) == pytest.approx((0.003, 0.03))
    assert bracket.low_verified and bracket.high_verified
    # A schedule: the rate that failed was not the first one.
    warm = [{**s, "lrs": [0.03 * (i + 1)]} for i, s in enumerate(history)]
    assert _known_bracket(evidence(warm, LOSS_EVENT, probes=(lower,),
                                   baseline=failed)) is None
    # The lower rate failed too, or the baseline ran clean: nothing known.
    assert _known_bracket(evidence(history, LOSS_EVENT, baseline=failed,
                                   probes=(replace(lower, first_nonfinite_step=9,
                                                   final_loss=None),))) is None
    assert _known_bracket(evidence(history, LOSS_EVENT, probes=(lower,),
                                   baseline=outcome("baseline", None))) is None


def test_probes_acting_after_the_first_non_finite_value_skip_a_runaway():
    from nandoctor.config import ProbeSettings
    from nandoctor.probes import dependent

    overflow = {"key": "forward", "pass": "forward", "op": "aten.mse_loss",
                "site": site(32), "inputs": [stats(max=1e19)],
                "output": stats(posinf=1)}

    def names(divergence: Optional[dict]) -> list[str]:
        ev = evidence(steps([1.0, 0.8, 0.7, 0.6, 0.5, "inf"]), LOSS_EVENT,
                      (overflow,), divergence=divergence)
        return [p.name for p in dependent(ev, ProbeSettings())]

    # A sudden overflow in the loss: one bad batch, or float32's range.
    assert {"skip_nonfinite_batches", "float64"} <= set(names(None))
    # The loss had run away at step 2, while finite: the inf at step 5 only
    # ends a run that had already failed, skipped or in float64.
    ran_away = names({"step": 2, "kind": "loss_runaway"})
    assert "skip_nonfinite_batches" not in ran_away and "float64" not in ran_away
