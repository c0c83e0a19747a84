"""Errors that end a command with a one-paragraph message and an exit code."""
from __future__ import annotations

from .exitcodes import ExitCode


class NandoctorError(Exception):
    """A problem to tell the user about: what, where, and the next step."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
