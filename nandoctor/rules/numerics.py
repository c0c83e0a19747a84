"""Ops that leave their domain: log(0), exp overflow, x/0, sqrt'(0), acos(1),
float16 overflow, a mean over nothing, a softmax over a fully masked row,
and a NaN gradient leaking through the branch `torch.where` did not take.

Each reads the replay's producer: the first op whose inputs were finite and
whose output was not, with the statistics of what went in.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from ..evidence import Evidence
from ..findings import Cause, Finding, Fix, Location, Severity
from . import signals
from .common import (
    count, location, number, op_name, operands, plural, probe_failed_like_baseline,
    probe_learns, verified, where,
)

FP16_MAX = 65504.0
EXP_LIMIT = {"float32": 88.72, "float64": 709.78, "float16": 11.09,
             "bfloat16": 88.72}
LOG_OPS = {"log", "log2", "log10", "log1p", "xlogy", "log_sigmoid_forward"}
DIV_OPS = {"div", "true_divide", "reciprocal", "remainder", "fmod", "atan2"}
# Bessel's correction divides by N - 1: zero for a single value.
SPREAD_OPS = {"std", "var", "std_mean", "var_mean"}
ROOT_OPS = {"sqrt", "rsqrt", "pow", "norm", "linalg_vector_norm"}
DOMAIN_OPS = {"acos", "asin", "atanh", "acosh"}
SOFTMAX_OPS = {"softmax", "_softmax", "log_softmax", "_log_softmax"}
REDUCTION_OPS = {"nll_loss_forward", "nll_loss2d_forward", "mean", "nll_loss",
                 "cross_entropy_loss", "nanmean"}
LOW_PRECISION = ("float16", "bfloat16")
# The replay's passes before the model saw the batch.
_DATA_PASSES = ("data", "entered")
# Operands this large have lost all headroom: products and squares overflow.
HUGE = 1e30

CODES = {
    Cause.LOG_OF_NONPOSITIVE: "ND101",
    Cause.EXP_OVERFLOW: "ND102",
    Cause.DIVISION_BY_ZERO: "ND103",
    Cause.SQRT_OR_POW_AT_ZERO: "ND104",
    Cause.DOMAIN_ERROR: "ND105",
    Cause.WHERE_GRADIENT_LEAK: "ND106",
    Cause.FULLY_MASKED_SOFTMAX: "ND107",
    Cause.EMPTY_REDUCTION: "ND108",
    Cause.NUMERIC_OVERFLOW: "ND109",
    Cause.LOW_PRECISION_OVERFLOW: "ND401",
    Cause.OPTIMIZER_EPSILON: "ND402",
}
# An update that divides by its denominator's zeros, in any precision.
ZERO_DENOMINATOR_CODE = "ND403"
# Where an optimizer's update divides: addcdiv(param, m, denom), div(m, denom).
_UPDATE_DIVISOR = {"addcdiv": 2, "addcdiv_": 2, "div": 1, "div_": 1}


def check(ev: Evidence) -> list[Finding]:
    producer = ev.primary_producer()
    if producer is None or producer.get("pass") == "entered":
        return []
    leak = _where_leak(ev)
    if leak is not None:
        return [leak, *_op_findings(ev, ev.producer("forward") or producer,
                                    confidence_cap=0.6)]
    return _op_findings(ev, producer)


def _op_findings(ev: Evidence, producer: dict,
                 confidence_cap: float = 1.0) -> list[Finding]:
    finding = _classify(ev, producer)
    if finding is None:
        return []
    finding = _weigh_probes(ev, finding)
    if finding.confidence > confidence_cap:
        finding = _with(finding, confidence=confidence_cap)
    upstream = _huge_exp(ev, producer) if finding.cause is Cause.NUMERIC_OVERFLOW \
        else None
    return [upstream, finding] if upstream else [finding]


def _classify(ev: Evidence, p: dict) -> Optional[Finding]:
    op = op_name(p)
    ins = operands(p)
    first = ins[0] if ins else {}
    out = p.get("output") or (p.get("grad_out") or [{}])[0]
    backward = p.get("pass") == "backward"
    if p.get("pass") == "update":
        return _optimizer(ev, p, out)
    if p.get("masked_from") and op in SOFTMAX_OPS | {"mul", "div", "exp", "sum"}:
        return _masked_softmax(ev, p)
    if op in LOG_OPS and (count(first, "zeros") or count(first, "negatives")):
        return _log(ev, p, first, backward)
    if op == "exp":
        return _exp(ev, p, first, out)
    if op in DIV_OPS:
        divisor = ins[1] if len(ins) > 1 and op != "reciprocal" else first
        if count(divisor, "zeros") or count(divisor, "tiny"):
            return _division(ev, p, ins[0] if op != "reciprocal" else None,
                             divisor, backward)
    if op in ROOT_OPS:
        if count(first, "negatives") and not backward and out.get("nan"):
            return _domain(ev, p, first, backward,
                           title=f"{op} of a negative number")
        if count(first, "zeros") or count(first, "tiny"):
            return _root_at_zero(ev, p, first, backward)
    if op in DOMAIN_OPS:
        return _domain(ev, p, first, backward)
    if op in SPREAD_OPS and out.get("nan") and not backward:
        return _single_value_spread(ev, p, first)
    if op in REDUCTION_OPS and out.get("nan") and not out.get("posinf"):
        return _empty_reduction(ev, p, ins)
    return _overflow(ev, p, out)


def _finding(ev: Evidence, p: dict, cause: Cause, title: str, confidence: float,
             evidence: list[str], fixes: list[Fix],
             severity: Severity = Severity.ERROR, role: str = "root",
             code: Optional[str] = None, at: Optional[Location] = None) -> Finding:
    return Finding(code=code or CODES[cause], cause=cause, title=title,
                   severity=severity, confidence=confidence,
                   location=at or location(p),
                   step=p.get("step"), evidence=tuple(evidence),
                   figures=_figures(p), fixes=tuple(fixes), role=role)


def _figures(p: dict) -> dict:
    keep = ("op", "call", "node", "pass", "inputs", "output", "forward_inputs",
            "grad_in", "grad_out")
    return {k: p[k] for k in keep if k in p}


def _log(ev: Evidence, p: dict, arg: dict, backward: bool) -> Finding:
    zeros, negatives = count(arg, "zeros"), count(arg, "negatives")
    what = "zero" if zeros and not negatives else "a negative number"
    evidence = [
        f"{where(p)} received {plural(zeros, 'exact zero')} and "
        f"{plural(negatives, 'negative value')} (min {number(arg.get('min'))}, "
        f"max {number(arg.get('max'))})",
    ]
    if backward:
        evidence.append(f"the forward value was finite, but {p.get('node')} "
                        "computes grad / x, which is infinite at x = 0")
    elif p.get("output", {}).get("neginf"):
        evidence.append("log(0) = -inf; any later 0 * -inf or -inf + inf is NaN")
    probabilities = (arg.get("min") or 0) >= 0 and (arg.get("max") or 0) <= 1
    saturated = bool(zeros and probabilities and arg.get("max") is not None
                     and arg["max"] >= 0.999999
                     and p.get("pass") not in _DATA_PASSES)
    if saturated:
        evidence.append(f"an exact 0 beside values next to 1 (max "
                        f"{arg['max']:.7g}) is the mark of a saturated sigmoid "
                        "or softmax in float32 (a probability within ~6e-8 of 1 "
                        "rounds to 1.0, one below ~1e-45 to 0)")
    clamp = verified("Or clamp the argument of the log",
                     "torch.log(x.clamp_min(1e-7))", ev, "eps_guard")
    if p.get("pass") in _DATA_PASSES:
        evidence.append("this happened in data preparation, before the model "
                        "saw the batch: a feature or target holds zeros or "
                        "negative values")
        fixes = [Fix(text="Log-transform features that can be 0 with log1p",
                     code="torch.log1p(x)"), clamp]
    elif saturated:
        fixes = [verified("Compute the loss from logits instead of "
                          "probabilities, e.g. `nn.BCEWithLogitsLoss()` or "
                          "`F.log_softmax`", None, ev), clamp]
    else:
        fixes = [Fix(text="Make the argument positive where it is made: "
                          "softplus (plus a floor) for a learned scale or "
                          "variance, `F.log_softmax` or `nn.BCEWithLogitsLoss` "
                          "on logits for probabilities",
                     code="var = F.softplus(raw) + 1e-6"), clamp]
    return _finding(ev, p, Cause.LOG_OF_NONPOSITIVE, f"log of {what}", 0.85,
                    evidence, fixes)


def _exp(ev: Evidence, p: dict, arg: dict, out: dict) -> Optional[Finding]:
    dtype = out.get("dtype") or arg.get("dtype") or "float32"
    limit = EXP_LIMIT.get(dtype, 88.72)
    top = arg.get("max")
    if top is None or top < limit * 0.9:
        return None
    evidence = [f"{where(p)} received {number(top)}; exp overflows {dtype} "
                f"above {limit:g}",
                f"the output holds {plural(count(out, 'posinf'), 'inf')}"]
    nan = ev.producer(f"{p.get('key')}_nan")
    if nan is not None and nan.get("op") != p.get("op"):
        evidence.append(f"the NaN then came from {where(nan)} (inf/inf or inf - inf)")
    fixes = [
        verified("Use the library's stable form, which never exponentiates a "
                 "large value: `F.softplus` for log(1 + exp(x)), "
                 "`torch.logsumexp`, `torch.softmax`, `F.log_softmax` or "
                 "`F.cross_entropy` on logits", None, ev),
        verified("Or subtract the row maximum before exp",
                 "torch.exp(x - x.amax(dim=-1, keepdim=True))", ev, "eps_guard"),
    ]
    cause = Cause.EXP_OVERFLOW
    return _finding(ev, p, cause, "exp overflow", 0.85, evidence, fixes)


def _division(ev: Evidence, p: dict, numerator: Optional[dict], divisor: dict,
              backward: bool) -> Finding:
    zeros = count(divisor, "zeros")
    tiny = count(divisor, "tiny")
    size = divisor.get("numel")
    evidence = [f"{where(p)}: the divisor has {plural(zeros, 'exact zero')}"
                + (f" and {tiny} values below 1e-30" if tiny else "")
                + (f" out of {size}" if size else "")]
    if numerator is not None and count(numerator, "zeros"):
        evidence.append("numerator zeros make 0/0 = NaN; other values give ±inf")
    if p.get("pass") == "data":
        evidence.append("this happened in data preparation, before the model saw "
                        "the batch (e.g. a standard deviation of 0 for a constant "
                        "feature)")
    if backward:
        evidence.append(f"the forward division was finite, but {p.get('node')} "
                        "divides by the same zero")
    fixes = [
        verified("Keep the divisor away from zero", "x / d.clamp_min(1e-8)", ev,
                 "eps_guard"),
        Fix(text="For x / x.norm(), use `F.normalize(x, dim=-1, eps=1e-12)`; for "
                 "standardisation, replace zero std by 1: `std[std == 0] = 1`"),
    ]
    return _finding(ev, p, Cause.DIVISION_BY_ZERO, "division by zero", 0.85,
                    evidence, fixes)


def _root_at_zero(ev: Evidence, p: dict, arg: dict, backward: bool) -> Finding:
    op = op_name(p)
    zeros = count(arg, "zeros") + count(arg, "tiny")
    evidence = [f"{where(p)} received {plural(zeros, 'value')} at (or within "
                f"1e-30 of) zero"]
    if backward:
        evidence.append(f"the forward pass was finite; {p.get('node')} computes "
                        "the derivative, which is infinite at 0 (d/dx sqrt(x) = "
                        "1/(2 sqrt(x)), d/dx x^a = a x^(a-1) for a < 1)")
        evidence.append("an epsilon added outside the sqrt/pow protects nothing")
    fixes = [
        verified("Clamp inside the root or power, before it",
                 "torch.sqrt(x.clamp_min(1e-12))", ev, "eps_guard"),
        Fix(text="For distances use `torch.cdist` or `F.pairwise_distance`; for "
                 "norms, `F.normalize`"),
    ]
    title = f"gradient of {op} at zero" if backward else f"{op} at zero"
    return _finding(ev, p, Cause.SQRT_OR_POW_AT_ZERO, title, 0.85, evidence, fixes)


def _single_value_spread(ev: Evidence, p: dict, arg: dict) -> Finding:
    evidence = [f"{where(p)} returned NaN from finite inputs ({arg.get('numel')} "
                "values): with Bessel's correction the spread of a single value "
                "divides by N - 1 = 0"]
    fixes = [Fix(text="Use the population statistic or guard single-sample "
                      "batches", code="x.std(dim, unbiased=False)"),
             Fix(text="Or drop the last, incomplete batch",
                 code="DataLoader(..., drop_last=True)")]
    return _finding(ev, p, Cause.DIVISION_BY_ZERO,
                    "standard deviation of a single value", 0.75, evidence, fixes)


def _domain(ev: Evidence, p: dict, arg: dict, backward: bool,
            title: Optional[str] = None) -> Finding:
    op = op_name(p)
    evidence = [f"{where(p)}: input min {number(arg.get('min'))}, max "
                f"{number(arg.get('max'))}"]
    if backward:
        # acos(1) is finite; its slope -1/sqrt(1 - x^2) is not.
        evidence.append(f"the forward value was finite, but the derivative of "
                        f"{op} is infinite at the edge of its domain (±1)")
    if op in ROOT_OPS:
        fixes = [verified("Keep the argument at or above 0 before the root",
                          f"torch.{op}(x.clamp_min(0) + 1e-6)", ev, "eps_guard"),
                 Fix(text="A variance computed as E[x²] - E[x]² can round "
                          "below 0: use `x.var(dim, unbiased=False)`")]
    else:
        fixes = [verified("Clamp the input inside the op's domain, e.g. "
                          "`torch.acos(x.clamp(-1 + 1e-7, 1 - 1e-7))`", None,
                          ev, "eps_guard")]
    title = title or (f"gradient of {op} at the edge of its domain" if backward
                      else f"{op} outside its domain")
    return _finding(ev, p, Cause.DOMAIN_ERROR, title, 0.8, evidence, fixes)


def _empty_reduction(ev: Evidence, p: dict, ins: list[dict]) -> Finding:
    evidence = [f"{where(p)} returned NaN from finite inputs"]
    targets = [s for s in ins if not str(s.get("dtype", "")).startswith("float")
               and s.get("min") is not None]
    if targets and targets[0].get("min") == targets[0].get("max"):
        evidence.append(f"every one of the {targets[0].get('numel')} targets equals "
                        f"{targets[0].get('min')}: nothing is left to average "
                        "(ignore_index), so the mean is 0/0")
    empty = [s for s in ins if s.get("numel") == 0]
    if empty:
        evidence.append("the reduced tensor is empty: a mean over nothing")
    if not _weights_broke(ev):
        evidence.append("the weights stayed finite: the gradient of such a step "
                        "is zero, so only the reported loss is NaN")
    fixes = [Fix(text="Average over the valid targets only, guarding the count",
                 code="loss_sum / max(n_valid, 1)"),
             Fix(text="Or skip batches with no valid target before the loss")]
    return _finding(ev, p, Cause.EMPTY_REDUCTION, "mean over an empty selection",
                    0.8, evidence, fixes)


def _masked_softmax(ev: Evidence, p: dict) -> Finding:
    src = p.get("masked_from") or {}
    site = src.get("site") or {}
    evidence = [f"{where(p)} produced NaN from -inf values put there on purpose",
                f"the -inf came from {src.get('call') or src.get('op')} at "
                f"line {site.get('line')}: a row with every position masked "
                "has no finite score, and softmax of all -inf is 0/0"]
    fixes = [Fix(text="Make sure every row keeps at least one unmasked position, "
                      "or fill with a large negative number instead of -inf",
                 code="scores.masked_fill(mask, torch.finfo(scores.dtype).min)")]
    return _finding(ev, p, Cause.FULLY_MASKED_SOFTMAX,
                    "softmax over a fully masked row", 0.8, evidence, fixes)


def _optimizer(ev: Evidence, p: dict, out: dict) -> Finding:
    first = ev.first_event or {}
    dtype = out.get("dtype", "")
    evidence = [f"the gradients were finite, but {where(p)} inside "
                "optimizer.step() made the weights non-finite",
                f"parameter: {first.get('parameter', '?')} (param group "
                f"{first.get('group', '?')}), {dtype}"]
    slot = _UPDATE_DIVISOR.get(op_name(p))
    ins = operands(p)
    divisor = ins[slot] if slot is not None and len(ins) > slot else {}
    if dtype not in LOW_PRECISION and (count(divisor, "zeros")
                                       or count(divisor, "tiny")):
        return _zero_denominator(ev, p, first, slot, ins, evidence)
    if dtype in LOW_PRECISION:
        evidence.append(f"in {dtype}, eps=1e-8 rounds to 0, so sqrt(v) + eps can "
                        "be 0 and the update divides by it")
        fixes = [Fix(text="Keep the optimizer state and master weights in float32 "
                          "(use autocast rather than .half() on the model), or "
                          "raise eps", code="torch.optim.Adam(params, eps=1e-4)")]
        return _finding(ev, p, Cause.OPTIMIZER_EPSILON,
                        "optimizer update in low precision", 0.75, evidence, fixes)
    fixes = [verified("Lower the learning rate or clip the gradient norm",
                      None, ev, "lr_x0.1", "clip_grad_norm")]
    return _finding(ev, p, Cause.NUMERIC_OVERFLOW, "the update overflowed",
                    0.5, evidence, fixes, severity=Severity.WARNING,
                    role="surfaced")


def _zero_denominator(ev: Evidence, p: dict, first: dict, slot: int,
                      ins: list[dict], evidence: list[str]) -> Finding:
    """The update divided by zero: Adam-like m / (sqrt(v) + eps) with
    sqrt(v) = 0 where a weight's gradient has always been 0, and an eps too
    small to keep the sum positive."""
    numerator, divisor = ins[slot - 1], ins[slot]
    opt = first.get("optimizer") or {}
    eps = opt.get("eps")
    made_at = Location.of_site(opt.get("site"))
    zeros = count(divisor, "zeros") + count(divisor, "tiny")
    evidence = evidence + [
        f"its denominator (operand {slot}) holds "
        f"{plural(zeros, 'value')} at or within 1e-30 of zero, out of "
        f"{divisor.get('numel')}"]
    if count(numerator, "zeros"):
        evidence.append("the numerator is 0 there too: 0/0 = NaN, the mark of "
                        "weights whose gradient has always been 0 (embedding "
                        "rows never looked up, unused or frozen weights): "
                        "both moments stay 0")
    settled = eps is not None and eps < 1e-30
    if eps is not None:
        made = f"{opt.get('type') or 'the optimizer'} was made with eps={eps:g}"
        if made_at.line:
            made += f" at line {made_at.line}"
        evidence.append(made + (": nothing keeps the denominator above 0"
                                if settled else ", too small to keep the "
                                "denominator above 0 here"))
    fixes = [Fix(text="Give the optimizer a positive eps, e.g. the default",
                 code=f"torch.optim.{opt.get('type') or 'Adam'}(params, eps=1e-8)")]
    return _finding(ev, p, Cause.OPTIMIZER_EPSILON,
                    "optimizer update divided by zero", 0.85 if settled else 0.6,
                    evidence, fixes, code=ZERO_DENOMINATOR_CODE,
                    at=made_at if made_at.line else None)


def _overflow(ev: Evidence, p: dict, out: dict) -> Optional[Finding]:
    dtype = out.get("dtype", "")
    ins = operands(p)
    biggest = max((abs(s.get(k) or 0) for s in ins for k in ("min", "max")),
                  default=0.0)
    infinite = out.get("posinf") or out.get("neginf")
    if not infinite and biggest < HUGE:
        return None  # a NaN from moderate values: not an overflow; say nothing
    if dtype in LOW_PRECISION:
        evidence = [f"{where(p)} computed in {dtype} from finite inputs (largest "
                    f"|value| {number(biggest)}); its result exceeds "
                    f"finfo({dtype}).max = {FP16_MAX:g}" if dtype == "float16"
                    else f"{where(p)} overflowed in {dtype}"]
        fixes = [
            verified("Run this part in float32, or autocast to bfloat16 (float32's "
                     "range)", "torch.autocast('cpu', dtype=torch.bfloat16)", ev,
                     "no_autocast"),
            Fix(text="Or scale the input down (e.g. int16 audio by 1/32768)"),
        ]
        return _finding(ev, p, Cause.LOW_PRECISION_OVERFLOW,
                        f"{dtype} overflow", 0.8, evidence, fixes)
    dyn = signals.dynamics(ev)
    evidence = [f"{where(p)} overflowed: its inputs reached |x| = "
                f"{number(biggest)} before the result left float range"]
    if dyn.ran_away:
        evidence.append(f"the loss grew from {number(dyn.min_loss)} to "
                        f"{number(dyn.last_loss)} before this step: values grew "
                        "until they overflowed; the cause is what made them grow")
    fixes = [verified("Find what made the values grow (see the root cause); "
                      "lowering the rate or clipping gradients stops the growth",
                      None, ev, "lr_x0.1", "clip_grad_norm")]
    return _finding(ev, p, Cause.NUMERIC_OVERFLOW, "values grew until they "
                    "overflowed", 0.45, evidence, fixes, severity=Severity.WARNING,
                    role="surfaced")


def _huge_exp(ev: Evidence, overflowed: dict) -> Optional[Finding]:
    """An exp earlier in the same step returned a finite but huge value: the
    op that overflowed only carried it on."""
    grown = ev.producer("huge_exp")
    if grown is None or grown.get("step") != overflowed.get("step"):
        return None
    arg = (grown.get("inputs") or [{}])[0]
    out = grown.get("output") or {}
    evidence = [f"{where(grown)} received up to {number(arg.get('max'))} and "
                f"returned up to {number(out.get('max'))}: finite, but past "
                "what the next product or square can hold",
                f"{where(overflowed)} then overflowed on it"]
    fixes = [Fix(text="Bound the exponent before exp, e.g. a log-variance",
                 code="torch.exp(0.5 * logvar.clamp(-20, 20))"),
             Fix(text="Or scale the inputs that drive it (standardise features "
                      "and targets)")]
    return _finding(ev, grown, Cause.EXP_OVERFLOW,
                    "exp made values too large to compute with", 0.7, evidence,
                    fixes)


def _where_leak(ev: Evidence) -> Optional[Finding]:
    masked = ev.producer("masked")
    backward = ev.producer("backward")
    phase = (ev.first_event or {}).get("phase")
    if masked is None or backward is None or phase != "backward":
        return None
    hidden = (masked.get("hidden") or [{}])[0]
    forward = ev.producer("forward") or {}
    hidden_count = sum(count(hidden, k) for k in ("nan", "posinf", "neginf"))
    evidence = [
        f"the forward pass was finite: {where(masked)} discarded "
        f"{plural(hidden_count, 'non-finite value')}",
        f"they were made by {where(forward)} in the branch it did not select"
        if forward else "they were made in the branch it did not select",
        f"in backward, {backward.get('node')} still differentiates that branch: "
        "its gradient is 0 * inf = NaN, and where() passes it on",
    ]
    fixes = [
        verified("Make the unselected branch safe before computing it (the "
                 "\"double where\")", "torch.log(torch.where(y > 0, y, 1.0))", ev,
                 "eps_guard"),
        Fix(text="Or use a loss that handles the zeros itself (e.g. "
                 "`nn.PoissonNLLLoss`); note that `torch.special.xlogy` has the "
                 "same gradient problem in its second argument"),
    ]
    return _finding(ev, backward, Cause.WHERE_GRADIENT_LEAK,
                    "NaN gradient from the branch torch.where discarded", 0.85,
                    evidence, fixes)


def _weigh_probes(ev: Evidence, finding: Finding) -> Finding:
    """A guard at the op that removes the failure confirms it; one that
    changes nothing says the op only passed on a problem made elsewhere."""
    if finding.role != "root":
        return finding
    if any(f.verified_by == "eps_guard" for f in finding.fixes):
        return _with(finding, confidence=min(0.95, finding.confidence + 0.05))
    guard = ev.probe("eps_guard")
    if (guard is not None and guard.failed and signals.dynamics(ev).rises_from_start
            and probe_learns(ev, "lr_x0.1")):
        note = ("the loss rose from the first steps and a lower rate removes the "
                "failure, while a guard at this op does not: the op is where a "
                "too-large step size surfaced")
        return _with(finding, role="surfaced", confidence=0.5,
                     severity=Severity.WARNING, evidence=finding.evidence + (note,))
    if probe_failed_like_baseline(ev, "eps_guard"):
        note = ("an epsilon guard at this op did not remove the failure: the op "
                "may only pass on a problem made earlier")
        return _with(finding, confidence=finding.confidence - 0.3,
                     evidence=finding.evidence + (note,))
    return finding


def _weights_broke(ev: Evidence) -> bool:
    return any(isinstance(s.get("param_norm"), str) for s in ev.watch.steps)


def _with(finding: Finding, **changes: object) -> Finding:
    return replace(finding, **changes)
