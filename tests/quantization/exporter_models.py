"""Models as common exporters emit them, built in the tests from one synthetic data set: skl2onnx pipelines
(FeatureVectorizer, Concat with a wide one-hot encoding, Normalizer), a graph shaped like torch.onnx.export's
output, a LightGBM model through onnxmltools, and the committed tf2onnx export of a Keras model
(data/keras_mlp.onnx, made by data/make_keras_model.py where TensorFlow installs)."""

import warnings
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import yaml
from onnx import TensorProto, helper, numpy_helper
from sklearn.compose import ColumnTransformer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, OneHotEncoder, StandardScaler

from server.config.model_config import ModelConfig, load_model_config

FEATURES = tuple(f"x{i}" for i in range(12))
LABEL = "label"
MERCHANTS = tuple(f"m{i:03d}" for i in range(160))  # wide enough for the one-hot -> gather fold
DATA_DIR = Path(__file__).parent / "data"


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """Twelve numeric features of different scales and a 160-category merchant; a nonlinear risk label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {name: (rng.normal(size=rows) * (1 + i) + i).astype(np.float32) for i, name in enumerate(FEATURES)}
    )
    frame["merchant"] = rng.choice(MERCHANTS, rows)
    merchant_risk = (frame.merchant.str[1:].astype(int) % 7 == 0) * 1.2
    z = [(frame[name] - i) / (1 + i) for i, name in enumerate(FEATURES)]
    logit = 1.5 * z[0] - 1.2 * z[1] + 0.8 * z[2] * z[3] + 0.6 * np.abs(z[4]) + merchant_risk - 2.0
    frame[LABEL] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame


def _fit(estimator, frame: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        return estimator.fit(frame.drop(columns=[LABEL]), frame[LABEL])


def skl2onnx_feature_vectorizer(frame: pd.DataFrame) -> onnx.ModelProto:
    """Pipeline(StandardScaler, MLP) over 12 [N, 1] inputs: skl2onnx joins them with a FeatureVectorizer."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    numeric = frame[[*FEATURES, LABEL]]
    pipeline = _fit(
        Pipeline([("s", StandardScaler()), ("m", MLPClassifier((64, 32), max_iter=80, random_state=0))]),
        numeric,
    )
    types = [(name, FloatTensorType([None, 1])) for name in FEATURES]
    return convert_sklearn(
        pipeline,
        initial_types=types,
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )


def skl2onnx_concat_onehot(frame: pd.DataFrame) -> onnx.ModelProto:
    """ColumnTransformer(StandardScaler, OneHotEncoder over 160 merchants) -> MLP: Scaler, OneHotEncoder,
    Concat and Cast in front of the first MatMul."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    prepare = ColumnTransformer(
        [
            ("scale", StandardScaler(), list(FEATURES)),
            ("encode", OneHotEncoder(handle_unknown="ignore"), ["merchant"]),
        ]
    )
    pipeline = _fit(
        Pipeline([("p", prepare), ("m", MLPClassifier((64, 32), max_iter=80, random_state=0))]), frame
    )
    types = [(name, FloatTensorType([None, 1])) for name in FEATURES] + [
        ("merchant", StringTensorType([None, 1]))
    ]
    return convert_sklearn(
        pipeline,
        initial_types=types,
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )


def skl2onnx_normalizer(frame: pd.DataFrame) -> onnx.ModelProto:
    """Pipeline(Normalizer, MLP) over 12 [N, 1] inputs: FeatureVectorizer -> Normalizer -> MatMul."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    numeric = frame[[*FEATURES, LABEL]]
    pipeline = _fit(
        Pipeline([("n", Normalizer()), ("m", MLPClassifier((64, 32), max_iter=80, random_state=0))]), numeric
    )
    types = [(name, FloatTensorType([None, 1])) for name in FEATURES]
    return convert_sklearn(
        pipeline,
        initial_types=types,
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )


def torch_style(frame: pd.DataFrame, activation: str, head: str, dense: str) -> onnx.ModelProto:
    """What torch.onnx.export writes for nn.Sequential(Linear, act, Linear, act, Linear[, Sigmoid]): one
    [N, F] float input `input`, Gemm (transB=1, weights [out, in]) or MatMul + Add per Linear, Relu, Gelu or
    LeakyRelu, and a [N, 1] output `probabilities` (Sigmoid) or `logits`. Weights from a ReLU MLP trained
    on standardized features (the scaling folded into the first Linear, as a trained network would be)."""
    numeric = frame[[*FEATURES, LABEL]]
    scaler = StandardScaler().fit(numeric[list(FEATURES)])
    mlp = _fit(
        MLPClassifier((64, 32), max_iter=80, random_state=0),
        numeric.assign(
            **{name: scaler.transform(numeric[list(FEATURES)])[:, i] for i, name in enumerate(FEATURES)}
        ),
    )
    weights = [w.astype(np.float64) for w in mlp.coefs_]
    biases = [b.astype(np.float64) for b in mlp.intercepts_]
    biases[0] = biases[0] - (scaler.mean_ / scaler.scale_) @ weights[0]
    weights[0] = weights[0] / scaler.scale_[:, None]
    nodes, inits, x = [], [], "input"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        name = f"/layers.{2 * i}"
        out = f"{name}/Gemm_output_0"
        if dense == "gemm":
            inits += [numpy_helper.from_array(w.T.astype(np.float32), f"layers.{2 * i}.weight")]
            inits += [numpy_helper.from_array(b.astype(np.float32), f"layers.{2 * i}.bias")]
            nodes.append(
                helper.make_node(
                    "Gemm",
                    [x, f"layers.{2 * i}.weight", f"layers.{2 * i}.bias"],
                    [out],
                    name=f"{name}/Gemm",
                    transB=1,
                )
            )
        else:
            inits += [numpy_helper.from_array(w.astype(np.float32), f"onnx::MatMul_{i}")]
            inits += [numpy_helper.from_array(b.astype(np.float32), f"layers.{2 * i}.bias")]
            nodes.append(
                helper.make_node(
                    "MatMul", [x, f"onnx::MatMul_{i}"], [f"{name}/MatMul_output_0"], name=f"{name}/MatMul"
                )
            )
            nodes.append(
                helper.make_node(
                    "Add", [f"{name}/MatMul_output_0", f"layers.{2 * i}.bias"], [out], name=f"{name}/Add"
                )
            )
        x = out
        if i < len(weights) - 1:
            act = f"/layers.{2 * i + 1}/{activation}"
            attrs = {"alpha": 0.01} if activation == "LeakyRelu" else {}
            nodes.append(helper.make_node(activation, [x], [f"{act}_output_0"], name=act, **attrs))
            x = f"{act}_output_0"
    output = "probabilities" if head == "sigmoid" else "logits"
    if head == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", [x], [output], name="/Sigmoid"))
    else:
        nodes.append(helper.make_node("Identity", [x], [output], name="/Identity"))
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", len(FEATURES)])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="pytorch")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def lightgbm_onnxmltools(frame: pd.DataFrame) -> onnx.ModelProto:
    """A LightGBM classifier through onnxmltools: TreeEnsembleClassifier, nothing to quantize."""
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1)
    model.fit(frame[list(FEATURES)].to_numpy(), frame[LABEL])
    return convert_lightgbm(
        model,
        initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
        zipmap=False,
        target_opset=15,
    )


def keras_tf2onnx() -> onnx.ModelProto:
    """The committed tf2onnx export of a Keras MLP (data/make_keras_model.py)."""
    return onnx.load(str(DATA_DIR / "keras_mlp.onnx"))


def write_folder(
    folder: Path,
    model: onnx.ModelProto,
    *,
    matrix_input: str | None = None,
    output: str = "probabilities",
    categorical: bool = False,
    holdout_rows: int = 8000,
    quantization: dict | None = None,
    decision: dict | None = None,
) -> ModelConfig:
    """model.onnx, calibration and holdout files from make_frame, and a config whose inputs match the graph:
    one [N, 1] input per feature, or one [N, F] input `matrix_input` with the features as its columns."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    columns = [*FEATURES, *(["merchant"] if categorical else [])]
    make_frame(2000, 1)[columns].to_parquet(folder / "calibration.parquet")
    make_frame(holdout_rows, 2)[[*columns, LABEL]].to_parquet(folder / "holdout.parquet")
    if matrix_input:
        inputs = [{"name": matrix_input, "dtype": "float32", "columns": [{"name": n} for n in FEATURES]}]
    else:
        inputs = [{"name": name, "dtype": "float32"} for name in FEATURES]
    if categorical:
        inputs.append({"name": "merchant", "dtype": "string", "categories": list(MERCHANTS)})
    config = {
        "name": folder.name.replace("_", "-"),
        "version": "1",
        "task": "binary",
        "label_column": LABEL,
        "output_name": output,
        "inputs": inputs,
        "decision": decision or {"review": 0.3, "decline": 0.6},
        "quantization": {"speed_seconds": 0.0, "objective": "size", **(quantization or {})},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return load_model_config(folder)
