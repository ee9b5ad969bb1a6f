"""Convert a fitted pipeline to ONNX (one input per raw feature) and score frames with ONNX Runtime."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from sklearn.pipeline import Pipeline

from modelbuild.errors import ModelBuildError
from modelbuild.features import FeatureSet
from modelbuild.preprocessing import register_log1p_converter

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
OUTPUT_NAMES = ("label", "probabilities")


def export_onnx(pipeline: Pipeline, features: FeatureSet, name: str, version: str) -> onnx.ModelProto:
    """The ONNX graph of `pipeline`: inputs [None, 1] per feature, outputs `label` and `probabilities`."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    register_log1p_converter()
    initial_types = [(n, FloatTensorType([None, 1])) for n in features.floats]
    initial_types += [(n, StringTensorType([None, 1])) for n in features.categorical]
    model = convert_sklearn(
        pipeline,
        name=name,
        initial_types=initial_types,
        target_opset=TARGET_OPSET,
        options={id(pipeline.named_steps["mlp"]): {"zipmap": False}},
    )
    outputs = tuple(o.name for o in model.graph.output)
    if outputs != OUTPUT_NAMES:
        raise ModelBuildError(f"exported graph has outputs {outputs}, expected {OUTPUT_NAMES}")
    model.doc_string = f"riskserve bundled model {name} {version}"
    onnx.helper.set_model_props(model, {"riskserve.name": name, "riskserve.version": version})
    onnx.checker.check_model(model)
    return model


def onnx_feeds(frame: pd.DataFrame, features: FeatureSet) -> dict[str, np.ndarray]:
    """ONNX Runtime feeds for `frame`: one [N, 1] array per input."""
    feeds = {n: frame[n].to_numpy(np.float32).reshape(-1, 1) for n in features.floats}
    feeds |= {n: frame[n].astype(str).to_numpy(dtype=object).reshape(-1, 1) for n in features.categorical}
    return feeds


def onnx_session(model: onnx.ModelProto | Path | bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = (
        model.SerializeToString()
        if isinstance(model, onnx.ModelProto)
        else str(model)
        if isinstance(model, Path)
        else model
    )
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def onnx_positive_scores(
    session: ort.InferenceSession, frame: pd.DataFrame, features: FeatureSet, batch_rows: int = 8192
) -> np.ndarray:
    """Positive-class probabilities (column 1 of `probabilities`) for every row of `frame`."""
    scores = []
    for start in range(0, len(frame), batch_rows):
        chunk = frame.iloc[start : start + batch_rows]
        scores.append(session.run(["probabilities"], onnx_feeds(chunk, features))[0][:, 1])
    return np.concatenate(scores)
