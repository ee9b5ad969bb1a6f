"""The one reader of a model's data files: its calibration and holdout files, Parquet or CSV.

Everything that reads a model's data goes through here: the quantization pipeline, the runtime's
reference row and batch-invariance rows, `riskserve score`'s holdout row, the load tester's default
request bodies and the benchmarks. The file names come from the model's config (`calibration_file`,
`holdout_file`), never from a hard-coded name.
"""

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow

from server.config.errors import DataFileError
from server.config.model_config import ModelConfig
from server.model_io import Feeds, assemble, onnx_inputs

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)


class DataKind(StrEnum):
    CALIBRATION = "calibration"  # unlabelled rows drawn like production traffic
    HOLDOUT = "holdout"  # labelled rows that judge the INT8 model against FP32


def read_data_file(
    path: Path, string_columns: Sequence[str] = (), columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a Parquet (.parquet, .pq) or CSV (.csv) file; DataFileError if it cannot be read.

    `string_columns` stay strings in a CSV file ("001" must not become 1 in a category column);
    `columns` reads only those (each must exist)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise DataFileError(f"data file {path}: unsupported extension '{suffix}' (use .parquet or .csv)")
    try:
        if suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
            # Arrow's allocator keeps the freed table's pages for a next read that a server never makes
            # (tens of MiB for the bundled fraud holdout): give them back.
            pyarrow.default_memory_pool().release_unused()
        else:
            frame = pd.read_csv(path, dtype={name: str for name in string_columns})
    except FileNotFoundError as exc:
        raise DataFileError(f"data file not found: {path}") from exc
    except Exception as exc:  # pyarrow / parser errors: a corrupt or truncated file
        raise DataFileError(f"cannot read data file {path}: {type(exc).__name__}: {exc}") from exc
    if columns is None:
        return frame
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise DataFileError(f"data file {path}: missing columns: {', '.join(missing)}")
    return frame[list(columns)]


def data_path(config: ModelConfig, kind: DataKind) -> Path:
    """The file of `kind` that `config` names."""
    return config.calibration_path if kind is DataKind.CALIBRATION else config.holdout_path


def read_model_data(
    config: ModelConfig, kind: DataKind, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The model's calibration or holdout file (only `columns`, when given)."""
    strings = [f.name for f in config.features if f.dtype == "string"]
    return read_data_file(data_path(config, kind), strings, columns)


def input_frame(config: ModelConfig, kind: DataKind = DataKind.CALIBRATION) -> pd.DataFrame:
    """The model's features' columns of one of its data files."""
    return read_model_data(config, kind, config.feature_names)


def feeds_from_frame(config: ModelConfig, frame: pd.DataFrame, count: int | None = None) -> Feeds:
    """The first `count` complete rows of `frame` (all when None) as the model's ONNX feeds."""
    frame = frame[config.feature_names].dropna()
    if count is not None:
        frame = frame.head(count)
    return assemble(onnx_inputs(config), {name: frame[name].to_numpy() for name in config.feature_names})


def reference_row(config: ModelConfig, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A typical row of `frame`, one 1-value column per feature: the median of each number (rounded for
    an integer or bool feature), the most common known value of each string. Used for warm-up and as the
    baseline of credit reason codes."""
    row: dict[str, np.ndarray] = {}
    for feature in config.features:
        column = frame[feature.name].dropna()
        if feature.dtype == "string":
            known = column[column.isin(feature.categories)]
            value = known.mode().iloc[0] if len(known) else feature.categories[0]
            row[feature.name] = np.array([str(value)], dtype=object)
        else:
            median = float(column.astype(np.float64).median())
            if feature.dtype in ("int64", "bool"):
                median = float(round(median))
            elif feature.dtype == "float32":
                median = float(np.float32(median))  # the value the model would see
            row[feature.name] = np.array([median])
    return row
