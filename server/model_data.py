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

from server.config.errors import DataFileError
from server.config.model_config import ModelConfig

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)

Feeds = dict[str, np.ndarray]


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
    strings = [spec.name for spec in config.inputs if spec.dtype == "string"]
    return read_data_file(data_path(config, kind), strings, columns)


def input_frame(config: ModelConfig, kind: DataKind = DataKind.CALIBRATION) -> pd.DataFrame:
    """The model inputs' columns of one of its data files."""
    return read_model_data(config, kind, config.input_names)


def feeds_from_frame(config: ModelConfig, frame: pd.DataFrame, count: int | None = None) -> Feeds:
    """The first `count` complete rows of `frame` (all when None) as model feeds ([N, 1] arrays)."""
    frame = frame[config.input_names].dropna()
    if count is not None:
        frame = frame.head(count)
    feeds: Feeds = {}
    for spec in config.inputs:
        column = frame[spec.name].to_numpy()
        dtype = np.float32 if spec.dtype == "float32" else object
        feeds[spec.name] = column.astype(dtype).reshape(-1, 1)
    return feeds


def reference_row(config: ModelConfig, frame: pd.DataFrame) -> Feeds:
    """A typical input row of `frame`: the median of each number, the most common known value of each
    string. Used for warm-up and as the baseline of credit reason codes."""
    row: Feeds = {}
    for spec in config.inputs:
        column = frame[spec.name].dropna()
        if spec.dtype == "float32":
            row[spec.name] = np.array([[column.median()]], dtype=np.float32)
        else:
            known = column[column.isin(spec.categories)]
            value = known.mode().iloc[0] if len(known) else spec.categories[0]
            row[spec.name] = np.array([[str(value)]], dtype=object)
    return row
