"""Strict JSON for evidence full of non-finite numbers. No imports beyond the
standard library: the child process uses it too."""
from __future__ import annotations

import math
from typing import Any


def jsonable(value: Any) -> Any:
    """Non-finite floats as the strings "nan", "inf", "-inf", which JSON can
    carry (json would write the non-standard NaN literal); keys as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
