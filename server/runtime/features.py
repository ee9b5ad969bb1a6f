"""Validation of named feature columns against a model's config, shared by both front doors.

Each door (domain API, Open Inference Protocol) turns its wire format into one 1-D column per model input
and names fields its own way (`transactions[3].currency`, `inputs[currency][3]`); this module checks
every value and returns the [N, 1] arrays ONNX Runtime takes. Nothing unreadable is ever scored.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from server.config.model_config import ModelConfig
from server.runtime.errors import InvalidInputError

# (input name, row or None for the whole column) -> the field's name as the client sees it
FieldNamer = Callable[[str, int | None], str]

# Money amounts are never negative, whatever a config's minimum says.
NON_NEGATIVE_INPUTS = frozenset({"amount", "amount_sum_1h", "amount_sum_24h", "loan_amount", "annual_income"})
FLOAT32_MAX = float(np.finfo(np.float32).max)
_EXACT_INT = 2**53  # integers up to this convert to float64 exactly, whichever way
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
        if rows == 1:
            tensors = self._validate_one_row(columns)
            if tensors is not None:
                return tensors
        tensors = {}
        if self.numeric:
            names = [name for name, _, _ in self.numeric]
            # One [inputs, rows] matrix: every check is one vectorized operation whatever the input count.
            matrix = np.array([_column(columns, name, rows, namer) for name in names], dtype=np.float64)
            lows, highs = self._bounds
            finite = np.isfinite(matrix)
            if not finite.all():
                column, row = np.argwhere(~finite)[0]
                value = matrix[column, row]
                raise InvalidInputError(namer(names[column], int(row)), f"not a finite number ({value})")
            outside = (matrix < lows) | (matrix > highs)
            if outside.any():
                column, row = np.argwhere(outside)[0]
                name, value = names[column], matrix[column, row]
                low, high = lows[column, 0], highs[column, 0]
                problem = (
                    f"negative amount ({value:g})"
                    if value < 0 and name in NON_NEGATIVE_INPUTS
                    else f"value {value:g} outside the allowed range [{low:g}, {high:g}]"
                )
                raise InvalidInputError(namer(name, int(row)), problem)
            # Each row of this C-ordered [inputs, rows] float32 matrix is one contiguous [rows, 1] tensor.
            as_float32 = matrix.astype(np.float32)
            for i, name in enumerate(names):
                tensors[name] = as_float32[i].reshape(-1, 1)
        for name, allowed in self.categorical:
            values = _column(columns, name, rows, namer)
            for row, value in enumerate(values):
                if value not in allowed:
                    raise InvalidInputError(namer(name, row), _category_problem(value, allowed))
            tensors[name] = np.asarray(values, dtype=object).reshape(-1, 1)
        return tensors

    def _validate_one_row(self, columns: Mapping[str, Sequence | np.ndarray]) -> dict[str, np.ndarray] | None:
        """One valid row in plain Python (the unary hot path): the same tensors as the general path, or
        None at anything unusual (a missing, mis-sized, non-plain or bad value), which the general path
        then reports with its usual message."""
        numbers: list[float] = []
        append = numbers.append
        isfinite = math.isfinite
        get = columns.get
        for name, low, high in self._plain_bounds:
            values = get(name)
            if values is None or len(values) != 1:
                return None
            value = values[0]
            kind = value.__class__
            if kind is int or kind is np.int64:
                if not -_EXACT_INT <= value <= _EXACT_INT:
                    return None
                value = float(value)
            elif kind is np.float32 or kind is np.float64:
                value = float(value)  # exact
            elif kind is not float and kind is not bool:
                return None
            if not isfinite(value) or value < low or value > high:
                return None
            append(value)
        # [inputs, 1, 1] float32, converted like the general path's float64 -> float32 astype; each item
        # is a contiguous [1, 1] view, as there.
        tensors = dict(
            zip(
                self._numeric_names,
                np.array(numbers, dtype=np.float64).astype(np.float32).reshape(-1, 1, 1),
                strict=True,
            )
        )
        for name, allowed in self.categorical:
            values = get(name)
            if values is None or len(values) != 1:
                return None
            value = values[0]
            if value.__class__ is not str or value not in allowed:
                return None
            tensors[name] = np.array([[value]], dtype=object)
        return tensors

    @cached_property
    def _numeric_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.numeric)

    @cached_property
    def _plain_bounds(self) -> tuple[tuple[str, float, float], ...]:
        """(name, minimum, maximum) as plain floats, clipped to float32's range like `_bounds`."""
        lows, highs = self._bounds
        return tuple(
            (name, float(lows[i, 0]), float(highs[i, 0])) for i, (name, _, _) in enumerate(self.numeric)
        )

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """[inputs, 1] minimum and maximum, within float32's range (a larger value would become inf)."""
        lows = np.array([[max(low, -FLOAT32_MAX)] for _, low, _ in self.numeric])
        highs = np.array([[min(high, FLOAT32_MAX)] for _, _, high in self.numeric])
        return lows, highs


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
