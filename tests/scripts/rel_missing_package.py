"""Imports a package that is not installed."""
import torch
import rel_no_such_package_anywhere  # noqa: F401
