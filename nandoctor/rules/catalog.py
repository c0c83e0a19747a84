"""The documentation of every rule code, in a fixed anatomy, for `explain`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rich.console import Group
from rich.markdown import Markdown


@dataclass(frozen=True)
class RuleDoc:
    code: str
    cause: str
    title: str
    detects: str
    why: str
    example: str
    fix: str

    def render(self) -> Group:
        text = (f"# {self.code} · {self.cause}: {self.title}\n\n"
                f"## What it detects\n{self.detects}\n\n"
                f"## Why training breaks\n{self.why}\n\n"
                f"## Example\n```python\n{self.example}\n```\n\n"
                f"## Use instead\n{self.fix}\n")
        return Group(Markdown(text))


_DOCS = [
    RuleDoc("ND101", "log_of_nonpositive", "log of zero or a negative number",
            "The first non-finite value came from a log whose argument held exact "
            "zeros or negatives, in the forward pass (-inf, NaN) or in its gradient "
            "(grad / x at x = 0).",
            "log(0) = -inf; the loss then multiplies it by 0 or adds +inf and gets "
            "NaN, and every weight becomes NaN after the update. A sigmoid rounds to "
            "exactly 1.0 in float32 once its logit passes ~17, so log(1 - p) breaks "
            "just when the model is most confident.",
            "p = torch.sigmoid(logits)\n"
            "loss = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()",
            "Compute the loss in log space from the logits: "
            "`nn.BCEWithLogitsLoss()(logits, y)`, `F.log_softmax`, `F.logsigmoid`; "
            "or clamp the argument: `torch.log(p.clamp_min(1e-7))`."),
    RuleDoc("ND102", "exp_overflow", "exp overflow",
            "An exp whose argument exceeded the largest value whose exponential "
            "the dtype can hold (88.7 in float32, 11.1 in float16); or an exp "
            "earlier in the same step whose finite result was so large (over "
            "1e15) that the op which overflowed only carried it on.",
            "exp returns inf; a hand-written softmax then divides inf by inf and "
            "gets NaN. A finite exp(60) = 1e26 squared is already inf, as in a "
            "VAE whose log-variance grew on unscaled inputs.",
            "probs = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)",
            "Use `torch.softmax`, `F.log_softmax` or `F.cross_entropy`, which "
            "subtract the maximum first; or subtract `logits.amax(1, keepdim=True)`."),
    RuleDoc("ND103", "division_by_zero", "division by zero",
            "A division whose divisor held exact zeros (or values so small the "
            "result overflowed), in the forward pass, in data preparation, or in a "
            "gradient.",
            "x / 0 is inf and 0 / 0 is NaN; in data preparation every batch "
            "carries the NaN into the model.",
            "x = (x - x.mean(0)) / x.std(0)   # a constant column has std 0\n"
            "e = e / e.norm(dim=1, keepdim=True)   # a zero vector has norm 0",
            "Keep divisors away from zero: `std[std == 0] = 1`, "
            "`F.normalize(e, dim=1, eps=1e-12)`, `x / d.clamp_min(1e-8)`."),
    RuleDoc("ND104", "sqrt_or_pow_at_zero", "sqrt or fractional power at zero",
            "A sqrt, norm or power with exponent below 1 whose input held zeros; "
            "usually the forward pass is finite and the gradient is not.",
            "d/dx sqrt(x) = 1 / (2 sqrt(x)) and d/dx x^a = a x^(a-1) are infinite "
            "at 0; multiplied by a zero upstream gradient they give NaN. An epsilon "
            "added after the sqrt does not help.",
            "dist = torch.sqrt(((a[:, None] - a[None]) ** 2).sum(-1)) + 1e-8",
            "Clamp inside: `torch.sqrt(sq.clamp_min(1e-12))`, "
            "`(1 - p).clamp_min(1e-6) ** gamma`; use `torch.cdist`."),
    RuleDoc("ND105", "domain_error", "an op outside its domain",
            "acos/asin at or beyond ±1, sqrt or a fractional power of a negative "
            "number.",
            "The result is NaN in the forward pass, or an infinite gradient at the "
            "boundary.",
            "angle = torch.acos((a * b).sum(-1))   # rounding gives 1.0000001",
            "Clamp into the domain: `torch.acos(c.clamp(-1 + 1e-7, 1 - 1e-7))`."),
    RuleDoc("ND106", "where_gradient_leak", "NaN gradient through torch.where",
            "The forward pass was finite because torch.where discarded non-finite "
            "values, but the gradient of the discarded branch is NaN.",
            "where() passes zero gradient to the branch it did not select, and "
            "0 * inf = NaN in that branch's backward.",
            "loss = torch.where(y > 0, y * torch.log(y / mu), 0.0)",
            "Make the discarded branch safe first (\"double where\"): "
            "`torch.log(torch.where(y > 0, y, 1.0) / mu)`."),
    RuleDoc("ND107", "fully_masked_softmax", "softmax over a fully masked row",
            "A softmax whose row was entirely -inf, put there on purpose by a mask.",
            "softmax of all -inf is 0/0 = NaN.",
            "scores = scores.masked_fill(~mask, float('-inf'))   # a row all False",
            "Keep one position unmasked per row, or fill with "
            "`torch.finfo(scores.dtype).min` instead of -inf."),
    RuleDoc("ND108", "empty_reduction", "a mean over an empty selection",
            "A mean (or a loss with reduction='mean') over no elements: every "
            "target equal to ignore_index, an empty mask.",
            "The mean divides a zero sum by a zero count: NaN. The gradient is zero, "
            "so weights survive, but the logged loss and its averages are NaN.",
            "F.cross_entropy(logits, labels, ignore_index=-100)   # all -100",
            "Sum and divide by `max(n_valid, 1)`, or skip batches without targets."),
    RuleDoc("ND109", "numeric_overflow", "values grew until they overflowed",
            "An ordinary op (matmul, a squared error, an update) produced inf from "
            "finite but huge inputs. This is where a failure surfaced, not its "
            "cause.",
            "Something made the values grow: a step size too large, exploding "
            "gradients, a bad initialisation, gradients that accumulate.",
            "loss = F.mse_loss(model(x), y)   # pred ~ 1e19 after divergence",
            "Follow the root cause above it in the report."),
    RuleDoc("ND201", "bad_input_data", "non-finite values in the input data",
            "A batch entering the model already held NaN or inf.",
            "Every op passes the NaN on; after one update every weight is NaN.",
            "X = np.genfromtxt('data.csv', delimiter=',')   # blank cells -> NaN",
            "Impute or drop missing values before training; assert "
            "`torch.isfinite(x).all()` once on the dataset."),
    RuleDoc("ND202", "bad_target", "targets the loss cannot take",
            "NaN targets, class labels outside [0, C), BCE targets outside [0, 1].",
            "The loss is NaN (or negative, or the script crashes) whatever the "
            "model predicts.",
            "y = torch.tensor(df['outcome'].values)   # a missing outcome is NaN",
            "Drop rows whose label is missing; check the label encoding."),
    RuleDoc("ND203", "missing_activation", "a loss given raw scores",
            "NLLLoss (or KLDivLoss) whose input is not log-probabilities: it has "
            "positive values, and the loss goes negative.",
            "NLLLoss returns -input[target]; on raw scores it rewards pushing them "
            "up without bound, and the loss falls below zero forever.",
            "criterion = nn.NLLLoss()\nloss = criterion(model(x), y)   # logits",
            "Add `F.log_softmax(logits, dim=1)`, or use `nn.CrossEntropyLoss`."),
    RuleDoc("ND301", "lr_too_high", "learning rate too high",
            "The loss rises from the first steps, the gradient norm grows "
            "geometrically, no op-level cause explains the failure, and a lower "
            "rate removes it; or a schedule raised the rate tenfold or more past "
            "the step with the best loss (a warm-up without a cap).",
            "Each update overshoots the minimum by more than the last; the values "
            "grow until float overflow.",
            "optimizer = torch.optim.SGD(model.parameters(), lr=0.3)",
            "Lower the rate (start with a tenth), standardise inputs, or find a "
            "safe rate with `nandoctor lr-sweep`."),
    RuleDoc("ND302", "exploding_gradients", "exploding gradients",
            "Gradient norms far above 1 from the first steps (deep or recurrent "
            "nets), fixed by clipping rather than by a lower rate.",
            "Backpropagation multiplies by the weights once per layer or time "
            "step; with gains above 1 the gradient grows exponentially.",
            "rnn = nn.RNN(32, 64, nonlinearity='relu')\n"
            "nn.init.eye_(rnn.weight_hh_l0)   # 100 steps of BPTT",
            "`torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)` before "
            "each step; gated cells (LSTM/GRU); a smaller recurrent init."),
    RuleDoc("ND303", "missing_zero_grad", "gradients never zeroed",
            "Before backward(), .grad still held the previous step's gradient.",
            "Gradients add up across steps; the effective step grows with every "
            "iteration until the run diverges.",
            "optimizer.zero_grad()          # once per epoch\n"
            "for xb, yb in loader:\n    loss(xb, yb).backward(); optimizer.step()",
            "Call `optimizer.zero_grad()` inside the batch loop, every iteration."),
    RuleDoc("ND304", "bad_initialization", "weights at the wrong scale",
            "Weight matrices whose standard deviation is far above 1/sqrt(fan-in), "
            "activations growing layer by layer at step 0, a first loss far above "
            "its expected value.",
            "Each layer multiplies the activation scale; after a few layers the "
            "loss and gradients are astronomically large.",
            "w = nn.Parameter(torch.randn(fan_in, fan_out))",
            "`nn.init.kaiming_normal_` / `xavier_uniform_`, or scale by "
            "`sqrt(2 / fan_in)`."),
    RuleDoc("ND401", "low_precision_overflow", "float16 overflow",
            "An op computed in float16 (autocast, .half()) produced a value above "
            "65504 from finite inputs.",
            "inf in float16; normalisation layers turn it into NaN; GradScaler "
            "skips the steps and its scale decays to zero.",
            "with torch.autocast('cpu', dtype=torch.float16):\n    y = conv(pcm)",
            "Autocast to bfloat16, keep that layer in float32, or scale inputs."),
    RuleDoc("ND402", "optimizer_epsilon", "optimizer update in low precision",
            "Finite gradients, but the optimizer's update made weights non-finite, "
            "with parameters in float16/bfloat16.",
            "Adam's eps=1e-8 rounds to zero in float16: sqrt(v) + eps can be 0.",
            "model.half()\nopt = torch.optim.Adam(model.parameters())",
            "Keep master weights in float32 (autocast), or raise eps."),
    RuleDoc("ND403", "optimizer_epsilon", "optimizer update divided by zero",
            "Finite gradients, but the optimizer's update divided by a denominator "
            "holding zeros (Adam's sqrt(v) + eps with eps=0 or too small).",
            "A weight whose gradient has always been 0 (an embedding row never "
            "looked up, an unused or frozen weight) keeps both moments at 0: its "
            "update is 0/0 = NaN, and the NaN spreads from that weight.",
            "opt = torch.optim.Adam(model.parameters(), lr=1e-2, eps=0.0)",
            "Give the optimizer a positive eps (the default 1e-8)."),
    RuleDoc("ND501", "nondeterminism", "the replay did not reproduce the run",
            "Two runs with the same seed and threads differ in their first "
            "non-finite event.",
            "Something unseeded (time, an unseeded generator, a nondeterministic "
            "kernel) changes the run; op-level evidence may describe another "
            "failure.",
            "g = np.random.default_rng()   # no seed",
            "Seed every generator; `torch.use_deterministic_algorithms(True)`."),
    RuleDoc("ND502", "script_error", "the script raised an error",
            "The training script crashed on its own (or was killed).",
            "Not a numerical failure: the traceback says what went wrong.",
            "raise ValueError('...')",
            "Fix the error at the line shown."),
    RuleDoc("ND601", "exploding_gradients", "gradient norm growing steadily",
            "On a run that stayed finite, the gradient norm grew over 100x in the "
            "last 50 steps.",
            "A longer run is likely to diverge.",
            "# no single line: a trend",
            "Clip the gradient norm or lower the rate."),
    RuleDoc("ND602", "log_of_nonpositive", "saturated sigmoid/tanh outputs",
            "Half or more of a sigmoid/tanh layer's outputs sit exactly at their "
            "limits.",
            "Saturated units have zero gradient, and a log of a saturated "
            "probability is -inf.",
            "p = nn.Sigmoid()(logits)",
            "Use a log-space loss on logits."),
    RuleDoc("ND900", "unexplained", "no explanation",
            "The run failed, but no rule matched the evidence.",
            "Unknown; nandoctor says so rather than guess.",
            "# any",
            "Read the operand statistics in the JSON report; try the probes."),
]

RULES = {doc.code: doc for doc in _DOCS}


def lookup(code: str) -> Optional[RuleDoc]:
    """A rule by its code (`ND101`), or by the cause reports name
    (`log_of_nonpositive`): the rule whose own cause it is, not a warning's."""
    wanted = code.strip()
    if wanted.upper() in RULES:
        return RULES[wanted.upper()]
    return next((doc for doc in sorted(RULES.values(), key=lambda d: d.code)
                 if doc.cause == wanted.lower()), None)
