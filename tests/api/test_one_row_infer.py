"""ModelInfer's one-row path (`one_row_feeds`) against the general path (`request_columns`, then the schema's
validation): whatever the one-row path accepts, the general path accepts too, into bit-identical tensors;
whatever it declines, the general path decodes or reports (so every error is the general path's)."""

import math
import struct

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from server.api.inference_converters import DECISION_OUTPUT, TensorLayout, one_row_feeds, request_columns
from server.config.model_config import ModelConfig, load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.runtime.errors import InvalidInputError
from server.runtime.features import FLOAT32_MAX, FeatureSchema
from tests.e2e.any_models import write_mixed_model
from tests.e2e.model_factory import write_model

MAX_ROWS = 64
WIRE = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "bool": "BOOL", "string": "BYTES"}
RAW = {"float32": "<f", "float64": "<d", "int64": "<q", "bool": "?"}
TYPED = {"float32": "fp32_contents", "float64": "fp64_contents", "int64": "int64_contents"}
TYPED |= {"bool": "bool_contents", "string": "bytes_contents"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, ModelConfig]:
    """The bundled fraud model; one built here like it (float32 and BYTES inputs, other ranges and
    categories); one of float32, float64, int64, bool and BYTES inputs (the one-row path declines it)."""
    root = tmp_path_factory.mktemp("one-row")
    return {
        "bundled": load_model_config(BUNDLED_MODELS_DIR / "fraud"),
        "built": load_model_config(write_model(root / "fraud", "fraud")),
        "mixed": load_model_config(write_mixed_model(root / "mixed")),
    }


def _valid_row(config: ModelConfig) -> dict[str, object]:
    row: dict[str, object] = {}
    for feature in config.features:
        if feature.dtype == "string":
            row[feature.name] = feature.categories[-1]
        elif feature.dtype == "bool":
            row[feature.name] = True
        else:
            low = feature.minimum if feature.minimum is not None else -5.0
            high = feature.maximum if feature.maximum is not None else low + 10.0
            value = low + (high - low) * 0.37
            row[feature.name] = round(value) if feature.dtype == "int64" else value
    return row


def _request(config: ModelConfig, row: dict[str, object], raw: bool = True) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=config.name)
    for feature in config.features:
        value = row[feature.name]
        tensor = request.inputs.add(name=feature.name, datatype=WIRE[feature.dtype], shape=[1, 1])
        if feature.dtype == "string":
            encoded = value.encode() if isinstance(value, str) else value
            if raw:
                request.raw_input_contents.append(struct.pack("<I", len(encoded)) + encoded)
            else:
                tensor.contents.bytes_contents.append(encoded)
        elif raw:
            request.raw_input_contents.append(struct.pack(RAW[feature.dtype], value))
        else:
            getattr(tensor.contents, TYPED[feature.dtype]).append(value)
    return request


def _general(request, config: ModelConfig):
    """The general path's tensors, or its error message."""
    layout = TensorLayout.of(config)
    try:
        columns, rows = request_columns(request, layout, MAX_ROWS, config)
        return FeatureSchema.from_config(config).validate(columns, rows, layout.namer)
    except InvalidInputError as error:
        return str(error)


def _same_feeds(fast: dict, general: dict) -> bool:
    if set(fast) != set(general):
        return False
    for name, array in fast.items():
        other = general[name]
        if array.dtype != other.dtype or array.shape != other.shape:
            return False
        if array.dtype == object and array.tolist() != other.tolist():
            return False
        if array.dtype != object and array.tobytes() != other.tobytes():
            return False
    return True


def _check(request, config: ModelConfig) -> bool:
    """One request through both paths: True when the one-row path took it (identically), False when it
    left it to the general path."""
    fast = one_row_feeds(request, TensorLayout.of(config), FeatureSchema.from_config(config), MAX_ROWS)
    general = _general(request, config)
    if fast is None:
        return False
    assert not isinstance(general, str), f"the one-row path took what the general path refuses: {general}"
    assert _same_feeds(fast, general)
    return True


def _numbers(config: ModelConfig) -> list:
    return [f for f in config.features if f.dtype != "string"]


def _odd_values(feature) -> list[float]:
    """Values at and beyond a feature's edges (some valid, some not) and the float oddities."""
    values = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.4e-45, FLOAT32_MAX, 0.1, 1e15]
    for edge in (feature.minimum, feature.maximum):
        if edge is not None:
            below, above = math.nextafter(edge, -math.inf), math.nextafter(edge, math.inf)
            values += [edge, below, above, edge - 1, edge + 1]
    return values


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_valid_rows_take_the_one_row_path_into_the_general_paths_tensors(models, raw):
    for label in ("bundled", "built"):
        config = models[label]
        assert _check(_request(config, _valid_row(config), raw), config), label
    mixed = models["mixed"]
    assert not _check(_request(mixed, _valid_row(mixed), raw), mixed)  # int64, float64, bool: general path


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_every_number_at_and_beyond_its_range_is_exact_or_left_to_the_general_path(models, raw):
    for config in models.values():
        row = _valid_row(config)
        for feature in _numbers(config):
            for value in _odd_values(feature):
                if feature.dtype == "int64" and not abs(value) < 2**63:
                    continue  # no such int64
                odd = {**row, feature.name: round(value) if feature.dtype == "int64" else value}
                if feature.dtype == "bool":
                    odd[feature.name] = bool(value)
                taken = _check(_request(config, odd, raw), config)
                if not math.isfinite(value):
                    assert not taken, (feature.name, value)


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_unknown_malformed_or_odd_categories_are_left_to_the_general_path(models, raw):
    for config in models.values():
        row = _valid_row(config)
        for feature in (f for f in config.features if f.dtype == "string"):
            known = feature.categories[0]
            for value in ("", known.lower() + "x", known + " ", known.encode() + b"\xff", b"\xc3", "€"):
                taken = _check(_request(config, {**row, feature.name: value}, raw), config)
                assert not taken, (feature.name, value)
            assert _check(_request(config, {**row, feature.name: known}, raw), config) == (
                config is not models["mixed"]
            )


def _variants(config: ModelConfig) -> dict[str, service_pb2.ModelInferRequest]:
    """One-row requests of the valid row, each with one thing changed."""
    valid = _request(config, _valid_row(config))
    numeric = next(i for i, f in enumerate(config.features) if f.dtype != "string")
    string = next(i for i, f in enumerate(config.features) if f.dtype == "string")
    found = {}

    def variant(label: str):
        copy = service_pb2.ModelInferRequest()
        copy.CopyFrom(valid)
        found[label] = copy
        return copy

    variant("shape [1]").inputs[numeric].shape[:] = [1]
    variant("shape [1, 2]").inputs[numeric].shape[:] = [1, 2]
    variant("shape [2, 1]").inputs[numeric].shape[:] = [2, 1]
    variant("shape [1, 1, 1]").inputs[numeric].shape[:] = [1, 1, 1]
    variant("shape []").inputs[numeric].shape[:] = []
    variant("shape [0, 1]").inputs[numeric].shape[:] = [0, 1]
    variant("FP64 datatype").inputs[numeric].datatype = "FP64"
    variant("FP32 datatype of BYTES").inputs[string].datatype = "FP32"
    variant("lower-case datatype").inputs[numeric].datatype = WIRE[config.features[numeric].dtype].lower()
    variant("8 bytes of a number").raw_input_contents[numeric] += b"\x00" * 4
    variant("3 bytes of a number").raw_input_contents[numeric] = b"\x00" * 3
    variant("BYTES length short").raw_input_contents[string] += b"x"
    variant("two strings in one").raw_input_contents[string] *= 2
    variant("typed contents too").inputs[numeric].contents.fp32_contents.append(1.0)
    del variant("a buffer fewer").raw_input_contents[-1]
    variant("a buffer more").raw_input_contents.append(b"\x00" * 4)
    twice = variant("given twice")
    twice.inputs[1].name = twice.inputs[0].name
    twice.inputs[1].datatype = twice.inputs[0].datatype
    twice.raw_input_contents[1] = twice.raw_input_contents[0]
    missing = variant("missing")
    del missing.inputs[numeric]
    del missing.raw_input_contents[numeric]
    extra = variant("unknown input")
    extra.inputs.add(name="shoe_size", datatype="FP32", shape=[1, 1])
    extra.raw_input_contents.append(struct.pack("<f", 42.0))
    variant("no inputs").ClearField("inputs")
    named = variant("both outputs named")
    named.outputs.add(name=config.output_name)
    named.outputs.add(name=DECISION_OUTPUT)
    variant("unknown output").outputs.add(name="shap_values")
    variant("tensor parameters").inputs[numeric].parameters["x"].int64_param = 1
    reordered = variant("reordered")
    pairs = list(zip(reordered.inputs, reordered.raw_input_contents, strict=True))[::-1]
    reordered.ClearField("inputs")
    reordered.ClearField("raw_input_contents")
    for tensor, buffer in pairs:
        reordered.inputs.append(tensor)
        reordered.raw_input_contents.append(buffer)
    typed = _request(config, _valid_row(config), raw=False)
    found["typed: two values"] = copy = service_pb2.ModelInferRequest()
    copy.CopyFrom(typed)
    copy.inputs[numeric].contents.fp32_contents.append(1.0)
    found["typed: no value"] = copy = service_pb2.ModelInferRequest()
    copy.CopyFrom(typed)
    copy.inputs[numeric].ClearField("contents")
    found["typed: two strings"] = copy = service_pb2.ModelInferRequest()
    copy.CopyFrom(typed)
    copy.inputs[string].contents.bytes_contents.append(config.features[string].categories[0].encode())
    return found


TAKEN = {"shape [1]", "both outputs named", "tensor parameters", "reordered"}  # all valid as they are


def test_every_other_shape_layout_or_mix_is_left_to_the_general_path(models):
    for label, config in models.items():
        for name, request in _variants(config).items():
            taken = _check(request, config)
            assert taken == (name in TAKEN and label != "mixed"), (label, name, _general(request, config))


def test_more_rows_and_max_rows_below_one_are_left_to_the_general_path(models):
    config = models["built"]
    request = _request(config, _valid_row(config))
    layout, schema = TensorLayout.of(config), FeatureSchema.from_config(config)
    assert one_row_feeds(request, layout, schema, 0) is None
    two = service_pb2.ModelInferRequest()
    for tensor, buffer in zip(request.inputs, request.raw_input_contents, strict=True):
        two.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=[2, 1])
        two.raw_input_contents.append(buffer * 2)
    assert one_row_feeds(two, layout, schema, MAX_ROWS) is None
    assert not isinstance(_general(two, config), str)
    typed = _request(config, _valid_row(config), raw=False)
    assert np.array_equal(
        one_row_feeds(typed, layout, schema, MAX_ROWS)[config.features[0].name],
        one_row_feeds(request, layout, schema, MAX_ROWS)[config.features[0].name],
    )
