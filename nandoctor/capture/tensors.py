"""Finiteness tests and statistics of tensors, cheap first and exact on failure."""
from __future__ import annotations

import math
from typing import Any, Optional

import torch

FP16_MAX = float(torch.finfo(torch.float16).max)
TINY = 1e-30
_HALF_TYPES = (torch.float16, torch.bfloat16)


def is_float(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def all_finite(t: torch.Tensor) -> bool:
    """True when every element is finite.

    A sum is finite iff every element is, unless the sum itself overflows, so
    the slow `isfinite` only runs to confirm a failure.
    """
    if not t.is_floating_point() or t.numel() == 0:
        return True
    # A detached tensor records no graph: no need for a no_grad block, which
    # costs as much as the sum of a small tensor on this hot path.
    d = t.detach()
    total = d.sum(dtype=torch.float32 if d.dtype in _HALF_TYPES else None)
    if math.isfinite(total.item()):
        return True
    return bool(torch.isfinite(d).all())


def is_mask_like(t: torch.Tensor) -> bool:
    """An additive mask: no NaN, no +inf, and every finite entry is 0."""
    with torch.no_grad():
        d = t.detach()
        if torch.isnan(d).any() or torch.isposinf(d).any():
            return False
        finite = d[torch.isfinite(d)]
        return bool((finite == 0).all())


def only_neg_inf(t: torch.Tensor) -> bool:
    with torch.no_grad():
        d = t.detach()
        return not bool(torch.isnan(d).any() or torch.isposinf(d).any())


def describe(t: torch.Tensor) -> dict[str, Any]:
    """Statistics that tell log(0) from exp overflow from a zero divisor."""
    with torch.no_grad():
        d = t.detach()
        info: dict[str, Any] = {
            "shape": list(d.shape),
            "dtype": str(d.dtype).replace("torch.", ""),
            "numel": d.numel(),
        }
        if d.numel() == 0 or d.is_complex():
            return info
        if not d.is_floating_point():
            if d.dtype == torch.bool:
                d = d.to(torch.uint8)
            info.update(min=_num(d.min()), max=_num(d.max()))
            return info
        x = d.double() if d.dtype != torch.float64 else d
        finite = torch.isfinite(x)
        vals = x[finite]
        info.update(
            nan=int(torch.isnan(x).sum()),
            posinf=int(torch.isposinf(x).sum()),
            neginf=int(torch.isneginf(x).sum()),
            zeros=int((x == 0).sum()),
            negatives=int((x < 0).sum()),
            tiny=int(((vals != 0) & (vals.abs() < TINY)).sum()),
            beyond_fp16=int((vals.abs() > FP16_MAX).sum()),
        )
        if vals.numel():
            info.update(
                min=_num(vals.min()),
                max=_num(vals.max()),
                absmax=_num(vals.abs().max()),
                mean=_num(vals.mean()),
                std=_num(vals.std()) if vals.numel() > 1 else 0.0,
            )
        return info


def summary(t: torch.Tensor) -> dict[str, Any]:
    """The few numbers the watch pass keeps for a tensor entering a module."""
    with torch.no_grad():
        x = t.detach().float()
        info = {"shape": list(x.shape), "dtype": str(t.dtype).replace("torch.", "")}
        if x.numel():
            info.update(
                absmax=_num(x.abs().max()),
                mean=_num(x.mean()),
                std=_num(x.std()) if x.numel() > 1 else 0.0,
            )
        return info


def nonfinite_layout(t: torch.Tensor, limit: int = 20) -> dict[str, Any]:
    """Which samples (dim 0) and features (dim 1) hold non-finite values."""
    with torch.no_grad():
        bad = ~torch.isfinite(t.detach())
        layout: dict[str, Any] = {"count": int(bad.sum()), "numel": bad.numel()}
        if bad.dim() >= 1:
            rows = bad.reshape(bad.shape[0], -1).any(1).nonzero().flatten()
            layout["samples"] = rows[:limit].tolist()
            layout["n_samples"] = int(rows.numel())
        if bad.dim() >= 2:
            cols = bad.transpose(0, 1).reshape(bad.shape[1], -1).any(1)
            cols = cols.nonzero().flatten()
            layout["features"] = cols[:limit].tolist()
            layout["n_features"] = int(cols.numel())
        return layout


def _num(t: torch.Tensor) -> Optional[float]:
    value = float(t.item())
    return value if math.isfinite(value) else None
