"""Validation of named feature columns against a model's config, shared by both front doors.

Each door (domain API, Open Inference Protocol) turns its wire format into one 1-D column per model input
and names fields its own way (`transactions[3].currency`, `inputs[currency][3]`); this module checks
every value and returns the [N, 1] arrays ONNX Runtime takes. Nothing unreadable is ever scored.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from server.config.model_config import ModelConfig
from server.runtime.errors import InvalidInputError

# (input name, row or None for the whole column) -> the field's name as the client sees it
FieldNamer = Callable[[str, int | None], str]

# Money amounts are never negative, whatever a config's minimum says.
NON_NEGATIVE_INPUTS = frozenset({"amount", "amount_sum_1h", "amount_sum_24h", "loan_amount", "annual_income"})
_MAX_SHOWN = 40  # characters of a bad string value echoed back in an error message


def plain_namer(name: str, row: int | None) -> str:
    return name if row is None else f"{name}[{row}]"


@dataclass(frozen=True)
class FeatureSchema:
    """What a model accepts: numeric inputs with ranges, string inputs with their categories."""

    input_names: tuple[str, ...]
    numeric: tuple[tuple[str, float, float], ...]  # name, minimum, maximum
    categorical: tuple[tuple[str, frozenset[str]], ...]  # name, allowed values

    @classmethod
    def from_config(cls, config: ModelConfig) -> "FeatureSchema":
        numeric, categorical = [], []
        for spec in config.inputs:
            if spec.dtype == "float32":
                low = -np.inf if spec.minimum is None else spec.minimum
                if spec.name in NON_NEGATIVE_INPUTS:
                    low = max(low, 0.0)
                high = np.inf if spec.maximum is None else spec.maximum
                numeric.append((spec.name, float(low), float(high)))
            else:
                categorical.append((spec.name, frozenset(spec.categories)))
        return cls(tuple(config.input_names), tuple(numeric), tuple(categorical))

    def validate(
        self, columns: Mapping[str, Sequence | np.ndarray], rows: int, namer: FieldNamer = plain_namer
    ) -> dict[str, np.ndarray]:
        """Check every value of every input; return {input: [rows, 1] array} or raise InvalidInputError."""
        tensors: dict[str, np.ndarray] = {}
        for name, low, high in self.numeric:
            values = _column(columns, name, rows, namer)
            array = np.asarray(values, dtype=np.float64).reshape(-1)
            finite = np.isfinite(array)
            if not finite.all():
                row = int(np.argmin(finite))
                raise InvalidInputError(namer(name, row), f"not a finite number ({array[row]})")
            outside = (array < low) | (array > high)
            if outside.any():
                row = int(np.argmax(outside))
                problem = (
                    f"negative amount ({array[row]:g})"
                    if array[row] < 0 and name in NON_NEGATIVE_INPUTS
                    else f"value {array[row]:g} outside the allowed range [{low:g}, {high:g}]"
                )
                raise InvalidInputError(namer(name, row), problem)
            tensors[name] = array.astype(np.float32).reshape(-1, 1)
        for name, allowed in self.categorical:
            values = _column(columns, name, rows, namer)
            for row, value in enumerate(values):
                if value not in allowed:
                    raise InvalidInputError(namer(name, row), _category_problem(value, allowed))
            tensors[name] = np.asarray(values, dtype=object).reshape(-1, 1)
        return tensors


def _column(columns: Mapping[str, Sequence | np.ndarray], name: str, rows: int, namer: FieldNamer):
    values = columns.get(name)
    if values is None:
        raise InvalidInputError(namer(name, None), "missing")
    if len(values) != rows:
        raise InvalidInputError(namer(name, None), f"has {len(values)} values, expected {rows}")
    return values


def _category_problem(value: object, allowed: frozenset[str]) -> str:
    if value == "" or value is None:
        return "missing"
    shown = str(value)
    shown = shown if len(shown) <= _MAX_SHOWN else shown[:_MAX_SHOWN] + "..."
    sample = ", ".join(sorted(allowed)[:8]) + (", ..." if len(allowed) > 8 else "")
    return f"unknown value '{shown}' (allowed: {sample})"
