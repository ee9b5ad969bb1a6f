"""The exported graph takes the raw named features and agrees with the sklearn pipeline (real ORT session)."""

import numpy as np
import onnx
import pytest

from modelbuild.credit_applications import CreditApplicationConfig, generate_applications
from modelbuild.features import CREDIT_FEATURES, FRAUD_FEATURES, credit_vocabulary, fraud_vocabulary
from modelbuild.onnx_export import export_onnx, onnx_positive_scores, onnx_session
from modelbuild.training import MlpSettings, fit_pipeline, positive_scores
from modelbuild.transaction_stream import TransactionStreamConfig, generate_transactions

SMALL_MLP = MlpSettings((16, 8), alpha=1e-3, max_iter=10, early_stopping=False)


def _fraud_frame():
    return generate_transactions(TransactionStreamConfig(rows=20_000, fraud_rate=0.02, seed=1))


def _credit_frame():
    return generate_applications(CreditApplicationConfig(rows=5_000, seed=1))


CASES = {
    "fraud": (_fraud_frame, FRAUD_FEATURES, fraud_vocabulary),
    "credit": (_credit_frame, CREDIT_FEATURES, credit_vocabulary),
}


@pytest.fixture(scope="module", params=list(CASES))
def exported(request):
    make_frame, features, vocabulary = CASES[request.param]
    frame = make_frame()
    train, test = frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2 :].reset_index(drop=True)
    pipeline = fit_pipeline(train, features, vocabulary(), SMALL_MLP, seed=0)
    model = export_onnx(pipeline, features, request.param, "test")
    return pipeline, model, features, test


def test_inputs_are_the_raw_named_features(exported):
    _, model, features, _ = exported
    graph_inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert list(graph_inputs) == list(features.inputs)
    for name, tensor in graph_inputs.items():
        expected = onnx.TensorProto.STRING if name in features.categorical else onnx.TensorProto.FLOAT
        assert tensor.elem_type == expected, name
        dims = tensor.shape.dim
        assert len(dims) == 2 and not dims[0].HasField("dim_value") and dims[1].dim_value == 1, name
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17


def test_onnx_probabilities_match_sklearn(exported):
    pipeline, model, features, test = exported
    onnx_scores = onnx_positive_scores(onnx_session(model), test, features)
    np.testing.assert_allclose(onnx_scores, positive_scores(pipeline, test, features), atol=1e-5, rtol=0)


def test_unknown_categories_score_like_sklearn_ignore(exported):
    pipeline, model, features, test = exported
    odd = test.head(50).copy()
    for name in features.categorical:
        odd[name] = "never_seen"
    odd[features.floats[0]] = 1e6  # far outside the training range: still finite, still in agreement
    onnx_scores = onnx_positive_scores(onnx_session(model), odd, features)
    assert np.isfinite(onnx_scores).all()
    np.testing.assert_allclose(onnx_scores, positive_scores(pipeline, odd, features), atol=1e-5, rtol=0)


def test_the_log1p_converter_runs_in_the_graph(exported):
    _, model, _, _ = exported
    assert "Log" in {node.op_type for node in model.graph.node}
