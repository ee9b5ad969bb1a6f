"""Models as users bring them to `riskserve models init`, built in the tests: a scikit-learn pipeline
(skl2onnx, zipmap off), a PyTorch-style MLP (one [N, F] float input, written with the onnx helper API the
way torch.onnx.export lays out nn.Sequential(Linear, ReLU, Linear, Sigmoid)) and a LightGBM ensemble
(onnxmltools). Each comes with a labelled data file of its own feature names, ids and a time column."""

import warnings
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper
from sklearn.neural_network import MLPClassifier

NUMBERS = ("velocity_6h", "merchant_risk", "account_age_days", "ip_distance_km")
DEVICES = ("android", "ios", "web")
LABEL = "chargeback"
ID, TIME = "event_id", "event_time"


def labelled_frame(rows: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Own feature names (none is a riskserve.v1.Transaction field), a string column, an id, a time."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            ID: [f"evt-{i:06d}" for i in range(rows)],
            TIME: 1_750_000_000 + rng.permutation(rows) * 60,
            "velocity_6h": rng.poisson(2.0, rows).astype(float),
            "merchant_risk": rng.uniform(0.0, 1.0, rows),
            "account_age_days": rng.exponential(400.0, rows),
            "ip_distance_km": rng.exponential(30.0, rows),
            "device_type": rng.choice(DEVICES, rows),
        }
    )
    logit = (
        0.7 * frame.velocity_6h
        + 2.5 * frame.merchant_risk
        - 0.004 * frame.account_age_days
        + 1.2 * (frame.device_type == "web")
        - 4.0
    )
    frame[LABEL] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return frame


def sklearn_pipeline_onnx(frame: pd.DataFrame) -> bytes:
    """StandardScaler + OneHotEncoder + MLPClassifier, one [N, 1] input per column, zipmap off."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), list(NUMBERS)),
                        ("encode", OneHotEncoder(handle_unknown="ignore"), ["device_type"]),
                    ]
                ),
            ),
            ("mlp", MLPClassifier((16,), alpha=1e-3, max_iter=200, random_state=0)),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        pipeline.fit(frame[[*NUMBERS, "device_type"]], frame[LABEL])
    types = [(n, FloatTensorType([None, 1])) for n in NUMBERS] + [
        ("device_type", StringTensorType([None, 1]))
    ]
    model = convert_sklearn(
        pipeline,
        initial_types=types,
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return model.SerializeToString()


def torch_style_mlp_onnx(
    features: np.ndarray, labels: np.ndarray, hidden: int = 16, sigmoid: bool = True
) -> bytes:
    """An MLP as torch.onnx.export writes nn.Sequential(Linear(F, H), ReLU(), Linear(H, 1), Sigmoid()):
    input "input" float [N, F], Gemm (transB=1, weights [out, in]) + Relu + Gemm + Sigmoid, output "output"
    [N, 1] (`sigmoid=False`: the logit, as a model exported without its final activation). The weights come
    from a scikit-learn MLP fitted on standardized data, the standardization folded into the first layer."""
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((hidden,), alpha=1e-3, max_iter=300, random_state=0)
        mlp.fit((features - mean) / scale, labels)
    w1 = (mlp.coefs_[0] / scale[:, None]).T.astype(np.float32)  # [H, F]
    b1 = (mlp.intercepts_[0] - (mean / scale) @ mlp.coefs_[0]).astype(np.float32)
    w2, b2 = mlp.coefs_[1].T.astype(np.float32), mlp.intercepts_[1].astype(np.float32)
    width = features.shape[1]
    nodes = [
        helper.make_node("Gemm", ["input", "0.weight", "0.bias"], ["/0/Gemm_output_0"], "/0/Gemm", transB=1),
        helper.make_node("Relu", ["/0/Gemm_output_0"], ["/1/Relu_output_0"], "/1/Relu"),
        helper.make_node(
            "Gemm", ["/1/Relu_output_0", "2.weight", "2.bias"], ["/2/Gemm_output_0"], "/2/Gemm", transB=1
        ),
        helper.make_node(
            "Sigmoid" if sigmoid else "Identity", ["/2/Gemm_output_0"], ["output"], "/3/Sigmoid"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", width])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", 1])],
        [
            numpy_helper.from_array(w1, "0.weight"),
            numpy_helper.from_array(b1, "0.bias"),
            numpy_helper.from_array(w2, "2.weight"),
            numpy_helper.from_array(b2, "2.bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def lightgbm_onnx(features: np.ndarray, labels: np.ndarray) -> bytes:
    """LightGBM via onnxmltools: TreeEnsembleClassifier, input "input" float [N, F], probabilities [N, 2]."""
    import lightgbm
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1, random_state=0)
    booster.fit(features, labels)
    model = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[("input", FloatTensorType([None, features.shape[1]]))],
        zipmap=False,
        target_opset=15,
    )
    return model.SerializeToString()


def zipmap_onnx(frame: pd.DataFrame) -> bytes:
    """A logistic regression exported with skl2onnx's default ZipMap output (a sequence of maps)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(frame[["velocity_6h"]], frame[LABEL])
    onnx_model = convert_sklearn(
        model,
        initial_types=[("velocity_6h", FloatTensorType([None, 1]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return onnx_model.SerializeToString()


def write(path: Path, payload: bytes | pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    elif path.suffix == ".csv":
        payload.to_csv(path, index=False)
    else:
        payload.to_parquet(path, index=False)
    return path
