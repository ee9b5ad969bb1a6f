"""Validation of named feature columns against a model's config, shared by both front doors.

Each door (domain API, Open Inference Protocol) turns its wire format into one 1-D column per feature and
names fields its own way (`transactions[3].currency`, `features['v14']`, `inputs[x][3]`); this module checks
every value against its feature's config (dtype, `minimum`/`maximum`, categories) and assembles the ONNX
inputs: `[N, 1]` per feature input, `[N, F]` for an input with F columns, each in its dtype. Nothing
unreadable is ever scored.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from server.config.model_config import ModelConfig
from server.model_io import Feeds, OnnxInput, assemble, onnx_inputs
from server.runtime.errors import InvalidInputError

# (feature name, row or None for the whole column) -> the field's name as the client sees it
FieldNamer = Callable[[str, int | None], str]
FeatureValues = dict[str, np.ndarray]  # feature name -> validated 1-D column (float64, or object for strings)

FLOAT32_MAX = float(np.finfo(np.float32).max)
_EXACT_INT = 2**53  # integers up to this convert to float64 exactly, whichever way
_MAX_SHOWN = 40  # characters of a bad string value echoed back in an error message


def plain_namer(name: str, row: int | None) -> str:
    return name if row is None else f"{name}[{row}]"


@dataclass(frozen=True)
class FeatureSchema:
    """What a model accepts: numeric features with dtypes and ranges, string features with categories."""

    numeric: tuple[tuple[str, str, float, float], ...]  # name, dtype, minimum, maximum
    categorical: tuple[tuple[str, frozenset[str]], ...]  # name, allowed values
    inputs: tuple[OnnxInput, ...]

    @classmethod
    def from_config(cls, config: ModelConfig) -> "FeatureSchema":
        numeric, categorical = [], []
        for feature in config.features:
            if feature.dtype == "string":
                categorical.append((feature.name, frozenset(feature.categories)))
                continue
            low = -np.inf if feature.minimum is None else feature.minimum
            high = np.inf if feature.maximum is None else feature.maximum
            if feature.dtype == "bool":
                low, high = max(low, 0.0), min(high, 1.0)
            numeric.append((feature.name, str(feature.dtype), float(low), float(high)))
        return cls(tuple(numeric), tuple(categorical), onnx_inputs(config))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f for spec in self.inputs for f in spec.features)

    def validate(
        self, columns: Mapping[str, Sequence | np.ndarray], rows: int, namer: FieldNamer = plain_namer
    ) -> Feeds:
        """Check every value of every feature; return the ONNX feeds or raise InvalidInputError."""
        if rows == 1 and self._float32_columns_only:
            feeds = self._validate_one_row(columns)
            if feeds is not None:
                return feeds
        return self.assemble(self.check(columns, rows, namer))

    def check(
        self, columns: Mapping[str, Sequence | np.ndarray], rows: int, namer: FieldNamer = plain_namer
    ) -> FeatureValues:
        """Every feature's validated column: float64 for numbers, object for strings."""
        values: FeatureValues = {}
        if self.numeric:
            names = self._numeric_names
            # One [features, rows] matrix: every check is one vectorized operation whatever the count.
            matrix = np.array([_column(columns, name, rows, namer) for name in names], dtype=np.float64)
            self._check_numbers(matrix, namer)
            values.update(zip(names, matrix, strict=True))
        for name, allowed in self.categorical:
            column = _column(columns, name, rows, namer)
            try:
                known = allowed.issuperset(column)  # one C loop over the column
            except TypeError:  # an unhashable value: not a category either
                known = False
            if not known:
                for row, value in enumerate(column):
                    if value not in allowed:
                        raise InvalidInputError(namer(name, row), _category_problem(value, allowed))
            values[name] = np.asarray(column, dtype=object)
        return values

    def _check_numbers(self, matrix: np.ndarray, namer: FieldNamer) -> None:
        names = self._numeric_names
        finite = np.isfinite(matrix)
        if not finite.all():
            column, row = np.argwhere(~finite)[0]
            raise InvalidInputError(
                namer(names[column], int(row)), f"not a finite number ({matrix[column, row]})"
            )
        lows, highs = self._bounds
        outside = (matrix < lows) | (matrix > highs)
        if outside.any():
            column, row = np.argwhere(outside)[0]
            value, (_, _, low, high) = matrix[column, row], self.numeric[column]  # the config's range
            problem = f"value {value:g} outside the allowed range [{low:g}, {high:g}]"
            raise InvalidInputError(namer(names[column], int(row)), problem)
        integral = self._integral_rows
        if integral.size:
            part = matrix[integral]
            fractional = part != np.floor(part)
            if fractional.any():
                column, row = np.argwhere(fractional)[0]
                name = names[integral[column]]
                dtype = self.numeric[integral[column]][1]
                what = "0 or 1 (bool)" if dtype == "bool" else "an integer (int64)"
                raise InvalidInputError(namer(name, int(row)), f"{part[column, row]:g} is not {what}")

    def assemble(self, values: FeatureValues) -> Feeds:
        """The ONNX feeds from validated feature columns: [N, 1] or [N, F] arrays in each input's dtype."""
        return assemble(self.inputs, values)

    def _validate_one_row(self, columns: Mapping[str, Sequence | np.ndarray]) -> Feeds | None:
        """One valid row in plain Python (the unary hot path of models whose inputs are [N, 1] float32 or
        string): the same tensors as the general path, or None at anything unusual (a missing, mis-sized,
        non-plain or bad value), which the general path then reports with its usual message."""
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
        # [features, 1, 1] float32, converted like the general path's float64 -> float32 astype; each item
        # is a contiguous [1, 1] view, as there.
        feeds = dict(
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
            feeds[name] = np.array([[value]], dtype=object)
        return feeds

    def one_row_feeds(self, numbers: Sequence, strings: Sequence) -> Feeds | None:
        """One row given as plain values, `numbers` in `numeric` order and `strings` in `categorical` order
        (the domain API's unary hot path reads them so from the message): the tensors `validate` makes of
        it, or None at anything unusual, which the general path then reports. Models whose inputs are
        [N, 1] float32 or string only (None otherwise).

        Each number is compared with its bounds once, in Python: NaN fails the comparison, and infinities
        fall outside the float32-clipped bounds; an exact integer within them is within them after the
        general path's float64 rounding too (rounding is monotone, the bounds are floats)."""
        if not self._float32_columns_only:
            return None
        try:
            for value, low, high in zip(numbers, *self._flat_bounds, strict=True):
                if not low <= value <= high:
                    return None
        except (TypeError, ValueError):
            return None
        allowed_sets = self._allowed
        for value, allowed in zip(strings, allowed_sets, strict=True):
            if value.__class__ is not str or value not in allowed:
                return None
        # [features, 1, 1] float32 by way of float64, as the general path converts; each item a [1, 1] view
        floats = np.array(numbers, dtype=np.float64).astype(np.float32).reshape(-1, 1, 1)
        feeds = dict(zip(self._numeric_names, floats, strict=True))
        if strings:
            strings_array = np.array(strings, dtype=object).reshape(-1, 1, 1)
            feeds.update(zip(self._categorical_names, strings_array, strict=True))
        return feeds

    @property
    def takes_one_row_feeds(self) -> bool:
        """`one_row_feeds` applies: every input is one float32 or string feature, named like it."""
        return self._float32_columns_only

    @cached_property
    def _flat_bounds(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return tuple(low for _, low, _ in self._plain_bounds), tuple(
            high for _, _, high in self._plain_bounds
        )

    @cached_property
    def _allowed(self) -> tuple[frozenset[str], ...]:
        return tuple(allowed for _, allowed in self.categorical)

    @cached_property
    def _categorical_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.categorical)

    @cached_property
    def _float32_columns_only(self) -> bool:
        """Every input is one feature, named like it, float32 or string: the one-row fast path applies."""
        return all(
            len(spec.features) == 1 and spec.features[0] == spec.name and spec.dtype in ("float32", "string")
            for spec in self.inputs
        )

    @cached_property
    def _numeric_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _, _ in self.numeric)

    @cached_property
    def _integral_rows(self) -> np.ndarray:
        """Rows of the numeric matrix whose values must be whole numbers (int64, bool)."""
        return np.array(
            [i for i, (_, dtype, _, _) in enumerate(self.numeric) if dtype in ("int64", "bool")], int
        )

    @cached_property
    def _plain_bounds(self) -> tuple[tuple[str, float, float], ...]:
        """(name, minimum, maximum) as plain floats, clipped to float32's range like `_bounds`."""
        lows, highs = self._bounds
        return tuple(
            (name, float(lows[i, 0]), float(highs[i, 0])) for i, name in enumerate(self._numeric_names)
        )

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """[features, 1] minimum and maximum; float32 features within float32's range (a larger value would
        become inf), int64 features within the integers float64 holds exactly."""
        limit = {"float32": FLOAT32_MAX, "int64": float(_EXACT_INT)}
        lows = np.array([[max(low, -limit.get(dtype, np.inf))] for _, dtype, low, _ in self.numeric])
        highs = np.array([[min(high, limit.get(dtype, np.inf))] for _, dtype, _, high in self.numeric])
        return lows.reshape(-1, 1), highs.reshape(-1, 1)


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
