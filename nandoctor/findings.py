"""Findings: what the rules conclude, as small frozen records."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Optional


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


class Cause(str, Enum):
    LR_TOO_HIGH = "lr_too_high"
    EXPLODING_GRADIENTS = "exploding_gradients"
    LOG_OF_NONPOSITIVE = "log_of_nonpositive"
    EXP_OVERFLOW = "exp_overflow"
    DIVISION_BY_ZERO = "division_by_zero"
    SQRT_OR_POW_AT_ZERO = "sqrt_or_pow_at_zero"
    DOMAIN_ERROR = "domain_error"
    BAD_INPUT_DATA = "bad_input_data"
    BAD_TARGET = "bad_target"
    MISSING_ACTIVATION = "missing_activation"
    EMPTY_REDUCTION = "empty_reduction"
    LOW_PRECISION_OVERFLOW = "low_precision_overflow"
    BAD_INITIALIZATION = "bad_initialization"
    OPTIMIZER_EPSILON = "optimizer_epsilon"
    NONDETERMINISM = "nondeterminism"
    SCRIPT_ERROR = "script_error"
    WHERE_GRADIENT_LEAK = "where_gradient_leak"
    FULLY_MASKED_SOFTMAX = "fully_masked_softmax"
    MISSING_ZERO_GRAD = "missing_zero_grad"
    NUMERIC_OVERFLOW = "numeric_overflow"
    UNEXPLAINED = "unexplained"


@dataclass(frozen=True)
class Location:
    file: Optional[str] = None
    line: Optional[int] = None
    module: Optional[str] = None

    @classmethod
    def of_site(cls, site: Optional[dict]) -> "Location":
        """The file and line of a captured user site (None: nowhere)."""
        site = site or {}
        return cls(file=site.get("file"), line=site.get("line"))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else ""
        if self.module:
            where = f"{where} ({self.module})" if where else self.module
        return where


@dataclass(frozen=True)
class Fix:
    text: str
    code: Optional[str] = None
    verified_by: Optional[str] = None
    verification: Optional[str] = None


@dataclass(frozen=True)
class Finding:
    code: str
    cause: Cause
    title: str
    severity: Severity
    confidence: float
    location: Location = field(default_factory=Location)
    step: Optional[int] = None
    evidence: tuple[str, ...] = ()
    figures: dict[str, Any] = field(default_factory=dict)
    fixes: tuple[Fix, ...] = ()
    # "root" for a cause, "surfaced" for where a cause showed itself, and
    # "precursor" for warnings seen before anything broke.
    role: str = "root"

    def to_dict(self, rank: int) -> dict[str, Any]:
        data = asdict(self)
        data["cause"] = self.cause.value
        data["severity"] = self.severity.value
        data["evidence"] = list(self.evidence)
        data["fixes"] = [asdict(f) for f in self.fixes]
        data["confidence"] = round(self.confidence, 2)
        data["rank"] = rank
        return data
