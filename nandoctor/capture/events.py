"""Events from the child to the parent: one JSON object a line, in a file."""
from __future__ import annotations

import json
import math
from typing import Any, TextIO


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

    def emit(self, event: str, **data: Any) -> None:
        data["event"] = event
        self._stream.write(json.dumps(_jsonable(data)) + "\n")
        # Flushed at once (~4 us): a child the OS kills (OOM) or a script that
        # calls os._exit must not take its last steps' evidence with it.
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
        self._stream.close()
