"""A model's ONNX inputs and output as its config describes them, shared by the runtime and the quantization
pipeline (so the gate scores rows exactly as the server does).

Inputs: features become `[N, 1]` per feature input, `[N, F]` for an input whose config lists F columns, each
in the input's dtype. Output: the positive class's probability is one column of the configured output."""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from server.config.errors import ConfigError
from server.config.model_config import ModelConfig

SCORING_CHUNK_ROWS = 4096  # rows per ONNX Runtime call when a whole data file is scored

Feeds = dict[str, np.ndarray]  # ONNX input name -> [N, width] array
NUMPY_DTYPE = {
    "float32": np.float32,
    "float64": np.float64,
    "int64": np.int64,
    "bool": np.bool_,
    "string": object,
}


@dataclass(frozen=True)
class OnnxInput:
    """One ONNX input: its name, dtype and the features of its columns, in order."""

    name: str
    dtype: str
    features: tuple[str, ...]


def onnx_inputs(config: ModelConfig) -> tuple[OnnxInput, ...]:
    return tuple(
        OnnxInput(spec.onnx_input, spec.dtype, tuple(f.name for f in spec.features)) for spec in config.inputs
    )


def assemble(inputs: tuple[OnnxInput, ...], values: Mapping[str, np.ndarray]) -> Feeds:
    """ONNX feeds from 1-D feature columns (numbers, or strings for a string input)."""
    feeds: Feeds = {}
    for spec in inputs:
        dtype = NUMPY_DTYPE[spec.dtype]
        if len(spec.features) == 1:
            feeds[spec.name] = np.asarray(values[spec.features[0]]).astype(dtype).reshape(-1, 1)
        else:
            feeds[spec.name] = np.stack([np.asarray(values[f]) for f in spec.features], axis=1).astype(dtype)
    return feeds


def output_positive_column(config: ModelConfig, width: int) -> int:
    """The output column holding the positive class's probability: the config's `positive_column`, else the
    last one (column 1 of an [N, 2] pair, column 0 of an [N, 1] probability)."""
    column = width - 1 if config.positive_column is None else config.positive_column
    if not 0 <= column < width:
        raise ConfigError(
            f"model {config.name}: positive_column {column}, but output '{config.output_name}' has {width} "
            "column(s)"
        )
    return column


def output_width(outputs: np.ndarray) -> int:
    """Columns of a probability output; a 1-D output counts as one."""
    return 1 if outputs.ndim == 1 else int(outputs.shape[1])


def probability_column(outputs: np.ndarray, column: int) -> np.ndarray:
    """The positive-class probability of every row, as float64."""
    if outputs.ndim == 1:
        return outputs.astype(np.float64)
    return outputs[:, column].astype(np.float64)
