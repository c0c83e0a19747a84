"""The watch pass: cheap per-step evidence and the first non-finite event.

A step is one update of the optimizer created first (a skipped GradScaler
step included); without an optimizer, one `backward()` call. Every callback
here runs on the user's hot path, so each does a few reductions at most and
walks frames only once something is already wrong.
"""
from __future__ import annotations

import functools
import math
import weakref
from typing import Any, Callable, Iterator, Optional

import torch

from ..divergence import RunawayDetector
from ..plan import Plan
from .events import EventWriter
from .sites import user_site
from .tensors import (
    all_finite,
    describe,
    is_float,
    is_mask_like,
    nonfinite_layout,
    summary,
)

# Losses that are a negative log-likelihood (or a divergence): a correct
# input can never make them negative.
NONNEGATIVE_LOSSES = frozenset(
    {"nll_loss", "cross_entropy", "binary_cross_entropy",
     "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss"}
)
_SATURATING = (torch.nn.Sigmoid, torch.nn.Tanh)
_INIT_MODULES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d,
                 torch.nn.Conv3d, torch.nn.RNNBase, torch.nn.Embedding)
_MAX_INIT_RECORDS = 64
_TOP_MODULES = 3


def _quiet(method: Callable) -> Callable:
    """Run a watch callback with the replay's op checks off: the watch's own
    statistics (a std over a mask of -inf) are not the user's ops."""

    @functools.wraps(method)
    def quiet(self: "Watch", *args: Any, **kwargs: Any) -> Any:
        checker = self.checker
        if checker is None or checker.busy:
            return method(self, *args, **kwargs)
        checker.busy = True
        try:
            return method(self, *args, **kwargs)
        finally:
            checker.busy = False

    return quiet


class StopRun(BaseException):
    """Ends the user's script; a BaseException so `except Exception` lets it by."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Change:
    """A change applied from outside (a probe, the lr sweep); no-ops by default."""

    def root_input(self, module: torch.nn.Module, args: tuple) -> Optional[tuple]:
        return None

    def loss_args(self, name: str, args: tuple, kwargs: dict) -> tuple:
        return args, kwargs

    def before_update(self, optimizer: torch.optim.Optimizer, step: int) -> bool:
        """Called before the optimizer's update; True when it skips this step."""
        return False

    def after_update(self, optimizer: torch.optim.Optimizer) -> None:
        pass

    def hand_gradients(self, params: list[torch.Tensor]) -> None:
        """Without an optimizer: the gradients the script will apply by hand."""

    def after_step(self, step: int, loss: Optional[float]) -> None:
        pass


def is_loss_module(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.modules.loss._Loss) or type(
        module
    ).__name__.endswith("Loss")


def tensors_in(value: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """Floating tensors in a module's arguments or output, one level deep."""
    if is_float(value):
        yield "", value
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            if is_float(item):
                yield f"[{i}]", item
    elif isinstance(value, dict):
        for key, item in value.items():
            if is_float(item):
                yield f"[{key!r}]", item


class Watch:
    """Receives every hook callback; writes `step` and `nonfinite` events."""

    def __init__(
        self,
        plan: Plan,
        events: EventWriter,
        change: Optional[Change] = None,
        checker: Any = None,
    ) -> None:
        self.plan = plan
        self.events = events
        self.change = change or Change()
        self.checker = checker
        self.step = 0
        self.first_event: Optional[dict] = None
        self.divergence: Optional[dict] = None
        self.nonfinite_steps = 0
        self.stop_at: Optional[int] = None
        self._optimizers: list[weakref.ref] = []
        # Where each optimizer was made: the line to fix when its own
        # settings (eps) break the update.
        self._optimizer_sites: "weakref.WeakKeyDictionary[Any, Optional[dict]]" = \
            weakref.WeakKeyDictionary()
        self._roots: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()
        self._names: dict[int, str] = {}
        self._module_names: dict[int, str] = {}
        self._last_finite: tuple[Optional[weakref.ref], int] = (None, 0)
        self._loss_sites: dict[str, Optional[dict]] = {}
        self._in_loss_module = 0
        self._hand_params: Optional[list[torch.Tensor]] = None
        self._init_records: list[dict] = []
        self._init_modules: dict[int, Any] = {}
        self._last_param_norm: Optional[float] = None
        self._runaway = RunawayDetector(plan.runaway_factor, plan.runaway_patience)
        self._finishes = 0
        self._initial_weights: list[dict] = []
        self._new_step()

    # -- step bookkeeping -------------------------------------------------

    def _new_step(self) -> None:
        self._losses: list[float] = []
        self._step_bad = False
        self._sampled = self.step % self.plan.stats_every == 0
        self._inputs: list[dict] = []
        self._activations: list[dict] = []
        self._grad: dict[str, Any] = {}
        self._backwards = 0
        self._stale_grads: Optional[bool] = None
        self._nll_input_max: Optional[float] = None
        self._negative_loss: Optional[dict] = None
        self._skipped_by_change = False

    def primary(self) -> Optional[torch.optim.Optimizer]:
        for ref in self._optimizers:
            opt = ref()
            if opt is not None:
                return opt
        return None

    def _finish_step(self, skipped_by: Optional[str] = None) -> None:
        loss = sum(self._losses) / len(self._losses) if self._losses else None
        record: dict[str, Any] = {
            "step": self.step,
            "loss": loss,
            "backwards": self._backwards,
            "skipped": bool(skipped_by or self._skipped_by_change),
            "nonfinite": self._step_bad,
            "param_norm": self._last_param_norm,
            **self._grad,
        }
        if record["skipped"]:
            record["skipped_by"] = "probe" if self._skipped_by_change else skipped_by
        if self._stale_grads is not None:
            record["stale_grads"] = self._stale_grads
        if self._inputs:
            record["inputs"] = self._inputs
        if self._activations:
            record["activations"] = self._activations
        if self._nll_input_max is not None:
            record["nll_input_max"] = self._nll_input_max
        if self.step == 0:
            if self._init_records:
                record["init"] = self._init_report()
            record["weights"] = self._initial_weights
        self.events.emit("step", **record)
        self._finishes += 1
        if self._step_bad:
            self.nonfinite_steps += 1
        self._note_divergence(loss)

        done = self.step
        self.step += 1
        self._new_step()
        if self.checker is not None:
            self.checker.step_begins(self.step)
        self.change.after_step(done, loss)
        if self.plan.max_steps is not None and self.step >= self.plan.max_steps:
            raise StopRun("max_steps")
        if self.stop_at is not None and self.step > self.stop_at:
            raise StopRun("evidence_complete")

    def _note_divergence(self, loss: Optional[float]) -> None:
        if self.divergence is not None:
            return
        if self._negative_loss is not None:
            self.divergence = {"step": self.step, "kind": "negative_loss",
                               **self._negative_loss}
        else:
            at = self._runaway.update(self.step, loss)
            if at is None:
                return
            self.divergence = {"step": at, "kind": "loss_runaway",
                               "best_smoothed": self._runaway.best}
        self.events.emit("divergence", **self.divergence)
        self._stop_later(self.step, self.plan.stop_after_runaway)

    def _stop_later(self, step: int, after: Optional[int]) -> None:
        if after is None:
            return
        stop = step + after
        self.stop_at = stop if self.stop_at is None else min(self.stop_at, stop)

    def finish(self) -> None:
        """The script ended: close a hand-updated step that saw a backward()."""
        if self.primary() is None and self._backwards:
            self._check_hand_params()
            try:
                self._finish_step()
            except StopRun:
                pass

    # -- non-finite events ------------------------------------------------

    def _nonfinite(self, phase: str, what: str, tensor: torch.Tensor,
                   **extra: Any) -> None:
        self._step_bad = True
        if self.first_event is not None:
            return
        event = {
            "step": self.step,
            "phase": phase,
            "tensor": what,
            "stats": describe(tensor),
            "site": user_site(2),
            **extra,
        }
        if phase == "input":
            event["layout"] = nonfinite_layout(tensor)
        self.first_event = event
        self.events.emit("nonfinite", **event)
        self._stop_later(self.step, self.plan.stop_after_nonfinite)

    @_quiet
    def _check(self, tensor: torch.Tensor, phase: str, what: str,
               **extra: Any) -> bool:
        if self._finite(tensor):
            return True
        if phase == "input" and is_mask_like(tensor):
            return True  # an additive attention mask: -inf on purpose
        self._nonfinite(phase, what, tensor, **extra)
        return False

    def _finite(self, tensor: torch.Tensor) -> bool:
        """`all_finite`, skipped for the tensor last found finite if nothing
        wrote to it since: a model's output, often the largest tensor of a
        step, is checked again as the prediction entering the loss."""
        seen, version = self._last_finite
        if seen is not None and seen() is tensor and tensor._version == version:
            return True
        if not all_finite(tensor):
            return False
        self._last_finite = (weakref.ref(tensor), tensor._version)
        return True

    # -- modules and losses -----------------------------------------------

    def optimizer_created(self, optimizer: torch.optim.Optimizer) -> None:
        self._optimizers.append(weakref.ref(optimizer))
        self._optimizer_sites[optimizer] = user_site(2)

    def scheduler_created(self, scheduler: Any) -> None:
        # Where a schedule that drives the rate too high can be fixed.
        self.events.emit("scheduler", type=type(scheduler).__name__,
                         site=user_site(2))

    def module_entered(self, module: torch.nn.Module) -> None:
        if self.checker is not None:
            self.checker.module_entered(module)

    def module_left(self, module: torch.nn.Module, output: Any) -> None:
        if self.checker is not None:
            self.checker.module_left(module)
        if self.step == 0 and not self._losses:
            self._record_init(module, output)
        elif self._sampled and isinstance(module, _SATURATING) and is_float(output):
            self._record_saturation(module, output)

    @_quiet
    def root_input(self, module: torch.nn.Module, args: tuple) -> Optional[tuple]:
        cls = type(module).__name__
        if is_loss_module(module):
            self._in_loss_module += 1
            if len(args) >= 2 and is_float(args[1]):
                self._check(args[1], "input", f"target of {cls}", module=cls)
            if args and is_float(args[0]):
                self._check(args[0], "forward", f"prediction entering {cls}",
                            module=cls)
            return None
        self._roots.add(module)
        for where, tensor in tensors_in(args):
            if self._sampled:
                self._inputs.append({"module": cls, "arg": where, **summary(tensor)})
            self._check(tensor, "input", f"input{where} of {cls}", module=cls)
        return self.change.root_input(module, args)

    @_quiet
    def root_output(self, module: torch.nn.Module, output: Any) -> None:
        cls = type(module).__name__
        if is_loss_module(module):
            self._in_loss_module = max(0, self._in_loss_module - 1)
            if is_float(output):
                self._check(output, "loss", f"output of {cls}", module=cls)
            return
        for where, tensor in tensors_in(output):
            self._check(tensor, "forward", f"output{where} of {cls}", module=cls)

    def loss_call(self, name: str, args: tuple, kwargs: dict,
                  call: Callable) -> Any:
        args, kwargs = self.change.loss_args(name, args, kwargs)
        if self._in_loss_module:
            output = call(*args, **kwargs)
        else:
            output = self._checked_loss(name, args, kwargs, call)
        if name in NONNEGATIVE_LOSSES and is_float(output):
            self._watch_likelihood(name, args, kwargs, output)
        return output

    def _checked_loss(self, name: str, args: tuple, kwargs: dict,
                      call: Callable) -> Any:
        fn = f"F.{name}"
        prediction = args[0] if args else kwargs.get("input")
        target = args[1] if len(args) > 1 else kwargs.get("target")
        if is_float(target):
            self._check(target, "input", f"target of {fn}", function=fn)
        if is_float(prediction):
            self._check(prediction, "forward", f"prediction entering {fn}",
                        function=fn)
        output = call(*args, **kwargs)
        if is_float(output):
            self._check(output, "loss", f"output of {fn}", function=fn)
        return output

    @_quiet
    def _watch_likelihood(self, name: str, args: tuple, kwargs: dict,
                          output: torch.Tensor) -> None:
        """A likelihood loss below zero means its input was not what it needs."""
        value = float(output.detach().float().sum())
        if value < 0 and self._negative_loss is None and math.isfinite(value):
            self._negative_loss = {"loss": value, "function": name,
                                   "site": user_site(3)}
        if name == "nll_loss" and self._sampled:
            prediction = args[0] if args else kwargs.get("input")
            if is_float(prediction) and prediction.numel():
                self._nll_input_max = float(prediction.detach().max())

    # -- backward and update ----------------------------------------------

    @_quiet
    def before_backward(self, loss: torch.Tensor) -> None:
        hand = self.primary() is None
        if hand and self._backwards:
            self._check_hand_params()
            self._finish_step()
        if self._backwards == 0 and self.step > 0:
            self._stale_grads = self._grads_left_over(hand)
        if hand and self._hand_params is None:
            self._hand_params = _graph_leaves(loss)
            self._initial_weights = self._weight_scales()
        self._backwards += 1
        if loss.is_floating_point():
            value = float(loss.detach().float().sum())
            self._losses.append(value)
            if not math.isfinite(value):
                self._nonfinite("loss", "the loss passed to backward()", loss)
        if self.checker is not None:
            self.checker.backward_begins(loss)

    @_quiet
    def after_backward(self) -> None:
        if self.checker is not None:
            self.checker.backward_ends()
        if self.primary() is None and self._hand_params:
            self._measure_grads(self._hand_params, lrs=[])
            self.change.hand_gradients(self._hand_params)

    def _grads_left_over(self, hand: bool) -> Optional[bool]:
        """True when .grad still holds the gradient of the previous step."""
        params = self._hand_params if hand else _params_of(self.primary())
        for p in params or ():
            if p.grad is not None:
                return bool(p.grad.detach().any())
        return False if params else None

    @_quiet
    def before_update(self, optimizer: torch.optim.Optimizer) -> None:
        if optimizer is not self.primary():
            return
        if self.step == 0 and not self._initial_weights:
            self._initial_weights = self._weight_scales()
        if self.checker is not None:
            self.checker.update_begins()
        self._measure_grads(_params_of(optimizer), lrs=None)
        self._skipped_by_change = self.change.before_update(optimizer, self.step)
        self._grad["lrs"] = [_rate(g.get("lr")) for g in optimizer.param_groups]
        self._update_ratio()

    @_quiet
    def after_update(self, optimizer: torch.optim.Optimizer) -> None:
        if optimizer is not self.primary():
            return
        self.change.after_update(optimizer)
        self._measure_params(_params_of(optimizer), "parameter {} after the update")
        if self.checker is not None:
            self.checker.update_ends()
        self._finish_step()

    def scaler_step(self, optimizer: torch.optim.Optimizer, call: Callable) -> Any:
        before = self._finishes
        result = call()
        if optimizer is self.primary() and self._finishes == before:
            # The scaler found inf/NaN in the scaled gradients and skipped the
            # update: expected under AMP, so a step but not an event.
            self._grad.setdefault("grad_norm", None)
            self._finish_step(skipped_by="scaler")
        return result

    def _measure_grads(self, params: list[torch.Tensor],
                       lrs: Optional[list]) -> None:
        with_grad = [p for p in params if p.grad is not None]
        if not with_grad:
            self._grad = {"grad_norm": None}
            return
        norms = _norms([p.grad for p in with_grad])
        total = math.sqrt(sum(n * n for n in norms))
        self._grad = {"grad_norm": total,
                      "top_grads": self._top_modules(with_grad, norms)}
        if lrs is not None:
            self._grad["lrs"] = lrs
        if not math.isfinite(total):
            i = next(i for i, n in enumerate(norms) if not math.isfinite(n))
            name = self._name(with_grad[i])
            self._nonfinite("backward", f"gradient of {name}", with_grad[i].grad,
                            parameter=name)

    def _measure_params(self, params: list[torch.Tensor], what: str) -> None:
        if not params:
            return
        norms = _norms(params)
        total = math.sqrt(sum(n * n for n in norms))
        self._last_param_norm = total
        if not math.isfinite(total):
            i = next(i for i, n in enumerate(norms) if not math.isfinite(n))
            name = self._name(params[i])
            optimizer = self.primary()
            group = _group_of(optimizer, params[i])
            self._nonfinite("optimizer", what.format(name), params[i],
                            parameter=name, group=group,
                            optimizer=self._describe_optimizer(optimizer, group))

    def _describe_optimizer(self, optimizer: Optional[torch.optim.Optimizer],
                            group: Optional[int]) -> Optional[dict]:
        if optimizer is None:
            return None
        settings = optimizer.param_groups[group] if group is not None else {}
        eps = settings.get("eps")
        return {"type": type(optimizer).__name__,
                "eps": eps if isinstance(eps, (int, float)) else None,
                "site": self._optimizer_sites.get(optimizer)}

    def _check_hand_params(self) -> None:
        if self._hand_params:
            self._measure_params(self._hand_params, "{} after the manual update")

    def _update_ratio(self) -> None:
        lrs = [lr for lr in self._grad.get("lrs", []) if isinstance(lr, (int, float))]
        norm, weights = self._grad.get("grad_norm"), self._last_param_norm
        if lrs and norm is not None and weights:
            # Estimated as lr * |g| / |w|: exact for SGD, a scale for the others.
            self._grad["update_ratio"] = max(lrs) * norm / weights

    # -- names and precursors ---------------------------------------------

    def _name(self, param: torch.Tensor) -> str:
        if id(param) not in self._names:
            roots = list(self._roots)
            for root in roots:
                prefix = f"{type(root).__name__}." if len(roots) > 1 else ""
                for name, p in root.named_parameters():
                    self._names.setdefault(id(p), prefix + name)
        return self._names.get(id(param), f"tensor{tuple(param.shape)}")

    def _module_name(self, param: torch.Tensor) -> str:
        """The module holding a parameter; kept once the parameter has a name,
        as this runs for every parameter on every step."""
        module = self._module_names.get(id(param))
        if module is None:
            module = self._name(param).rpartition(".")[0] or "(top level)"
            if id(param) in self._names:
                self._module_names[id(param)] = module
        return module

    def _top_modules(self, params: list[torch.Tensor], norms: list[float]) -> list:
        per_module: dict[str, float] = {}
        for p, n in zip(params, norms):
            module = self._module_name(p)
            per_module[module] = per_module.get(module, 0.0) + n * n
        ranked = sorted(per_module.items(), key=lambda kv: -_sortable(kv[1]))
        return [[m, math.sqrt(sq)] for m, sq in ranked[:_TOP_MODULES]]

    @_quiet
    def _record_init(self, module: torch.nn.Module, output: Any) -> None:
        if isinstance(output, tuple) and output:
            output = output[0]  # recurrent layers return (output, state)
        if not isinstance(module, _INIT_MODULES) or not is_float(output):
            return
        if len(self._init_records) >= _MAX_INIT_RECORDS:
            return
        weight = getattr(module, "weight", None)
        if weight is None and isinstance(module, torch.nn.RNNBase):
            weight = module.weight_ih_l0
        entry: dict[str, Any] = {"class": type(module).__name__,
                                 "out": summary(output)}
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
            entry["weight_std"] = float(weight.detach().float().std())
            entry["fan_in"] = int(weight[0].numel())
        self._init_modules[len(self._init_records)] = weakref.ref(module)
        self._init_records.append(entry)

    def _init_report(self) -> list[dict]:
        names = {}
        for root in list(self._roots):
            for name, m in root.named_modules():
                names.setdefault(id(m), name)
        for i, entry in enumerate(self._init_records):
            module = self._init_modules[i]()
            entry["module"] = names.get(id(module), entry["class"])
        return self._init_records

    def _weight_scales(self) -> list[dict]:
        """Standard deviation of each matrix against 1/sqrt(fan), at step 0."""
        scales = []
        params = _params_of(self.primary()) or self._hand_params or []
        # Embedding tables are drawn from N(0, 1) on purpose: not a bad init.
        tables = {id(m.weight) for root in list(self._roots)
                  for m in root.modules()
                  if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))}
        with torch.no_grad():
            for p in params[:_MAX_INIT_RECORDS]:
                if p.dim() < 2 or p.numel() < 16 or id(p) in tables:
                    continue
                fans = (p.shape[0], p[0].numel())
                scales.append({"name": self._name(p), "shape": list(p.shape),
                               "std": float(p.detach().float().std()),
                               "fans": list(fans)})
        return scales

    @_quiet
    def _record_saturation(self, module: torch.nn.Module,
                           output: torch.Tensor) -> None:
        with torch.no_grad():
            x = output.detach().float()
            if isinstance(module, torch.nn.Sigmoid):
                saturated = (x == 0) | (x == 1)
            else:
                saturated = x.abs() == 1
            self._activations.append({
                "class": type(module).__name__,
                "saturated": float(saturated.float().mean()),
            })


def _rate(lr: Any) -> Optional[float]:
    """A group's rate as a number (capturable and fused optimizers keep a tensor)."""
    if isinstance(lr, torch.Tensor):
        return float(lr)
    return lr if isinstance(lr, (int, float)) else None


def _params_of(optimizer: Optional[torch.optim.Optimizer]) -> list[torch.Tensor]:
    if optimizer is None:
        return []
    return [p for group in optimizer.param_groups for p in group["params"]]


def _group_of(optimizer: Optional[torch.optim.Optimizer],
              param: torch.Tensor) -> Optional[int]:
    for i, group in enumerate(optimizer.param_groups if optimizer else ()):
        if any(p is param for p in group["params"]):
            return i
    return None


def _norms(tensors: list[torch.Tensor]) -> list[float]:
    """L2 norms; non-finite only when the tensor itself is.

    One fused kernel for all norms and one sync to read them. The norm of
    finite values above ~1e19 overflows float32, so a non-finite norm is
    recomputed in float64 before it is believed.
    """
    # Under no_grad nothing is recorded, so no detach; stack promotes mixed
    # dtypes, so one cast of the stack equals a cast of each norm.
    with torch.no_grad():
        norms = torch._foreach_norm(tensors)
        values = torch.stack(norms).float().tolist()
        for i, value in enumerate(values):
            if not math.isfinite(value):
                values[i] = float(tensors[i].detach().double().norm())
        return values


def _sortable(value: float) -> float:
    return math.inf if math.isnan(value) else value


def _graph_leaves(loss: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors a loss depends on: the parameters of a hand-written model."""
    leaves, seen, stack = [], set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            leaves.append(variable)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return leaves
