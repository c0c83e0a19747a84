"""Events from the child to the parent: one JSON object a line, in a file."""
from __future__ import annotations

import json
from typing import Any, TextIO

from ..jsonsafe import jsonable


class EventWriter:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def emit(self, event: str, **data: Any) -> None:
        data["event"] = event
        self._stream.write(json.dumps(jsonable(data)) + "\n")
        # Flushed at once (~4 us): a child the OS kills (OOM) or a script that
        # calls os._exit must not take its last steps' evidence with it.
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
        self._stream.close()
