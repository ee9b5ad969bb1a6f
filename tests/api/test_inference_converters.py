"""Open Inference Protocol tensors <-> feature columns, and the metadata a client reads first."""

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from server.api.inference_converters import TensorLayout, model_config, model_metadata, request_columns
from server.config.model_config import load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.runtime.errors import InvalidInputError


@pytest.fixture(scope="module")
def config():
    return load_model_config(BUNDLED_MODELS_DIR / "fraud").model_copy(update={"output_name": "fraud_risk"})


def _request(config, rows: int = 2, **overrides) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=config.name, **overrides)
    for spec in config.inputs:
        tensor = request.inputs.add(name=spec.name, shape=[rows, 1])
        if spec.dtype == "float32":
            tensor.datatype = "FP32"
            tensor.contents.fp32_contents.extend([1.0] * rows)
        else:
            tensor.datatype = "BYTES"
            tensor.contents.bytes_contents.extend([spec.categories[0].encode()] * rows)
    return request


def test_metadata_and_config_name_the_configured_output(config):
    assert [o.name for o in model_metadata(config).outputs] == ["fraud_risk", "decision"]
    assert [o.name for o in model_config(config).config.output] == ["fraud_risk", "decision"]


def test_requested_output_must_be_the_configured_one(config):
    request = _request(config)
    request.outputs.add(name="fraud_risk")
    columns, rows = request_columns(request, TensorLayout.of(config), 16, config)
    assert rows == 2 and set(columns) == set(config.feature_names)
    assert np.array_equal(columns["amount"], np.array([1.0, 1.0], dtype=np.float32))
    wrong = _request(config)
    wrong.outputs.add(name="probabilities")
    with pytest.raises(InvalidInputError, match=r"outputs\[probabilities\].*available: fraud_risk, decision"):
        request_columns(wrong, TensorLayout.of(config), 16, config)


def test_rows_beyond_the_limit_are_refused_naming_it(config):
    with pytest.raises(InvalidInputError, match="3 rows, at most 2"):
        request_columns(_request(config, rows=3), TensorLayout.of(config), 2, config)


def test_unknown_input_and_wrong_datatype_are_named(config):
    request = _request(config)
    request.inputs.add(name="shoe_size", datatype="FP32", shape=[2, 1])
    with pytest.raises(InvalidInputError, match=r"inputs\[shoe_size\]: unknown input"):
        request_columns(request, TensorLayout.of(config), 16, config)
    request = _request(config)
    request.inputs[0].datatype = "INT64"
    with pytest.raises(InvalidInputError, match=r"datatype: 'INT64', expected FP32"):
        request_columns(request, TensorLayout.of(config), 16, config)
