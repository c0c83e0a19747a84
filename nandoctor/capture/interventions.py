"""Counterfactual changes applied from outside the script, one per probe.

Each is a `Change` the watch calls at fixed points: before and after the
update, at a root module's input, at a loss's arguments. What a change alters
it puts back (learning rates after the step, patched functions at the end),
so the script's own schedulers and state keep working.
"""
from __future__ import annotations

import functools
from typing import Any, Optional

import torch
from torch.overrides import TorchFunctionMode

from ..plan import ZERO_EDGE_OPS, Probe
from .sites import user_site
from .tensors import all_finite, is_float
from .watch import Change

# exp overflows float32 above ~88.7 and float16 above ~11.1.
_EXP_LIMIT = {torch.float16: 10.0, torch.bfloat16: 80.0}
_DEFAULT_EXP_LIMIT = 80.0


class ProbeChange(Change):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self._saved_lrs: list[Any] = []
        self._bad_rows: Optional[torch.Tensor] = None
        self._restore: list[tuple[Any, str, Any]] = []
        self._guard: Optional[_Guard] = None
        self._doubled: set[int] = set()

    def install(self) -> None:
        probe = self.probe
        if probe.float64 or probe.no_autocast:
            self._disable_autocast()
        if probe.guard_op:
            self._guard = _Guard(probe)
            self._guard.__enter__()

    def remove(self) -> None:
        if self._guard is not None:
            self._guard.__exit__(None, None, None)
        for owner, name, original in reversed(self._restore):
            if name == "set_default_dtype":
                torch.set_default_dtype(original)
            else:
                setattr(owner, name, original)

    def _disable_autocast(self) -> None:
        original = torch.autocast.__init__

        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            kwargs["enabled"] = False
            original(self, *args, **kwargs)

        self._restore.append((torch.autocast, "__init__", original))
        torch.autocast.__init__ = __init__

    # -- inputs and losses -------------------------------------------------

    def root_input(self, module: torch.nn.Module, args: tuple) -> Optional[tuple]:
        if self.probe.float64:
            if id(module) not in self._doubled:
                self._to_float64(module)
            args = tuple(a.double() if is_float(a) else a for a in args)
        if self.probe.drop_nonfinite_samples:
            args = self._clean_inputs(args)
        return args

    def _to_float64(self, module: torch.nn.Module) -> None:
        """Double a model when it first runs, not from the start: initialised
        in float64 it would draw other weights, and the probe would differ
        from the baseline in more than precision. Tensors made from then on
        (hidden states, noise) are float64 too."""
        if not self._doubled:
            self._restore.append((torch, "set_default_dtype",
                                  torch.get_default_dtype()))
            torch.set_default_dtype(torch.float64)
        module.double()
        self._doubled.add(id(module))

    def _clean_inputs(self, args: tuple) -> tuple:
        """Zero the non-finite samples and remember them for the loss."""
        rows = None
        cleaned = []
        for a in args:
            if is_float(a) and a.dim() >= 1 and not all_finite(a):
                bad = ~torch.isfinite(a.detach()).reshape(a.shape[0], -1).all(1)
                rows = bad if rows is None else rows | bad
                a = torch.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
            cleaned.append(a)
        self._bad_rows = rows
        return tuple(cleaned)

    def loss_args(self, name: str, args: tuple, kwargs: dict) -> tuple:
        if self.probe.float64:
            args = tuple(a.double() if is_float(a) else a for a in args)
        if self.probe.drop_nonfinite_samples and len(args) >= 2:
            args = self._drop_rows(args)
        return args, kwargs

    def _drop_rows(self, args: tuple) -> tuple:
        prediction, target, *rest = args
        if not isinstance(target, torch.Tensor) or not isinstance(
                prediction, torch.Tensor) or prediction.dim() == 0:
            return args
        n = prediction.shape[0]
        if target.dim() == 0 or target.shape[0] != n:
            return args
        keep = torch.ones(n, dtype=torch.bool)
        if is_float(target):
            keep &= torch.isfinite(target.detach()).reshape(n, -1).all(1)
        if self._bad_rows is not None and self._bad_rows.shape[0] == n:
            keep &= ~self._bad_rows
        if bool(keep.all()) or not bool(keep.any()):
            return args
        return (prediction[keep], target[keep], *rest)

    # -- the update ----------------------------------------------------------

    def before_update(self, optimizer: torch.optim.Optimizer, step: int) -> bool:
        probe = self.probe
        params = [p for g in optimizer.param_groups for p in g["params"]
                  if p.grad is not None]
        if probe.skip_nonfinite_steps and not all(all_finite(p.grad) for p in params):
            # Optimizers leave parameters without a gradient alone: the
            # same as skipping this batch.
            for p in params:
                p.grad = None
            return True
        if probe.clip_norm is not None and params:
            torch.nn.utils.clip_grad_norm_(params, probe.clip_norm)
        if probe.lr_factor != 1.0:
            self._saved_lrs = [g["lr"] for g in optimizer.param_groups]
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * probe.lr_factor
        return False

    def hand_gradients(self, params: list[torch.Tensor]) -> None:
        # A hand-written update is p -= lr * grad: scaling the gradient is
        # scaling the rate, and clipping works the same as with an optimizer.
        grads = [p.grad for p in params if p.grad is not None]
        if self.probe.clip_norm is not None and grads:
            torch.nn.utils.clip_grad_norm_(
                [p for p in params if p.grad is not None], self.probe.clip_norm)
        if self.probe.lr_factor != 1.0:
            with torch.no_grad():
                torch._foreach_mul_(grads, self.probe.lr_factor)

    def after_update(self, optimizer: torch.optim.Optimizer) -> None:
        # Put the script's (or its scheduler's) rate back.
        for group, lr in zip(optimizer.param_groups, self._saved_lrs):
            group["lr"] = lr
        self._saved_lrs = []


def probe_change(probe: Probe) -> ProbeChange:
    return ProbeChange(probe)


# The torch calls that reach each guardable aten op.
_CALLS = {
    "div": {"div", "true_divide", "__truediv__", "__itruediv__", "div_"},
    "pow": {"pow", "__pow__", "__ipow__", "pow_", "float_power"},
    "reciprocal": {"reciprocal", "reciprocal_", "__rtruediv__"},
}


class _Guard(TorchFunctionMode):
    """An epsilon guard on one op at one line of the user's code (and on
    the other ops there that break at zero, when it is one of them).

    It acts above autograd, on the call the user wrote, so the clamp is part
    of the graph and the backward pass sees the guarded value too.
    """

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        flagged = probe.guard_op.removeprefix("aten.")
        ops = [flagged, *(ZERO_EDGE_OPS - {flagged}
                          if flagged in ZERO_EDGE_OPS else ())]
        # The torch call's name -> the op it reaches; the flagged op's first.
        self.op_of: dict[str, str] = {}
        for op in ops:
            for name in _CALLS.get(op, {op, f"{op}_"}):
                self.op_of.setdefault(name, op)
        self.file = probe.guard_file
        self.line = probe.guard_line
        self.eps = probe.guard_eps

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: Optional[dict] = None) -> Any:
        kwargs = kwargs or {}
        op = self.op_of.get(getattr(func, "__name__", None))
        if op is not None and self._at_line():
            args = self._guarded(op, func.__name__, args)
        return func(*args, **kwargs)

    def _at_line(self) -> bool:
        site = user_site(3)
        return bool(site) and site["line"] == self.line and (
            self.file is None or site["file"] == self.file)

    def _guarded(self, op: str, name: str, args: tuple) -> tuple:
        if not args or not is_float(args[0]) and name != "__rtruediv__":
            return args
        eps = self.eps
        if name == "__rtruediv__":
            return (_away_from_zero(args[0], eps), *args[1:])
        x = args[0]
        if op in ("log", "log2", "log10", "sqrt", "rsqrt", "pow"):
            return (x.clamp_min(eps), *args[1:])
        if op == "log1p":
            return (x.clamp_min(-1 + eps), *args[1:])
        if op in ("acos", "asin", "atanh"):
            return (x.clamp(-1 + eps, 1 - eps), *args[1:])
        if op == "exp":
            return (x.clamp_max(_EXP_LIMIT.get(x.dtype, _DEFAULT_EXP_LIMIT)),
                    *args[1:])
        if op == "div" and len(args) >= 2 and is_float(args[1]):
            return (x, _away_from_zero(args[1], eps), *args[2:])
        if op == "reciprocal":
            return (_away_from_zero(x, eps), *args[1:])
        return args


def _away_from_zero(d: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.where(d.abs() < eps, torch.full_like(d, eps), d)
