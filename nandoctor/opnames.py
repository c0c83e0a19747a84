"""What an autograd node's name says of the forward op it differentiates."""
from __future__ import annotations

import re

_NODE_SUFFIX = re.compile(r"Backward\d*$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def forward_op_of(node: str) -> str:
    """`SqrtBackward0` -> `sqrt`, `LinalgVectorNormBackward0` -> `linalg_vector_norm`."""
    name = _CAMEL.sub("_", _NODE_SUFFIX.sub("", node)).lower()
    return name.replace("log1_p", "log1p")
