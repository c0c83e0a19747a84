"""Where in the user's code something happened: the innermost frame of theirs."""
from __future__ import annotations

import functools
import os
import sys
import sysconfig
from typing import Optional

import torch

# The capture package's own frames wrap the script; the bundled examples in
# nandoctor/examples are user code like any other script.
_NOT_USER = tuple(
    os.path.normcase(os.path.dirname(os.path.abspath(p))) + os.sep
    for p in (torch.__file__, __file__)
) + (os.path.normcase(sysconfig.get_paths()["stdlib"]) + os.sep,)


# Cached: the replay asks for every call of its checked steps, and a script
# runs from a handful of files.
@functools.lru_cache(maxsize=4096)
def is_user_file(filename: str) -> bool:
    if filename.startswith("<"):
        return False
    return not os.path.normcase(os.path.abspath(filename)).startswith(_NOT_USER)


def user_site(skip: int = 1) -> Optional[dict]:
    """The innermost frame outside torch, nandoctor and the standard library.

    Walking frames costs microseconds, so callers do it only once something
    is known to be wrong (or, in the replay, for the one checked step).
    """
    frame = sys._getframe(skip)
    while frame is not None:
        code = frame.f_code
        if is_user_file(code.co_filename):
            return {
                "file": code.co_filename,
                "line": frame.f_lineno,
                "function": code.co_name,
            }
        frame = frame.f_back
    return None
