"""Small fraud-like models for the quantization tests: sklearn pipeline -> skl2onnx, plus data and config.

The graph has the bundled models' shape: one [N, 1] input per raw feature (float32 and string), a Scaler
and OneHotEncoder front end, a ReLU MLP, `probabilities` [N, 2] with zipmap off.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from server.config.model_config import ModelConfig, load_model_config

FLOAT_FEATURES = ("amount", "velocity", "distance", "hour", "tenure", "balance")
CHANNELS = ("pos", "ecom", "atm")
LABEL = "is_fraud"
# Layer names after pre-processing: ORT's optimizer fuses each MatMul + Add into a Gemm named like this.
FIRST_LAYER, SECOND_LAYER = "MatMul/MatMulAddFusion", "MatMul1/MatMulAddFusion"
THIRD_LAYER = "MatMul2/MatMulAddFusion"  # the output head of the two-hidden-layer models


@dataclass(frozen=True)
class ModelSpec:
    hidden: tuple[int, ...] = (64, 32)  # large enough for INT8 to be smaller than FP32 (objective size)
    outlier_feature: bool = False  # `amount` gets a few values thousands of standard deviations out
    rows: int = 5000
    seed: int = 0


def make_frame(rows: int, seed: int, outlier_feature: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=rows).astype(np.float32) for name in FLOAT_FEATURES})
    if outlier_feature:
        # Production data the model never saw in training: 1 % of amounts are absurd (cents booked as
        # units, say), ~1000 standard deviations out after the scaler. The model ignores `amount` (see
        # train_onnx), so FP32 scores are unaffected, but a per-tensor 8-bit range for the first layer's input
        # now spans [-4, 1000] and every informative feature rounds to one or two levels.
        spikes = rng.random(rows) < 0.01
        frame.loc[spikes, "amount"] = np.float32(1000.0)
    frame["channel"] = rng.choice(CHANNELS, rows)
    logit = (
        1.6 * frame.velocity
        - 1.2 * frame.distance
        + 0.8 * frame.hour * frame.tenure
        + 0.9 * (frame.channel == "ecom")
        - 3.5
    )
    frame[LABEL] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return frame


def train_onnx(frame: pd.DataFrame, spec: ModelSpec) -> bytes:
    features = frame.drop(columns=[LABEL])
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), list(FLOAT_FEATURES)),
                        ("encode", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
                    ]
                ),
            ),
            ("mlp", MLPClassifier(spec.hidden, alpha=1e-3, max_iter=60, random_state=spec.seed)),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a toy model need not converge
        pipeline.fit(features, frame[LABEL])
    if spec.outlier_feature:
        pipeline.named_steps["mlp"].coefs_[0][FLOAT_FEATURES.index("amount"), :] = 0.0
    types = [(name, FloatTensorType([None, 1])) for name in FLOAT_FEATURES]
    types.append(("channel", StringTensorType([None, 1])))
    onnx_model = convert_sklearn(
        pipeline,
        initial_types=types,
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return onnx_model.SerializeToString()


def config_dict(quantization: dict | None = None) -> dict:
    inputs = [{"name": name, "dtype": "float32"} for name in FLOAT_FEATURES]
    inputs.append({"name": "channel", "dtype": "string", "categories": list(CHANNELS)})
    # No timing by default (fast tests): objective size is the one shown without it.
    quantization = {"speed_seconds": 0.0, "objective": "size", **(quantization or {})}
    return {
        "name": "toyfraud",
        "version": "1.0.0",
        "task": "fraud",
        "label_column": LABEL,
        "inputs": inputs,
        "decision": {"review": 0.5, "decline": 0.8},
        "quantization": quantization,
    }


def write_model_folder(
    folder: Path,
    spec: ModelSpec = ModelSpec(),
    quantization: dict | None = None,
    calibration_rows: int = 1000,
) -> ModelConfig:
    """Train, convert and write model.onnx, calibration.parquet, holdout.parquet and config.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = make_frame(spec.rows, spec.seed, outlier_feature=False)
    (folder / "model.onnx").write_bytes(train_onnx(frame, spec))
    frame = make_frame(spec.rows, spec.seed, spec.outlier_feature)
    frame.iloc[:calibration_rows].drop(columns=[LABEL]).to_parquet(folder / "calibration.parquet")
    # 8000 rows: 4000 for the gate, enough for intervals narrower than the 0.5 % flip-rate budget.
    holdout = make_frame(8000, spec.seed + 1, spec.outlier_feature)
    holdout.to_parquet(folder / "holdout.parquet")
    (folder / "config.yaml").write_text(yaml.safe_dump(config_dict(quantization)))
    return load_model_config(folder)
