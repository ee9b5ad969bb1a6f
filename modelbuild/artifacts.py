"""Writes one model's folder: config.yaml, model.onnx, calibration/holdout Parquet, metrics.json."""

import json
from pathlib import Path
from typing import Any

import onnx
import pandas as pd
import yaml

from modelbuild.features import FEATURE_DESCRIPTIONS, NON_NEGATIVE, UPPER_BOUNDS
from modelbuild.recipe import ModelRecipe
from server.config import load_model_config
from server.model_integrity import file_sha256

PARQUET_OPTIONS = {"engine": "pyarrow", "compression": "zstd", "index": False}


def model_config_document(recipe: ModelRecipe, version: str, review: float, decline: float) -> dict[str, Any]:
    """The config.yaml content of a model (validated by server.config when written)."""
    inputs = []
    for name in recipe.features.inputs:
        spec: dict[str, Any] = {"name": name}
        if name in recipe.features.categorical:
            spec |= {"dtype": "string", "categories": list(recipe.vocabulary[name])}
        else:
            spec["dtype"] = "float32"
            if name in NON_NEGATIVE:
                spec["minimum"] = 0.0
            if name in UPPER_BOUNDS:
                spec["maximum"] = UPPER_BOUNDS[name]
        spec["description"] = FEATURE_DESCRIPTIONS[name]
        inputs.append(spec)
    document: dict[str, Any] = {
        "name": recipe.name,
        "version": version,
        "task": recipe.task,
        "description": recipe.description,
        "onnx_file": "model.onnx",
        "output_name": "probabilities",
        "label_column": recipe.features.label,
        "calibration_file": "calibration.parquet",
        "holdout_file": "holdout.parquet",
        "inputs": inputs,
        "decision": {"review": review, "decline": decline},
    }
    if recipe.scorecard:
        document["scorecard"] = dict(recipe.scorecard)
    # The data files carry ids (and the fraud scenario) for tracing; they are not model inputs.
    document["quantization"] = {"ignored_columns": [*recipe.id_columns, *recipe.extra_columns]}
    return document


def write_model_folder(
    directory: Path,
    recipe: ModelRecipe,
    config: dict[str, Any],
    model: onnx.ModelProto,
    calibration: pd.DataFrame,
    holdout: pd.DataFrame,
    metrics: dict[str, Any],
) -> None:
    """Write every file of the model's folder and check the config loads with the server's loader."""
    directory.mkdir(parents=True, exist_ok=True)
    inputs = list(recipe.features.inputs)
    ids = list(recipe.id_columns)
    calibration[ids + inputs].to_parquet(directory / "calibration.parquet", **PARQUET_OPTIONS)
    holdout_columns = ids + inputs + list(recipe.extra_columns) + [recipe.features.label]
    holdout[holdout_columns].to_parquet(directory / "holdout.parquet", **PARQUET_OPTIONS)
    onnx.save_model(model, directory / "model.onnx")
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=False) + "\n")
    # What the server checks before serving the file (server/model_integrity.py).
    config = config | {
        "integrity": {
            "model_sha256": file_sha256(directory / "model.onnx"),
            "holdout_roc_auc": metrics["holdout_metrics"]["roc_auc"],
        }
    }
    header = (
        f"# {recipe.name}: written by `riskserve models build`; edit thresholds here, rebuild for data.\n"
    )
    (directory / "config.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False, width=110))
    load_model_config(directory)  # the file must load exactly as the server will load it
