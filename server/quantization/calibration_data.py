"""Model-input data files (calibration and holdout): read with pandas, checked, mapped to ONNX feeds.

Every check runs before anything is quantized or written, so a bad file fails fast with the column named.
Columns that are not ONNX inputs are an error unless they are the label column or listed in
`quantization.ignored_columns`: a silently ignored column is usually a renamed input.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from onnxruntime.quantization import CalibrationDataReader

from server.config.model_config import ModelConfig
from server.model_data import read_data_file
from server.model_io import assemble, onnx_inputs
from server.quantization.errors import DataFileError

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class FeatureTable:
    """A data file's model inputs as ONNX feeds (each [N, 1]) and, for a holdout file, its labels."""

    path: Path
    feeds: Feeds
    labels: np.ndarray | None
    rows: int
    rows_in_file: int
    ignored_columns: tuple[str, ...]

    def batch(self, start: int, stop: int) -> Feeds:
        return {name: values[start:stop] for name, values in self.feeds.items()}

    def subset(self, rows: np.ndarray) -> "FeatureTable":
        """The same file's table restricted to `rows` (indices, in order)."""
        feeds = {name: values[rows] for name, values in self.feeds.items()}
        labels = self.labels[rows] if self.labels is not None else None
        return FeatureTable(self.path, feeds, labels, len(rows), self.rows_in_file, self.ignored_columns)

    @property
    def positives(self) -> int | None:
        return int(self.labels.sum()) if self.labels is not None else None


def load_feature_table(
    path: Path,
    config: ModelConfig,
    *,
    min_rows: int,
    max_rows: int | None = None,
    label_column: str | None = None,
    require_label: bool = False,
    ignored_columns: tuple[str, ...] = (),
) -> FeatureTable:
    """Read `path` and turn it into the model's ONNX feeds (one column per feature, assembled as the server
    assembles a request), checking columns, dtypes, finiteness and row count.

    Keeps at most `max_rows` rows (a fixed-seed sample, so the same file always gives the same rows).
    """
    input_dtypes = {feature.name: str(feature.dtype) for feature in config.features}
    frame = read_data_file(path, [name for name, dtype in input_dtypes.items() if dtype == "string"])
    columns = set(frame.columns)
    missing = [name for name in input_dtypes if name not in columns]
    if require_label and label_column not in columns:
        missing.append(label_column)
    allowed = set(input_dtypes) | set(ignored_columns) | ({label_column} if label_column else set())
    extra = sorted(str(c) for c in columns - allowed)
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        if extra:
            problems.append(
                f"unexpected columns: {', '.join(extra)} (not model inputs; list them in "
                "quantization.ignored_columns if they belong in the file)"
            )
        raise DataFileError(f"data file {path}: {'; '.join(problems)}")
    rows_in_file = len(frame)
    if rows_in_file < min_rows:
        raise DataFileError(f"data file {path}: {rows_in_file} rows, at least {min_rows} are needed")
    if max_rows is not None and rows_in_file > max_rows:
        frame = frame.sample(n=max_rows, random_state=0).sort_index()
    values = {name: _column_values(path, frame[name], dtype) for name, dtype in input_dtypes.items()}
    feeds = assemble(onnx_inputs(config), values)
    labels = _labels(path, frame[label_column]) if require_label else None
    ignored = tuple(sorted(str(c) for c in columns - set(input_dtypes) - {label_column}))
    return FeatureTable(path, feeds, labels, len(frame), rows_in_file, ignored)


def load_holdout_table(config: ModelConfig) -> FeatureTable:
    """The model's holdout file, every row, with its labels: what the gate judges on."""
    q = config.quantization
    return load_feature_table(
        config.holdout_path,
        config,
        min_rows=q.min_calibration_rows,
        label_column=config.label_column,
        require_label=True,
        ignored_columns=q.ignored_columns,
    )


def _column_values(path: Path, column: pd.Series, dtype: str) -> np.ndarray:
    """One feature's values, checked for its dtype: float64 for numbers, object for strings (1-D)."""
    name = column.name
    if column.isna().any():
        raise DataFileError(
            f"data file {path}: column '{name}' has {int(column.isna().sum())} missing (NaN/null) values"
        )
    if dtype != "string":
        if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
            bad = next((v for v in column if not _is_number(v)), column.iloc[0])
            raise DataFileError(
                f"data file {path}: column '{name}' must be numeric ({dtype} model input), "
                f"found {column.dtype} values such as {bad!r}"
            )
        values = column.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataFileError(
                f"data file {path}: column '{name}' has {int((~np.isfinite(values)).sum())} infinite values"
            )
        if dtype == "float32" and np.abs(values).max(initial=0.0) > np.finfo(np.float32).max:
            raise DataFileError(f"data file {path}: column '{name}' has values beyond float32 range")
        if dtype in ("int64", "bool") and (values != np.floor(values)).any():
            raise DataFileError(f"data file {path}: column '{name}' has fractional values ({dtype} input)")
        if dtype == "bool" and not np.isin(values, (0.0, 1.0)).all():
            raise DataFileError(f"data file {path}: column '{name}' must hold 0/1 or true/false (bool input)")
        return values
    if not (pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column)):
        raise DataFileError(
            f"data file {path}: column '{name}' must hold strings (string model input), found {column.dtype}"
        )
    non_strings = [v for v in column if not isinstance(v, str)]
    if non_strings:
        raise DataFileError(
            f"data file {path}: column '{name}' must hold strings (string model input), "
            f"found {len(non_strings)} non-string values such as {non_strings[0]!r}"
        )
    return column.to_numpy(dtype=object)


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _labels(path: Path, column: pd.Series) -> np.ndarray:
    if column.isna().any() or not pd.api.types.is_numeric_dtype(column):
        raise DataFileError(
            f"data file {path}: label column '{column.name}' must be 0/1 without missing values"
        )
    labels = column.to_numpy(dtype=np.int64)
    if not np.isin(labels, (0, 1)).all() or len(np.unique(labels)) != 2:
        raise DataFileError(
            f"data file {path}: label column '{column.name}' must hold both 0 and 1, nothing else"
        )
    return labels


class FeatureBatchReader(CalibrationDataReader):
    """Feeds a FeatureTable to ONNX Runtime's calibrator in equal batches of at most `max_batch` rows.

    Equal sizes matter: the entropy and percentile calibrators stack batches into one array and fail on a
    short last batch. Up to (batches - 1) trailing rows are left out for that; `rows` says how many are used.
    """

    def __init__(self, table: FeatureTable, max_batch: int = 512) -> None:
        self._table = table
        self.batches = -(-table.rows // max_batch)
        self.batch_size = table.rows // self.batches
        self.rows = self.batch_size * self.batches
        self._iterator: Iterator[Feeds] = self._iterate()

    def _iterate(self) -> Iterator[Feeds]:
        for start in range(0, self.rows, self.batch_size):
            yield self._table.batch(start, start + self.batch_size)

    def get_next(self) -> Feeds | None:
        return next(self._iterator, None)

    def rewind(self) -> None:
        self._iterator = self._iterate()

    def __len__(self) -> int:
        return self.batches
