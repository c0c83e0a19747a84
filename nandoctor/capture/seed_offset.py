"""Shifts every seed the script sets by a fixed offset, for the sweep's repeats.

A repeat must start from another initialisation and see its data in another
order, yet run the script unmodified: each seeding function the script can
call gets `offset` added to an integer seed. `None` (fresh entropy) and
non-integer seeds pass unchanged. Everything patched is put back by `remove`.
"""
from __future__ import annotations

import functools
import random
from typing import Any, Callable

import torch

_NUMPY_SEED_MODULUS = 2**32


class SeedOffset:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self._patches: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        if self.offset == 0:
            return
        # torch.manual_seed is torch.random.manual_seed; both names are patched
        # since a script may have imported either.
        self._wrap(torch, "manual_seed", self._shifted("seed"))
        self._wrap(torch.random, "manual_seed", self._shifted("seed"))
        self._wrap(random, "seed", self._shifted("a"))
        try:
            import numpy
        except ImportError:
            return
        modulus = _NUMPY_SEED_MODULUS
        self._wrap(numpy.random, "seed", self._shifted("seed", modulus))
        self._wrap(numpy.random, "default_rng", self._shifted("seed", modulus))
        numpy.random.RandomState = self._random_state(numpy.random.RandomState)

    def remove(self) -> None:
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()

    def shift(self, seed: Any, modulus: int = 0) -> Any:
        if not isinstance(seed, int) or isinstance(seed, bool):
            return seed
        seed += self.offset
        return seed % modulus if modulus else seed

    def _shifted(self, keyword: str,
                 modulus: int = 0) -> Callable[[Callable], Callable]:
        """A wrapper shifting the seed, passed first or as `keyword`."""
        def wrap(original: Callable) -> Callable:
            @functools.wraps(original)
            def seeded(*args: Any, **kwargs: Any) -> Any:
                if args:
                    args = (self.shift(args[0], modulus), *args[1:])
                elif keyword in kwargs:
                    kwargs[keyword] = self.shift(kwargs[keyword], modulus)
                return original(*args, **kwargs)

            return seeded

        return wrap

    def _wrap(self, owner: Any, name: str,
              wrap: Callable[[Callable], Callable]) -> None:
        original = getattr(owner, name)
        self._patches.append((owner, name, original))
        setattr(owner, name, wrap(original))

    def _random_state(self, original: type) -> type:
        """A subclass, not a function: `isinstance(x, RandomState)` keeps working
        for the states the script creates."""
        import numpy

        shift = self.shift

        class RandomState(original):  # type: ignore[misc, valid-type]
            def __init__(self, seed: Any = None) -> None:
                super().__init__(shift(seed, _NUMPY_SEED_MODULUS))

        self._patches.append((numpy.random, "RandomState", original))
        return RandomState
