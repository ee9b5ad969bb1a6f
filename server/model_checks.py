"""A model's files checked against its config before anything uses them, every problem at once.

- The calibration and holdout files: a category the config does not list, or a value outside the
  feature's `minimum`/`maximum`, would pass the accuracy gate and then be refused by the server on those
  very rows. Each problem names the file, the column, example values and how many rows have them.
- The ONNX graph: a config category its encoders (OneHotEncoder, LabelEncoder, CategoryMapper) do not
  know would be encoded as "unknown" without a word.
"""

import contextlib

import numpy as np
import onnx
import pandas as pd

from server.config.errors import DataFileError
from server.config.model_config import ModelConfig
from server.model_data import DataKind, data_path, read_model_data
from server.model_init.signature import graph_vocabularies

MAX_SHOWN = 5  # example values per problem


def frame_problems(config: ModelConfig, frame: pd.DataFrame, name: str) -> list[str]:
    """What in `frame` (a data file's feature columns) the config would refuse."""
    problems = []
    for feature in config.features:
        if feature.name not in frame.columns:
            continue  # the pipeline's own reader names missing columns
        column = frame[feature.name].dropna()
        is_text = pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column)
        if (feature.dtype == "string") != is_text:
            continue  # a column of the wrong type: the pipeline's reader names it (e.g. "must hold strings")
        if feature.dtype == "string":
            unknown = column[~column.astype(str).isin(feature.categories)].astype(str).value_counts()
            if len(unknown):
                shown = ", ".join(
                    f"'{value}' ({count} rows)" for value, count in unknown.head(MAX_SHOWN).items()
                )
                more = f" and {len(unknown) - MAX_SHOWN} more values" if len(unknown) > MAX_SHOWN else ""
                problems.append(
                    f"{name}: column '{feature.name}' has values the config's categories do not list: "
                    f"{shown}{more} ({int(unknown.sum())} rows in all)"
                )
            continue
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        low = -np.inf if feature.minimum is None else feature.minimum
        high = np.inf if feature.maximum is None else feature.maximum
        outside = (values < low) | (values > high)
        if outside.any():
            examples = ", ".join(f"{v:g}" for v in np.unique(values[outside])[:MAX_SHOWN])
            problems.append(
                f"{name}: column '{feature.name}' has {int(outside.sum())} rows outside the config's range "
                f"[{low:g}, {high:g}], e.g. {examples}"
            )
    return problems


def vocabulary_problems(config: ModelConfig, model: onnx.ModelProto) -> list[str]:
    """Config categories of string inputs that the graph's encoders do not know."""
    vocabularies = graph_vocabularies(model)
    problems = []
    for spec in config.inputs:
        for column, feature in enumerate(spec.features):
            vocabulary = vocabularies.get((spec.onnx_input, column))
            if feature.dtype != "string" or vocabulary is None:
                continue
            unknown = [c for c in feature.categories if c not in vocabulary.values]
            if unknown:
                shown = ", ".join(f"'{c}'" for c in unknown[:MAX_SHOWN])
                more = f" and {len(unknown) - MAX_SHOWN} more" if len(unknown) > MAX_SHOWN else ""
                encoders = "/".join(vocabulary.op_types)
                problems.append(
                    f"config: input '{feature.name}' lists categories the graph's {encoders} does not know: "
                    f"{shown}{more}"
                )
    return problems


def check_model_files(config: ModelConfig) -> None:
    """DataFileError listing every problem of the model's data files and graph vocabulary, one per line."""
    problems = []
    for kind in (DataKind.CALIBRATION, DataKind.HOLDOUT):
        try:
            frame = read_model_data(config, kind)
        except DataFileError as exc:
            problems.append(str(exc))
            continue
        problems += frame_problems(config, frame, data_path(config, kind).name)
    # An unreadable model file is the quantization pipeline's to report, as a model_file problem.
    with contextlib.suppress(Exception):
        problems += vocabulary_problems(config, onnx.load(str(config.onnx_path), load_external_data=False))
    if problems:
        lines = "\n  ".join(problems)
        raise DataFileError(f"model {config.name}: its files do not fit its config:\n  {lines}")
