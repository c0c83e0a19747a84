"""The replay's op-level checks: the first op that produced a non-finite value.

Active only in the steps the plan names (and, when the bad step's data was
already non-finite, in the data preparation before it). Two modes and the
autograd nodes' hooks work together:

- a torch-function mode, above autograd, sees the calls the user wrote
  (`torch.log`, `Tensor.__truediv__`) and records their file:line on the
  autograd nodes they return;
- a dispatch mode, below autograd, sees every aten op of the forward pass
  (and of data preparation and the update, when those are in question) and
  tests each output with the cheap sum-based test;
- when backward begins, both modes step aside and every node of the graph
  is hooked instead, so a backward producer is known by its node *and* by
  the forward line that created it.

A producer is an op whose inputs were finite (or held only intentional -inf,
such as an attention mask) and whose output was not. In backward the node
hook decides: some formulas make 0/0 inside and mask it, so only a node whose
outgoing gradients are non-finite while its incoming ones were finite is
blamed, and named with the forward op it differentiates.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import torch
from torch.overrides import TorchFunctionMode
from torch.utils.data import dataloader
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

from ..opnames import forward_op_of
from ..plan import Plan
from .events import EventWriter
from .sites import user_site
from .tensors import all_finite, describe, nonfinite_layout, only_neg_inf

_SKIP_OPS = frozenset({"empty", "empty_like", "empty_strided", "detach",
                       "new_empty", "new_empty_strided", "_local_scalar_dense"})
_WHERE_OPS = frozenset({"where"})
# Ops that can make no non-finite value out of finite inputs, nor a NaN out
# of an infinity: their output is tested only when an input is already known
# to be non-finite (it may carry an intentional -inf along).
_CARRY_OPS = frozenset({
    "relu", "relu_", "threshold_backward", "max_pool2d_with_indices",
    "max_pool2d_with_indices_backward", "max_pool1d", "max_pool3d_with_indices",
    "clone", "cat", "stack", "index_select", "gather", "index",
    "constant_pad_nd", "abs", "neg", "clamp", "clamp_min", "clamp_max",
    "select_backward", "slice_backward", "hardtanh", "hardtanh_backward",
})
# An exp can return a finite value so large that the next square or product
# overflows (exp(60) ~ 1e26): then the op that overflows is only where it
# surfaced. The first such output of the checked step is kept as evidence.
_GROWTH_OPS = frozenset({"exp", "exp2", "expm1"})
_HUGE_OUTPUT = 1e15
_MAX_INPUTS = 4
# Indexing never makes a non-finite value, and a DataLoader over a
# TensorDataset indexes every tensor once per sample: more than half of a
# small model's calls. They bypass both modes (plain tensors only: a tensor
# subclass may need its own dispatch).
_NEVER_PRODUCE = frozenset({torch.Tensor.__getitem__})
_PLAIN_TYPES = frozenset({torch.Tensor, torch.nn.Parameter})


class _OpInfo(NamedTuple):
    """What the dispatch check needs to know of an op, worked out once."""

    name: str
    skip: bool
    carry: bool
    mutable: bool
    # The arguments an in-place or out= op overwrites: (position, name).
    written: tuple[tuple[int, str], ...]


_INFO: dict[Any, _OpInfo] = {}


def _op_info(func: Any) -> _OpInfo:
    """Works out and keeps an op's info; the hot path looks in _INFO first."""
    name = func.overloadpacket.__name__
    schema = func._schema
    info = _INFO[func] = _OpInfo(
        name=name, skip=name in _SKIP_OPS or func.is_view,
        carry=name in _CARRY_OPS, mutable=schema.is_mutable,
        written=tuple((i, arg.name) for i, arg in enumerate(schema.arguments)
                      if arg.alias_info is not None and arg.alias_info.is_write))
    return info


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in an op's arguments, in order. Arguments nest only as
    tuples, lists and dicts; pytree's generality costs several times more
    on this hot path."""
    found: list[torch.Tensor] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif isinstance(item, (tuple, list)):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
    return found


def _float_tensors(value: Any) -> list[torch.Tensor]:
    return [t for t in _tensors(value) if t.is_floating_point()]


def _written_tensors(info: _OpInfo, args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """The float tensors an in-place or out= op overwrites: only their state
    before the op is lost once it has run."""
    written: list[torch.Tensor] = []
    for position, name in info.written:
        value = args[position] if position < len(args) else kwargs.get(name)
        written += _float_tensors(value)
    return written


def _has_nan(t: torch.Tensor) -> bool:
    return bool(torch.isnan(t.detach()).any())


def _has_neg_inf_scalar(args: tuple, kwargs: dict) -> bool:
    flat = [*args, *kwargs.values()]
    while flat:
        value = flat.pop()
        if isinstance(value, (tuple, list)):
            flat.extend(value)
        elif isinstance(value, float) and value == -math.inf:
            return True
    return False


def _call_name(func: Any) -> str:
    name = getattr(func, "__name__", str(func))
    owner = getattr(func, "__module__", None) or ""
    qualname = getattr(func, "__qualname__", name)
    if owner.startswith("torch.nn.functional"):
        return f"F.{name}"
    if "." in qualname and qualname.split(".")[0] in ("Tensor", "TensorBase"):
        return f"Tensor.{name}"
    if owner.startswith("torch"):
        return f"torch.{name}"
    return qualname


def _module_path(root: torch.nn.Module, here: torch.nn.Module) -> str:
    if here is root:
        return type(root).__name__
    for name, module in root.named_modules():
        if module is here:
            # `net.2` says little on its own: `net.2 (Linear)` says which.
            if name.rpartition(".")[2].isdigit():
                return f"{name} ({type(here).__name__})"
            return name
    return type(here).__name__


class OpChecker:
    """State shared by the two modes; the watch drives it step by step."""

    def __init__(self, plan: Plan, events: EventWriter) -> None:
        self.plan = plan
        self.events = events
        self.checked = set(plan.check_steps)
        self.step = 0
        self.phase = "forward"
        self.busy = False
        self.found: dict[str, dict] = {}
        self._modules: list[torch.nn.Module] = []
        self._calls: list[Any] = []
        # The step's autograd nodes, held until the next step so that their
        # Python objects (and so their ids) stay the same.
        self._sites: dict[Any, dict] = {}
        self._graph: dict[int, tuple[Any, Optional[dict]]] = {}
        self._generation = 0
        self._intentional = WeakIdKeyDictionary()
        self._nonfinite = WeakIdKeyDictionary()
        self._function_mode = _CallSites(self)
        self._dispatch_mode = _OpCheck(self)
        self._function_pushed = False
        self._dispatch_pushed = False
        self._call_sites_paused = False
        self.enabled = False
        self._suspended = 0
        self._model_called = False
        self._loader_next: Optional[Any] = None
        # The pass that took the modes off the stack ("loader", "backward",
        # "update"): a backward inside an optimizer's step (an LBFGS
        # closure) must not put them back in the middle of the update.
        self._aside: Optional[str] = None

    # -- lifecycle driven by the watch ------------------------------------

    def install(self) -> None:
        if not self.plan.check_data:
            self._patch_loader()
        if self.plan.check_data or 0 in self.checked:
            self._enter()

    def remove(self) -> None:
        self._exit(final=True)
        if self._loader_next is not None:
            dataloader._BaseDataLoaderIter.__next__ = self._loader_next
            self._loader_next = None

    def _patch_loader(self) -> None:
        """A DataLoader's batches are fetched unchecked when the data is not
        in question: the watch found the bad step's batch finite. Indexing
        a dataset sample by sample is most of a small model's torch calls."""
        self._loader_next = fetch = dataloader._BaseDataLoaderIter.__next__
        checker = self

        def __next__(iterator: Any) -> Any:
            if not checker._step_aside("loader"):
                return fetch(iterator)
            try:
                batch = fetch(iterator)
                checker._note_loader_masks(batch)
            finally:
                checker._step_back()
            return batch

        dataloader._BaseDataLoaderIter.__next__ = __next__

    def _step_aside(self, by: str) -> bool:
        """The modes off the stack for work the checks need not see; only
        when they are on top of it, as another mode may be pushed above.
        Inside a call the function mode is handling (`loss.backward()`),
        torch has already taken that mode off: the dispatch mode goes."""
        if not self.enabled or not self._dispatch_pushed:
            return False
        dispatches = torch._C._len_torch_dispatch_stack()
        if (not dispatches or torch._C._get_dispatch_stack_at(dispatches - 1)
                is not self._dispatch_mode):
            return False
        if not self._function_mode.depth and not self._function_mode_on_top():
            return False
        self._exit()
        self._aside = by
        return True

    def _step_back(self) -> None:
        self._aside = None
        self._enter()

    def _function_mode_on_top(self) -> bool:
        functions = torch._C._len_torch_function_stack()
        return (self._function_pushed and functions > 0
                and torch._C._get_function_stack_at(functions - 1)
                is self._function_mode)

    def _note_loader_masks(self, batch: Any) -> None:
        """A batch's -inf-only tensors are attention masks made by the
        dataset: intentional, as if a checked op had made them. Called
        with the modes aside, so its own tests pass unchecked."""
        for t in _float_tensors(batch):
            if not all_finite(t) and only_neg_inf(t):
                self._intentional[t] = {"op": "DataLoader", "call": None,
                                        "site": user_site(3), "module": None}

    def step_begins(self, step: int) -> None:
        self.step, self.phase = step, "forward"
        self._sites.clear()
        self._graph.clear()
        self._generation += 1
        self._model_called = False
        if step in self.checked:
            self._suspended = 0
            self._enter()
        elif not self.plan.check_data or step > max(self.checked, default=-1):
            self._exit()

    def module_entered(self, module: torch.nn.Module) -> None:
        self._model_called = True
        self._modules.append(module)
        if len(self._modules) == 1:
            self._suspend_outside_checked()

    def module_left(self, module: torch.nn.Module) -> None:
        if self._modules:
            self._modules.pop()
        if not self._modules:
            self._resume_outside_checked()

    def backward_begins(self, loss: torch.Tensor) -> None:
        self.phase = "backward"
        if self.step in self.checked and self._active:
            self.hook_graph(loss)
            # The node hooks test every node's gradients: the ops inside a
            # node need no test of their own.
            if self._step_aside("backward"):
                return
        self._suspend_outside_checked()

    def backward_ends(self) -> None:
        self.phase = "forward"
        if self._aside == "backward":
            self._step_back()
            return
        self._resume_outside_checked()

    def update_begins(self) -> None:
        self.phase = "update"
        if not self.plan.check_update and self._step_aside("update"):
            return
        self._suspend_outside_checked()
        self._pause_call_sites()

    def update_ends(self) -> None:
        self.phase = "forward"
        if self._aside == "update":
            self._step_back()
            return
        self._resume_outside_checked()
        if self._call_sites_paused:
            self._call_sites_paused = False
            self._function_mode.__enter__()
            self._function_pushed = True

    def _pause_call_sites(self) -> None:
        """An optimizer's step makes many small calls, none of them the
        user's and none creating autograd nodes: the torch-function mode
        leaves the stack for it (when on top), the dispatch check stays."""
        if not self._function_mode.depth and self._function_mode_on_top():
            self._function_mode.__exit__(None, None, None)
            self._function_pushed = False
            self._call_sites_paused = True

    # Outside the checked steps only data preparation is checked: inside
    # modules, backward and updates the modes pass every op straight through.
    def _suspend_outside_checked(self) -> None:
        if self.step not in self.checked and self._active:
            self._suspended += 1
            self.enabled = False

    def _resume_outside_checked(self) -> None:
        if self._suspended:
            self._suspended -= 1
            self.enabled = not self._suspended

    def _enter(self) -> None:
        self.enabled = True
        if self._dispatch_pushed and self._function_pushed:
            return
        if not self._function_pushed:
            self._function_mode.__enter__()
            self._function_pushed = True
        self._dispatch_mode.__enter__()
        self._dispatch_pushed = True

    def _exit(self, final: bool = False) -> None:
        """Leave the modes; inside a torch-function handler the function mode
        is off the stack, so it stays pushed (passing calls through) until later."""
        self.enabled = False
        if self._dispatch_pushed:
            self._dispatch_mode.__exit__(None, None, None)
            self._dispatch_pushed = False
        if self._function_pushed and (final or not self._function_mode.depth):
            self._function_mode.__exit__(None, None, None)
            self._function_pushed = False

    @property
    def _active(self) -> bool:
        return self._dispatch_pushed

    @property
    def pass_name(self) -> str:
        # Ops before the model's first call in a step prepare its data.
        if self.step not in self.checked or not self._model_called:
            return "data" if self.phase == "forward" else self.phase
        return self.phase

    # -- what the modes report -------------------------------------------

    def current_call(self) -> Optional[str]:
        return _call_name(self._calls[-1]) if self._calls else None

    def module_path(self) -> Optional[str]:
        if not self._modules:
            return None
        return _module_path(self._modules[0], self._modules[-1])

    def record(self, key: str, **data: Any) -> None:
        if key in self.found:
            return
        data.setdefault("step", self.step)
        self.found[key] = data
        self.events.emit("producer", key=key, **data)

    def note_forward_call(self, func: Any, args: tuple, kwargs: dict,
                          output: Any) -> None:
        """Tag the autograd nodes a user's call returned with its file:line.
        Nodes made inside the call are tagged when backward begins."""
        site = None
        for tensor in _tensors(output):
            node = tensor.grad_fn
            if node is None or node in self._sites:
                continue
            if site is None:
                # Named only if its node is blamed: a module path walks the
                # whole model.
                site = {"func": func, "site": user_site(3),
                        "modules": (self._modules[0], self._modules[-1])
                        if self._modules else None,
                        "inputs": _float_tensors((args, kwargs))[:_MAX_INPUTS]}
            self._sites[node] = site

    def hook_graph(self, loss: torch.Tensor) -> None:
        """Hook every node of the graph about to run backward. A node no
        call returned was made inside the call that consumes it (the
        transpose inside a linear layer): it takes that call's site."""
        root = loss.grad_fn
        if root is None or id(root) in self._graph:
            return
        self._graph[id(root)] = (root, self._sites.get(root))
        stack = [root]
        while stack:
            node = stack.pop()
            site = self._graph[id(node)][1]
            if site is not None:
                site["pending"] = site.get("pending", 0) + 1
            node.register_hook(self._node_hook(id(node), self._generation))
            for child, _ in node.next_functions:
                if (child is None or id(child) in self._graph
                        or hasattr(child, "variable")):
                    continue
                self._graph[id(child)] = (child, self._sites.get(child, site))
                stack.append(child)

    def _node_hook(self, key: int, generation: int) -> Any:
        # The hook holds no node, site or tensor: a reference from a node's
        # hook back to its graph is a cycle that keeps every step's graph
        # alive until the garbage collector runs.
        def hook(grad_inputs: tuple, grad_outputs: tuple) -> None:
            if generation != self._generation:
                return
            node, site = self._graph[key]
            if "backward" not in self.found and not self.busy:
                self.busy = True
                try:
                    self._check_node(node, site or {}, grad_inputs, grad_outputs)
                finally:
                    self.busy = False
            if site is not None:
                _release_inputs(site)

        return hook

    def _check_node(self, node: Any, site: dict, grad_inputs: tuple,
                    grad_outputs: tuple) -> None:
        outgoing = [g for g in grad_inputs if isinstance(g, torch.Tensor)]
        incoming = [g for g in grad_outputs if isinstance(g, torch.Tensor)]
        if all(all_finite(g) for g in outgoing):
            return
        if not all(all_finite(g) for g in incoming):
            return  # carried in from a later node, not made here
        inputs = site.get("inputs", [])
        if not all(all_finite(t) for t in inputs):
            return  # its forward already saw non-finite values
        where = site.get("site") or {}
        self.record(
            "backward", **{"pass": "backward"},
            node=node.name(),
            op=f"aten.{forward_op_of(node.name())}",
            call=_call_name(site["func"]) if site else None,
            module=_module_path(*site["modules"]) if site.get("modules") else None,
            forward_file=where.get("file"), forward_line=where.get("line"),
            forward_inputs=[describe(t) for t in inputs],
            grad_in=[describe(g) for g in incoming[:_MAX_INPUTS]],
            grad_out=[describe(g) for g in outgoing[:_MAX_INPUTS]],
        )

    def carries_nonfinite(self, args: tuple, kwargs: dict) -> bool:
        return any(t in self._nonfinite for t in _float_tensors((args, kwargs)))

    def inspect(self, info: _OpInfo, args: tuple, kwargs: dict, output: Any,
                before: Optional[dict[int, bool]]) -> None:
        name = info.name
        outputs = _float_tensors(output) or (
            _float_tensors(args[0]) if info.mutable and args else [])
        bad = [t for t in outputs if not all_finite(t)]
        for t in bad:
            self._nonfinite[t] = True
        if not bad:
            if name in _WHERE_OPS and self.pass_name in ("forward", "data"):
                self._note_masking(args, kwargs)
            elif name in _GROWTH_OPS and self.pass_name in ("forward", "data"):
                self._note_growth(f"aten.{name}", args, kwargs, outputs)
            return
        inputs = _float_tensors((args, kwargs))
        op = f"aten.{name}"
        if self.pass_name == "backward":
            return  # backward is judged node by node, by the hooks
        before = before or {}
        finite_in = [before[id(t)] if id(t) in before else all_finite(t)
                     for t in inputs]
        if _has_neg_inf_scalar(args, kwargs) or (
                not inputs and all(only_neg_inf(t) for t in bad)):
            for t in bad:
                self._intentional[t] = self._here(op)
            return
        suspects = [t for t, ok in zip(inputs, finite_in) if not ok]
        intentional = [self._intentional.get(t) for t in suspects]
        if suspects and all(intentional):
            if all(only_neg_inf(t) for t in bad):
                for t in bad:
                    self._intentional[t] = intentional[0]
                return
            self._record_producer(self.pass_name, op, args, kwargs, bad,
                                  intentional[0], before)
        elif not suspects:
            self._record_producer(self.pass_name, op, args, kwargs, bad,
                                  None, before)
        elif self.pass_name == "data" and "data" not in self.found:
            # No torch op made these values: they came in from outside
            # (numpy, a file) and this is the first op that saw them.
            self._record_producer("entered", op, args, kwargs, bad, None, before)
        elif self.pass_name in ("forward", "data"):
            self._maybe_first_nan(op, inputs, bad)

    def _here(self, op: str) -> dict:
        return {"op": op, "call": self.current_call(), "site": user_site(4),
                "module": self.module_path()}

    def _record_producer(self, pass_name: str, op: str, args: tuple,
                         kwargs: dict, bad: list, intentional: Optional[dict],
                         written: dict[int, bool]) -> None:
        where = self._here(op)
        operands = _tensors((args, kwargs))[:_MAX_INPUTS]
        data = {"pass": pass_name, **where,
                "inputs": [_operand(t, written) for t in operands],
                "output": describe(bad[0])}
        if intentional:
            data["masked_from"] = intentional
        if pass_name in ("data", "entered"):
            data["layout"] = nonfinite_layout(bad[0])
        key = "data" if pass_name in ("data", "entered") else pass_name
        self.record(key, **data)
        if data["output"].get("nan"):
            self.record(f"{key}_nan", **data)

    def _maybe_first_nan(self, op: str, inputs: list, bad: list) -> None:
        """Where an inf first became a NaN (inf - inf, 0 * inf, inf / inf)."""
        key = f"{self.pass_name}_nan"
        if key in self.found or not any(_has_nan(t) for t in bad):
            return
        if any(_has_nan(t) for t in inputs):
            return
        self.record(key, **{"pass": self.pass_name}, **self._here(op),
                    inputs=[describe(t) for t in inputs[:_MAX_INPUTS]],
                    output=describe(bad[0]))

    def _note_growth(self, op: str, args: tuple, kwargs: dict,
                     outputs: list) -> None:
        if "huge_exp" in self.found or not outputs:
            return
        if float(outputs[0].detach().abs().amax()) < _HUGE_OUTPUT:
            return
        self.record("huge_exp", **{"pass": self.pass_name}, **self._here(op),
                    inputs=[describe(t) for t in _tensors((args, kwargs))[:1]],
                    output=describe(outputs[0]))

    def _note_masking(self, args: tuple, kwargs: dict) -> None:
        inputs = _float_tensors((args, kwargs))
        hidden = [t for t in inputs if not all_finite(t)
                  and t not in self._intentional]
        if hidden:
            self.record("masked", **{"pass": "forward"}, **self._here("aten.where"),
                        hidden=[describe(t) for t in hidden[:2]])


def _operand(t: torch.Tensor, written: dict[int, bool]) -> dict:
    """An operand's statistics. One the op wrote in place can only be read
    after it (a copy of every in-place operand would cost each checked op):
    it is marked so, with whether it was finite before."""
    stats = describe(t)
    if id(t) in written:
        stats.update(written=True, finite_before=written[id(t)])
    return stats


def _release_inputs(site: dict) -> None:
    """Once every node of a call has run backward, its forward inputs go as
    autograd lets them go: held to the step's end, they kept backward from
    reusing their memory and made it a third slower."""
    site["pending"] -= 1
    if not site["pending"]:
        site["inputs"] = []


class _CallSites(TorchFunctionMode):
    def __init__(self, checker: OpChecker) -> None:
        super().__init__()
        self.checker = checker
        self.depth = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: Optional[dict] = None) -> Any:
        kwargs = kwargs or {}
        checker = self.checker
        if checker.busy or not checker.enabled:
            return func(*args, **kwargs)
        if func in _NEVER_PRODUCE and type(args[0]) in _PLAIN_TYPES:
            with torch._C._DisableTorchDispatch():
                return func(*args, **kwargs)
        checker._calls.append(func)  # named only when something is reported
        self.depth += 1
        try:
            output = func(*args, **kwargs)
        finally:
            self.depth -= 1
            checker._calls.pop()
        if checker.pass_name == "forward":
            checker.busy = True
            try:
                checker.note_forward_call(func, args, kwargs, output)
            finally:
                checker.busy = False
        return output


class _OpCheck(TorchDispatchMode):
    def __init__(self, checker: OpChecker) -> None:
        super().__init__()
        self.checker = checker

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: Optional[dict] = None) -> Any:
        kwargs = kwargs or {}
        checker = self.checker
        info = _INFO.get(func) or _op_info(func)
        if checker.busy or not checker.enabled or info.skip:
            return func(*args, **kwargs)
        # Data preparation keeps every test: the first op to touch values
        # that came from outside torch is where they are reported entering.
        if (info.carry and checker.pass_name != "data"
                and not checker.carries_nonfinite(args, kwargs)):
            return func(*args, **kwargs)
        before = None
        if info.mutable:
            # In-place ops overwrite their inputs: test those before the op.
            checker.busy = True
            try:
                before = {id(t): all_finite(t)
                          for t in _written_tensors(info, args, kwargs)}
            finally:
                checker.busy = False
        output = func(*args, **kwargs)
        checker.busy = True
        try:
            checker.inspect(info, args, kwargs, output, before)
        finally:
            checker.busy = False
        return output
