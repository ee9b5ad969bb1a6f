"""Which data columns feed which ONNX input, and what `models init` writes for each feature: categories (the
graph's own vocabulary, else the data's values) and a valid range inferred from the data.

Columns: an [N, 1] input reads the data column of its own name. One [N, F] input (PyTorch, Keras,
onnxmltools) reads `--columns` if given, else every data column not used otherwise (not an [N, 1] input, the
label, the time column or an `--ignore`d one), in file order; they must number F.

Ranges (docs/config.md, "Ranges written by models init"): a column whose values are all 0 or 1 gets
[0, 1]; a never-negative column gets minimum 0; otherwise the bound is the data's own minimum/maximum
widened by the observed span (max - min) and rounded outward to 3 significant digits. The span guard lets a
new record through (a larger amount than any seen) while still refusing a gross upstream error (cents sent as
units, a sentinel like -999 or 1e9). The observed range is kept in the feature's description.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from server.model_init.errors import ModelInitError
from server.model_init.signature import GraphInput, Signature, Vocabulary

FLOAT32_MAX = float(np.finfo(np.float32).max)
_MAX_LISTED = 12  # column names listed in one error line


@dataclass(frozen=True)
class InputPlan:
    """One ONNX input and the data columns that feed it (one for [N, 1], F in order for [N, F])."""

    graph_input: GraphInput
    columns: tuple[str, ...]
    wide: bool  # an [N, F] input: written with `columns:`


def listed(names: Sequence[str]) -> str:
    shown = ", ".join(str(n) for n in names[:_MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


def plan_inputs(
    signature: Signature,
    data_columns: Sequence[str],
    reserved: Sequence[str],
    columns_flag: Sequence[str] | None,
    data_name: str,
) -> tuple[InputPlan, ...]:
    """Map every ONNX input to data columns; ModelInitError naming the columns when they do not match."""
    present = [str(c) for c in data_columns]
    narrow = [i for i in signature.inputs if i.width == 1 or (i.width is None and i.name in present)]
    wide = [i for i in signature.inputs if i not in narrow]
    missing = [i.name for i in narrow if i.name not in present]
    if missing:
        raise ModelInitError(
            f"data file {data_name} has no column for ONNX input(s) {listed(missing)} "
            f"(data columns: {listed(present)}); the data's column names must be the ONNX input names"
        )
    used = {i.name for i in narrow}
    plans = {i.name: InputPlan(i, (i.name,), False) for i in narrow}
    if len(wide) > 1:
        raise ModelInitError(
            f"ONNX inputs {listed([i.name for i in wide])} each take several columns; models init maps one "
            "[N, F] input: write the config's `columns` by hand (docs/config.md)"
        )
    if columns_flag is not None and not wide:
        raise ModelInitError("--columns names the features of an [N, F] input; this model has none")
    if wide:
        graph_input = wide[0]
        if columns_flag is not None:
            unknown = [c for c in columns_flag if c not in present]
            if unknown:
                raise ModelInitError(f"--columns: data file {data_name} has no column {listed(unknown)}")
            doubled = sorted({c for c in columns_flag if list(columns_flag).count(c) > 1})
            if doubled:
                raise ModelInitError(f"--columns names {listed(doubled)} more than once")
            chosen = list(columns_flag)
            where = "--columns"
        else:
            chosen = [c for c in present if c not in used and c not in reserved]
            where = "the data's columns other than the [N, 1] inputs, label, time and --ignore columns"
        if graph_input.width is not None and len(chosen) != graph_input.width:
            raise ModelInitError(
                f"ONNX input '{graph_input.name}' is {graph_input.dtype} [N, {graph_input.width}] but "
                f"{where} number {len(chosen)} ({listed(chosen)}); pass --columns with its "
                f"{graph_input.width} feature columns in order (and --ignore for ids)"
            )
        plans[graph_input.name] = InputPlan(graph_input, tuple(chosen), True)
        used.update(chosen)
    extra = [c for c in present if c not in used and c not in reserved]
    if extra:
        raise ModelInitError(
            f"data file {data_name}: columns {listed(extra)} feed no ONNX input "
            f"(inputs: {listed([i.name for i in signature.inputs])}); pass --ignore {','.join(extra[:3])}"
            f"{',...' if len(extra) > 3 else ''} if they are ids or other non-model columns"
        )
    return tuple(plans[i.name] for i in signature.inputs)


def check_column(frame: pd.DataFrame, name: str, dtype: str, data_name: str) -> None:
    """The values a feature of `dtype` can take: complete, finite, and numbers or strings as needed."""
    column = frame[name]
    missing = int(column.isna().sum())
    if missing:
        raise ModelInitError(
            f"data file {data_name}: column '{name}' has {missing} missing values; riskserve scores "
            "complete rows only: fill or drop them first"
        )
    if dtype == "string":
        strings = column.map(lambda v: isinstance(v, str))
        if not strings.all():
            example = column[~strings].iloc[0]
            raise ModelInitError(
                f"data file {data_name}: column '{name}' feeds a string input but holds {example!r}"
            )
        return
    if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
        raise ModelInitError(
            f"data file {data_name}: column '{name}' feeds a {dtype} input but holds {column.dtype} values "
            f"such as {column.iloc[0]!r}"
        )
    values = column.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ModelInitError(f"data file {data_name}: column '{name}' has infinite values")
    if dtype in ("int64", "bool") and (values != np.floor(values)).any():
        raise ModelInitError(f"data file {data_name}: column '{name}' has fractions; its input is {dtype}")
    if dtype == "bool" and not np.isin(values, (0.0, 1.0)).all():
        raise ModelInitError(f"data file {data_name}: column '{name}' must be 0/1 (a bool input)")
    if dtype == "float32" and np.abs(values).max(initial=0.0) > FLOAT32_MAX:
        raise ModelInitError(f"data file {data_name}: column '{name}' has values beyond float32's range")


@dataclass(frozen=True)
class Categories:
    values: tuple[str, ...]
    origin: str  # "the graph's OneHotEncoder" or "the data"
    outside: tuple[str, ...]  # data values the graph's vocabulary does not know (the server refuses them)


def categories(column: pd.Series, vocabulary: Vocabulary | None) -> Categories:
    seen = sorted({str(v) for v in column.unique()})
    if vocabulary is None or not vocabulary.values:
        return Categories(tuple(seen), "the data", ())
    known = set(vocabulary.values)
    origin = f"the graph's {'/'.join(vocabulary.op_types)}"
    return Categories(vocabulary.values, origin, tuple(v for v in seen if v not in known))


@dataclass(frozen=True)
class Range:
    minimum: float | None
    maximum: float | None
    rule: str  # "0/1", "never negative", "widened"
    observed: tuple[float, float]


def inferred_range(column: pd.Series, dtype: str) -> Range:
    values = column.to_numpy(dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if dtype == "bool":
        return Range(None, None, "bool", (low, high))  # the server holds bools to 0/1 anyway
    if np.isin(values, (0.0, 1.0)).all():
        return Range(0.0, 1.0, "0/1", (low, high))
    span = high - low if high > low else max(abs(high), 1.0)
    if low >= 0.0:
        minimum, rule = 0.0, "never negative"
    else:
        minimum, rule = _round_out(low - span, up=False), "widened"
    maximum = _round_out(high + span, up=True)
    if dtype == "int64":
        minimum, maximum = float(math.floor(minimum)), float(math.ceil(maximum))
    if dtype == "float32" and maximum > FLOAT32_MAX:
        maximum = None  # beyond float32: the dtype's own limit applies
    if dtype == "float32" and minimum < -FLOAT32_MAX:
        minimum = -FLOAT32_MAX
    return Range(minimum, maximum, rule, (low, high))


def _round_out(value: float, up: bool) -> float:
    """`value` rounded away from the data (up for a maximum, down for a minimum) to 3 significant digits."""
    if value == 0.0 or not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(abs(value))) - 2)
    rounded = (math.ceil if up else math.floor)(value / step) * step
    cleaned = float(f"{rounded:.3g}")
    if (up and cleaned < value) or (not up and cleaned > value):
        cleaned = rounded  # the cleaned decimal fell on the wrong side: keep the exact multiple
    return cleaned
