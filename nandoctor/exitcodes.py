"""Exit codes, one set for every command; CI reads them, the README lists them."""
from enum import IntEnum


class ExitCode(IntEnum):
    HEALTHY = 0
    DIVERGED = 1  # or a finding at or above the failing severity
    USAGE = 2  # bad arguments or config; a script that cannot start or never steps
    SCRIPT_CRASHED = 3  # the user's script raised on its own
    INTERNAL = 4  # a bug in nandoctor
    INTERRUPTED = 130
