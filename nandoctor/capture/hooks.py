"""The instrumentation installed from outside the script, and its removal.

Everything patched or registered here is undone by `Hooks.remove`, which the
child calls in `finally`. The callbacks go to one `Observer` (the watch).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Protocol

import torch
import torch.nn.functional as F
from torch.nn.modules import module as module_hooks
from torch.optim import optimizer as optimizer_hooks

# Functional losses whose (input, target) the watch inspects; loss modules
# call these too.
LOSS_FUNCTIONS = (
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "gaussian_nll_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "poisson_nll_loss",
    "smooth_l1_loss",
)


class Observer(Protocol):
    def optimizer_created(self, optimizer: torch.optim.Optimizer) -> None: ...
    def scheduler_created(self, scheduler: Any) -> None: ...
    def root_input(self, module: torch.nn.Module, args: tuple) -> Optional[tuple]: ...
    def root_output(self, module: torch.nn.Module, output: Any) -> None: ...
    def module_entered(self, module: torch.nn.Module) -> None: ...
    def module_left(self, module: torch.nn.Module, output: Any) -> None: ...
    def loss_call(self, name: str, args: tuple, kwargs: dict,
                  call: Callable) -> Any: ...
    def before_backward(self, loss: torch.Tensor) -> None: ...
    def after_backward(self) -> None: ...
    def before_update(self, optimizer: torch.optim.Optimizer) -> None: ...
    def after_update(self, optimizer: torch.optim.Optimizer) -> None: ...
    def scaler_step(self, optimizer: torch.optim.Optimizer, call: Callable) -> Any: ...


class Hooks:
    """Installs global hooks and patches; `remove` restores every one of them."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.depth = 0
        self.scaled: dict[int, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._patches: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        obs = self.observer
        self._handles += [
            module_hooks.register_module_forward_pre_hook(self._pre_forward),
            module_hooks.register_module_forward_hook(
                self._post_forward, always_call=True
            ),
            optimizer_hooks.register_optimizer_step_pre_hook(
                lambda opt, args, kwargs: obs.before_update(opt)
            ),
            optimizer_hooks.register_optimizer_step_post_hook(
                lambda opt, args, kwargs: obs.after_update(opt)
            ),
        ]
        self._announce_creation(torch.optim.Optimizer,
                                self.observer.optimizer_created)
        self._announce_creation(
            getattr(torch.optim.lr_scheduler, "LRScheduler", None)
            or torch.optim.lr_scheduler._LRScheduler,
            self.observer.scheduler_created)
        self._patch_backward()
        self._patch_losses()
        self._patch_grad_scaler()

    def remove(self) -> None:
        for handle in reversed(self._handles):
            handle.remove()
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._handles.clear()
        self._patches.clear()

    def _patch(self, owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        self._patches.append((owner, name, original))
        setattr(owner, name, wrap(original))

    def _pre_forward(self, module: torch.nn.Module, args: tuple) -> Optional[tuple]:
        # Inside a torch.compile trace the tensors are fake and the watch's
        # bookkeeping would be traced into the graph (and broke it): the
        # compiled module is watched from outside, as one root module.
        if torch.compiler.is_compiling():
            return None
        self.depth += 1
        self.observer.module_entered(module)
        if self.depth == 1:
            return self.observer.root_input(module, args)
        return None

    def _post_forward(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        if torch.compiler.is_compiling():
            return
        self.depth = max(0, self.depth - 1)
        self.observer.module_left(module, output)
        if self.depth == 0:
            self.observer.root_output(module, output)

    def _announce_creation(self, base: type, created: Callable[[Any], None]) -> None:
        """Tell the observer of every instance of `base` (and its subclasses,
        whose constructors call it) once it is built."""

        def wrap(original: Callable) -> Callable:
            @functools.wraps(original)
            def __init__(obj: Any, *args: Any, **kwargs: Any) -> None:
                original(obj, *args, **kwargs)
                created(obj)

            return __init__

        self._patch(base, "__init__", wrap)

    def _patch_backward(self) -> None:
        obs, scaled = self.observer, self.scaled

        def wrap(original: Callable) -> Callable:
            @functools.wraps(original)
            def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
                if isinstance(tensors, torch.Tensor):
                    obs.before_backward(scaled.pop(id(tensors), tensors))
                result = original(tensors, *args, **kwargs)
                obs.after_backward()
                return result

            return backward

        self._patch(torch.autograd, "backward", wrap)

    def _patch_losses(self) -> None:
        obs = self.observer
        for name in LOSS_FUNCTIONS:

            def wrap(original: Callable, name: str = name) -> Callable:
                @functools.wraps(original)
                def loss(*args: Any, **kwargs: Any) -> Any:
                    if torch.compiler.is_compiling():
                        return original(*args, **kwargs)
                    return obs.loss_call(name, args, kwargs, original)

                return loss

            self._patch(F, name, wrap)

    def _patch_grad_scaler(self) -> None:
        obs, scaled = self.observer, self.scaled
        scaler_cls = torch.amp.GradScaler

        def wrap_scale(original: Callable) -> Callable:
            @functools.wraps(original)
            def scale(scaler: Any, outputs: Any) -> Any:
                result = original(scaler, outputs)
                if isinstance(outputs, torch.Tensor):
                    # Remember the unscaled loss so the watch records the real value.
                    scaled.clear()
                    scaled[id(result)] = outputs
                return result

            return scale

        def wrap_step(original: Callable) -> Callable:
            @functools.wraps(original)
            def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
                return obs.scaler_step(
                    optimizer, lambda: original(scaler, optimizer, *args, **kwargs)
                )

            return step

        self._patch(scaler_cls, "scale", wrap_scale)
        self._patch(scaler_cls, "step", wrap_step)

