"""Events from the child to the parent: one JSON object a line, in a file."""
from __future__ import annotations

import json
import math
import time
from typing import Any, TextIO

FLUSH_SECONDS = 0.25


def _jsonable(value: Any) -> Any:
    # Non-finite floats are the point of this tool: keep them, as strings JSON
    # can carry, rather than letting json write the non-standard NaN literal.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class EventWriter:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._last_flush = time.monotonic()

    def emit(self, event: str, **data: Any) -> None:
        data["event"] = event
        self._stream.write(json.dumps(_jsonable(data)) + "\n")
        now = time.monotonic()
        if now - self._last_flush > FLUSH_SECONDS or event != "step":
            self._stream.flush()
            self._last_flush = now

    def close(self) -> None:
        self._stream.flush()
        self._stream.close()
