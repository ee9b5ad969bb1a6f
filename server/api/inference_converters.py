"""Open Inference Protocol (KServe v2 / Triton) tensors <-> feature columns, and model metadata/config.

A model's tensors are its ONNX inputs, by their ONNX names: `[N, 1]` (or `[N]`) for a one-feature input,
`[N, F]` for an input whose config lists F columns; datatypes FP32, FP64, INT64, BOOL, BYTES by the input's
dtype. Values arrive either in `raw_input_contents` (one little-endian buffer per input, in `inputs` order;
BYTES as 4-byte-length-prefixed strings, Triton's serialization) or in each tensor's typed `contents`,
never both. Every tensor name, datatype and shape is checked here; the values are then checked by the same
FeatureSchema the domain API uses. A one-row request of a model with float32 and string inputs goes
straight into tensors as plain Python values (`one_row_feeds`, as the domain API's unary `Score`); anything
else, or anything wrong, takes the general path, which reports it. Answers carry the model's output and the
decision per row.
"""

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tritonclient.grpc import model_config_pb2, service_pb2

from server.config.model_config import InputSpec, ModelConfig
from server.model_io import Feeds
from server.runtime.errors import InvalidInputError
from server.runtime.features import FeatureSchema, FieldNamer
from server.runtime.prediction import Prediction

PLATFORM = "onnxruntime_onnx"
DECISION_OUTPUT = "decision"  # INT32 per row: 1 approve, 2 review, 3 decline (riskserve.v1.Decision)
WIRE_DTYPE = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "bool": "BOOL", "string": "BYTES"}
_CONFIG_DTYPE = {
    "float32": model_config_pb2.TYPE_FP32,
    "float64": model_config_pb2.TYPE_FP64,
    "int64": model_config_pb2.TYPE_INT64,
    "bool": model_config_pb2.TYPE_BOOL,
    "string": model_config_pb2.TYPE_STRING,
}
_RAW_DTYPE = {"float32": "<f4", "float64": "<f8", "int64": "<i8", "bool": "?"}
_CONTENTS = {
    "float32": "fp32_contents",
    "float64": "fp64_contents",
    "int64": "int64_contents",
    "bool": "bool_contents",
    "string": "bytes_contents",
}
_OUTPUT_DTYPE = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64"}
_LENGTH = struct.Struct("<I")
_INT32 = struct.Struct("<i")
_FLOAT32 = struct.Struct("<f").unpack
_ONE_ROW, _ONE = [1, 1], [1]  # the shapes of a one-row tensor of a one-feature input
_UNSET = object()


@dataclass(frozen=True)
class OneRowPlan:
    """Where each tensor of a one-row request goes among `FeatureSchema.one_row_feeds`' plain values, for a
    model whose inputs are all one float32 or string feature (the schema's one-row path)."""

    # ONNX input name -> (wire datatype, index in numbers + strings, {raw BYTES buffer: category} or None)
    slots: dict[str, tuple[str, int, dict[bytes, str] | None]]
    numbers: int  # the first `numbers` values are the schema's numbers, the rest its strings
    outputs: tuple[str, ...]  # the output names a request may ask for

    @classmethod
    def of(cls, config: ModelConfig) -> "OneRowPlan | None":
        schema = FeatureSchema.from_config(config)
        if not schema.takes_one_row_feeds:
            return None
        slots: dict[str, tuple[str, int, dict[bytes, str] | None]] = {
            name: ("FP32", i, None) for i, (name, _, _, _) in enumerate(schema.numeric)
        }
        for i, (name, allowed) in enumerate(schema.categorical, start=len(slots)):
            # a known category's exact BYTES serialization: one dict lookup decodes and checks it
            encoded = {_LENGTH.pack(len(v.encode())) + v.encode(): v for v in allowed}
            slots[name] = ("BYTES", i, encoded)
        return cls(slots, len(schema.numeric), (config.output_name, DECISION_OUTPUT))


@dataclass(frozen=True)
class TensorLayout:
    """How one model's features map onto its Open Inference Protocol tensors (built once per model)."""

    inputs: dict[str, InputSpec]  # ONNX input name -> its config
    namer: FieldNamer  # feature -> `inputs[name][row]`, or `inputs[name][row][column] (feature)`
    # ONNX input name -> (wire datatype, width, raw numpy dtype or None for BYTES, item size, feature names)
    raw: dict[str, tuple[str, int, str | None, int, tuple[str, ...]]]
    feature_count: int
    one_row: OneRowPlan | None  # None: the model's inputs do not suit the one-row path

    @classmethod
    def of(cls, config: ModelConfig) -> "TensorLayout":
        position: dict[str, tuple[str, int | None]] = {}
        for spec in config.inputs:
            for column, feature in enumerate(spec.features):
                position[feature.name] = (spec.onnx_input, column if spec.columns else None)

        def namer(feature: str, row: int | None) -> str:
            tensor, column = position.get(feature, (feature, None))
            if row is None:
                return f"inputs[{tensor}]" if column is None else f"inputs[{tensor}][:, {column}] ({feature})"
            return (
                f"inputs[{tensor}][{row}]"
                if column is None
                else f"inputs[{tensor}][{row}][{column}] ({feature})"
            )

        raw = {
            spec.onnx_input: (
                WIRE_DTYPE[spec.dtype],
                spec.width,
                _RAW_DTYPE.get(spec.dtype),
                np.dtype(_RAW_DTYPE[spec.dtype]).itemsize if spec.dtype in _RAW_DTYPE else 0,
                tuple(f.name for f in spec.features),
            )
            for spec in config.inputs
        }
        count = sum(len(spec.features) for spec in config.inputs)
        inputs = {spec.onnx_input: spec for spec in config.inputs}
        return cls(inputs, namer, raw, count, OneRowPlan.of(config))


def _rows_of(tensor: service_pb2.ModelInferRequest.InferInputTensor, width: int) -> int:
    shape = list(tensor.shape)
    expected = f"[N, {width}]" + (" or [N]" if width == 1 else "")
    if (len(shape) == 2 and shape[1] == width) or (len(shape) == 1 and width == 1):
        if shape[0] < 1:
            raise InvalidInputError(f"inputs[{tensor.name}].shape", f"{shape}: needs at least one row")
        return int(shape[0])
    raise InvalidInputError(f"inputs[{tensor.name}].shape", f"{shape}: expected {expected}")


def _decode_bytes(buffer: bytes, count: int, field: str) -> list[str]:
    uniform = _uniform_strings(buffer, count)
    if uniform is not None:
        return uniform
    values, offset = [], 0
    try:
        for _ in range(count):
            (length,) = _LENGTH.unpack_from(buffer, offset)
            offset += 4
            if offset + length > len(buffer):
                raise struct.error("string runs past the buffer")
            values.append(buffer[offset : offset + length].decode("utf-8"))
            offset += length
    except (struct.error, UnicodeDecodeError) as exc:
        raise InvalidInputError(field, f"malformed BYTES tensor ({exc})") from exc
    if offset != len(buffer):
        raise InvalidInputError(
            field, f"BYTES tensor has {len(buffer) - offset} bytes beyond {count} strings"
        )
    return values


def _uniform_strings(buffer: bytes, count: int) -> list[str] | None:
    """ASCII strings of one length (ISO codes, MCCs, ...) through one numpy record view, or None when the
    lengths differ or a string holds a NUL or non-ASCII byte (the loop then decodes it, or reports what is
    wrong)."""
    if count < 2 or len(buffer) < 4 or len(buffer) % count:
        return None
    width = len(buffer) // count - 4
    first = int.from_bytes(buffer[:4], "little")
    if width < 1 or first != width:
        return None
    records = np.frombuffer(buffer, dtype=np.dtype([("length", "<u4"), ("text", f"S{width}")]))
    if (records["length"] != width).any():
        return None
    raw = np.frombuffer(buffer, dtype=np.uint8).reshape(count, width + 4)[:, 4:]
    if not raw.all() or (raw >= 0x80).any():  # a NUL byte (numpy drops trailing ones), or not ASCII
        return None
    return records["text"].astype(f"U{width}").tolist()  # ASCII: the UTF-8 decoding, in one C loop


def _decode(tensor, raw: bytes | None, dtype: str, count: int) -> np.ndarray | list[str]:
    """The tensor's `count` values, flat, in row-major order."""
    field = f"inputs[{tensor.name}]"
    if dtype == "string":
        if raw is not None:
            return _decode_bytes(raw, count, field)
        values = tensor.contents.bytes_contents
        if len(values) != count:
            raise InvalidInputError(field, f"bytes_contents has {len(values)} values, shape needs {count}")
        try:
            return [v.decode("utf-8") for v in values]
        except UnicodeDecodeError as exc:
            raise InvalidInputError(field, "not valid UTF-8") from exc
    if raw is not None:
        item = np.dtype(_RAW_DTYPE[dtype]).itemsize
        if len(raw) != count * item:
            raise InvalidInputError(
                field, f"raw {WIRE_DTYPE[dtype]} contents hold {len(raw)} bytes, shape needs {count * item}"
            )
        return np.frombuffer(raw, dtype=_RAW_DTYPE[dtype])
    contents = _CONTENTS[dtype]
    values = getattr(tensor.contents, contents)
    if len(values) != count:
        raise InvalidInputError(field, f"{contents} has {len(values)} values, shape needs {count}")
    return np.asarray(values, dtype=np.float64 if dtype != "bool" else np.bool_)


def one_row_feeds(
    request: service_pb2.ModelInferRequest, layout: TensorLayout, schema: FeatureSchema, max_rows: int
) -> Feeds | None:
    """A one-row request straight into tensors: every input once, shaped [1, 1] or [1], its value in
    `raw_input_contents` or typed contents, read as plain Python values and validated by
    `schema.one_row_feeds` (the domain API's unary path). The feeds the general path makes of it, or None
    at anything else (more rows, another model's inputs, a bad or unusual value), which `request_columns`
    and the schema then decode and report as usual."""
    plan = layout.one_row
    inputs = request.inputs
    if plan is None or len(inputs) != len(plan.slots) or max_rows < 1:
        return None
    for output in request.outputs:
        if output.name not in plan.outputs:
            return None
    raw, slots = request.raw_input_contents, plan.slots
    values = [_UNSET] * len(inputs)
    try:
        if raw:
            if len(raw) != len(inputs):
                return None
            for tensor, buffer in zip(inputs, raw, strict=True):
                datatype, slot, encoded = slots[tensor.name]
                shape = tensor.shape
                if (
                    tensor.datatype != datatype
                    or (shape != _ONE_ROW and shape != _ONE)
                    or tensor.HasField("contents")
                ):
                    return None
                # a float32's 4 bytes (struct.error otherwise), or a known category's exact bytes (KeyError)
                values[slot] = _FLOAT32(buffer)[0] if encoded is None else encoded[buffer]
        else:
            for tensor in inputs:
                datatype, slot, encoded = slots[tensor.name]
                shape = tensor.shape
                if tensor.datatype != datatype or (shape != _ONE_ROW and shape != _ONE):
                    return None
                if encoded is None:
                    (values[slot],) = tensor.contents.fp32_contents  # ValueError unless exactly one
                else:
                    (value,) = tensor.contents.bytes_contents
                    values[slot] = value.decode("utf-8")
    except (KeyError, struct.error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    if _UNSET in values:  # an input given twice, so another one missing
        return None
    numbers = plan.numbers
    return schema.one_row_feeds(values[:numbers], values[numbers:])


def request_columns(
    request: service_pb2.ModelInferRequest, layout: TensorLayout, max_rows: int, config: ModelConfig
) -> tuple[dict[str, np.ndarray | list[str]], int]:
    """Decode and shape-check every input tensor -> ({feature: 1-D column}, rows)."""
    fast = _raw_columns(request, layout, max_rows)
    return fast if fast is not None else general_columns(request, layout, max_rows, config)


def general_columns(
    request: service_pb2.ModelInferRequest, layout: TensorLayout, max_rows: int, config: ModelConfig
) -> tuple[dict[str, np.ndarray | list[str]], int]:
    """`request_columns` for any request: every check, every layout (raw or typed, [N] or [N, F])."""
    raw_contents = list(request.raw_input_contents)
    if raw_contents and len(raw_contents) != len(request.inputs):
        raise InvalidInputError(
            "raw_input_contents", f"{len(raw_contents)} buffers for {len(request.inputs)} inputs"
        )
    if raw_contents and any(t.HasField("contents") for t in request.inputs):
        raise InvalidInputError(
            "raw_input_contents", "given together with typed contents: send one or the other"
        )
    available = (config.output_name, DECISION_OUTPUT)
    for name in request.outputs:
        if name.name not in available:
            raise InvalidInputError(
                f"outputs[{name.name}]", f"unknown output; available: {', '.join(available)}"
            )
    columns: dict[str, np.ndarray | list[str]] = {}
    seen: set[str] = set()
    rows: int | None = None
    for i, tensor in enumerate(request.inputs):
        spec = layout.inputs.get(tensor.name)
        if spec is None:
            raise InvalidInputError(
                f"inputs[{tensor.name}]",
                f"unknown input; model {config.name} takes {', '.join(layout.inputs)}",
            )
        if tensor.name in seen:
            raise InvalidInputError(f"inputs[{tensor.name}]", "given twice")
        seen.add(tensor.name)
        # the layout's datatype, width and feature names: InputSpec's are properties, computed on each read
        expected, width, _, _, features = layout.raw[tensor.name]
        if tensor.datatype != expected:
            raise InvalidInputError(
                f"inputs[{tensor.name}].datatype", f"'{tensor.datatype}', expected {expected}"
            )
        tensor_rows = _rows_of(tensor, width)
        if rows is None:
            rows = tensor_rows
        elif tensor_rows != rows:
            raise InvalidInputError(
                f"inputs[{tensor.name}].shape", f"{tensor_rows} rows, other inputs have {rows}"
            )
        if tensor_rows > max_rows:
            raise InvalidInputError(f"inputs[{tensor.name}].shape", f"{tensor_rows} rows, at most {max_rows}")
        values = _decode(tensor, raw_contents[i] if raw_contents else None, spec.dtype, tensor_rows * width)
        if width == 1:
            columns[features[0]] = values
        else:
            matrix = np.asarray(values).reshape(tensor_rows, width)
            for column, feature in enumerate(features):
                columns[feature] = matrix[:, column]
    if rows is None:
        raise InvalidInputError("inputs", "no input tensors")
    missing = [name for name in layout.inputs if name not in seen]
    if missing:
        raise InvalidInputError(
            f"inputs[{missing[0]}]", f"missing; model {config.name} needs {', '.join(layout.inputs)}"
        )
    return columns, rows


def _raw_columns(
    request: service_pb2.ModelInferRequest, layout: TensorLayout, max_rows: int
) -> tuple[dict[str, np.ndarray | list[str]], int] | None:
    """The common request, decoded with the fewest message reads: every input once, in
    `raw_input_contents`, shaped [N, width] with the expected datatype, no typed contents, no outputs
    named. The same columns as the general path, or None for anything else (the general path then decodes
    or reports it)."""
    inputs, raw = request.inputs, request.raw_input_contents
    if len(inputs) != len(layout.raw) or len(raw) != len(inputs) or len(request.outputs):
        return None
    shape = inputs[0].shape
    rows = shape[0] if len(shape) == 2 else 0
    if not 1 <= rows <= max_rows:
        return None
    columns: dict[str, np.ndarray | list[str]] = {}
    specs = layout.raw
    for tensor, buffer in zip(inputs, raw, strict=True):
        spec = specs.get(tensor.name)
        if spec is None:
            return None
        datatype, width, dtype, itemsize, features = spec
        if tensor.datatype != datatype or tensor.shape != [rows, width] or tensor.HasField("contents"):
            return None
        count = rows * width
        if dtype is None:
            if count == 1 and len(buffer) >= 4 and int.from_bytes(buffer[:4], "little") == len(buffer) - 4:
                try:
                    values = [buffer[4:].decode("utf-8")]
                except UnicodeDecodeError:
                    return None
            else:
                values = _decode_bytes(buffer, count, f"inputs[{tensor.name}]")
        elif len(buffer) == count * itemsize:
            values = np.frombuffer(buffer, dtype=dtype)
        else:
            return None
        if width == 1:
            columns[features[0]] = values
        else:
            matrix = np.asarray(values).reshape(rows, width)
            for column, feature in enumerate(features):
                columns[feature] = matrix[:, column]
    if len(columns) != layout.feature_count:  # an input given twice, another missing
        return None
    return columns, rows


def infer_response(
    request: service_pb2.ModelInferRequest,
    config: ModelConfig,
    facts_precision: str,
    facts_verdict: str,
    prediction: Prediction,
    latency_us: int,
) -> service_pb2.ModelInferResponse:
    """The answer: the model's output and the decision per row (or the outputs the request names), with the
    served model's facts (precision, gate_verdict) and the server latency as response parameters, as the
    domain API's ModelRef carries them."""
    outputs = prediction.outputs
    wire = _OUTPUT_DTYPE.get(outputs.dtype, "FP32")
    little = "<f8" if wire == "FP64" else "<f4"
    rows = len(prediction.decisions)
    if not request.outputs:  # both outputs: a copy of the model's prepared answer, then this call's fields
        one_row = rows == 1  # one row: the template holds the shapes too
        template = _template(config, facts_precision, facts_verdict, wire, outputs.shape if one_row else None)
        response = service_pb2.ModelInferResponse()
        response.CopyFrom(template)
        response.id = request.id
        response.parameters["server_latency_us"].int64_param = latency_us
        if one_row:
            decisions = _INT32.pack(prediction.decisions[0])
        else:
            decisions = np.asarray(prediction.decisions, dtype="<i4").tobytes()
            model_output, decision_output = response.outputs
            model_output.shape.extend(outputs.shape)
            decision_output.shape.extend((rows, 1))
        response.raw_output_contents.extend(
            (np.ascontiguousarray(outputs, dtype=little).tobytes(), decisions)
        )
        return response
    decisions = np.asarray(prediction.decisions, dtype="<i4").tobytes()
    response = service_pb2.ModelInferResponse(
        model_name=config.name, model_version=config.version, id=request.id
    )
    response.parameters["precision"].string_param = facts_precision
    response.parameters["gate_verdict"].string_param = facts_verdict
    response.parameters["server_latency_us"].int64_param = latency_us
    wanted = {o.name for o in request.outputs}
    if config.output_name in wanted:
        output = response.outputs.add(name=config.output_name, datatype=wire)
        output.shape.extend(outputs.shape)
        response.raw_output_contents.append(np.ascontiguousarray(outputs, dtype=little).tobytes())
    if DECISION_OUTPUT in wanted:
        decision_output = response.outputs.add(name=DECISION_OUTPUT, datatype="INT32")
        decision_output.shape.extend((rows, 1))
        response.raw_output_contents.append(decisions)
    return response


_TEMPLATES: dict[tuple, service_pb2.ModelInferResponse] = {}


def _template(
    config: ModelConfig, precision: str, verdict: str, wire: str, one_row_shape: tuple[int, ...] | None
) -> service_pb2.ModelInferResponse:
    """The parts of a model's full answer that every call shares (built once per model and facts): the
    same fields, in the same order, as the general path sets them; with the outputs' shapes too for a
    one-row answer whose model output has `one_row_shape`."""
    key = (config.name, config.version, config.output_name, precision, verdict, wire, one_row_shape)
    template = _TEMPLATES.get(key)
    if template is None:
        template = service_pb2.ModelInferResponse(model_name=config.name, model_version=config.version)
        template.parameters["precision"].string_param = precision
        template.parameters["gate_verdict"].string_param = verdict
        model_output = template.outputs.add(name=config.output_name, datatype=wire)
        decision_output = template.outputs.add(name=DECISION_OUTPUT, datatype="INT32")
        if one_row_shape is not None:
            model_output.shape.extend(one_row_shape)
            decision_output.shape.extend((1, 1))
        _TEMPLATES[key] = template
    return template


def _tensor_shapes(config: ModelConfig) -> Sequence[tuple[str, str, int]]:
    return [(spec.onnx_input, spec.dtype, spec.width) for spec in config.inputs]


def model_metadata(config: ModelConfig, output_columns: int = 2) -> service_pb2.ModelMetadataResponse:
    tensor = service_pb2.ModelMetadataResponse.TensorMetadata
    return service_pb2.ModelMetadataResponse(
        name=config.name,
        versions=[config.version],
        platform=PLATFORM,
        inputs=[tensor(name=n, datatype=WIRE_DTYPE[d], shape=[-1, w]) for n, d, w in _tensor_shapes(config)],
        outputs=[
            tensor(name=config.output_name, datatype="FP32", shape=[-1, output_columns]),
            tensor(name=DECISION_OUTPUT, datatype="INT32", shape=[-1, 1]),
        ],
    )


def model_config(config: ModelConfig, output_columns: int = 2) -> service_pb2.ModelConfigResponse:
    """Triton's model configuration: batching on (dims exclude the batch dimension)."""
    batching = config.batching
    return service_pb2.ModelConfigResponse(
        config=model_config_pb2.ModelConfig(
            name=config.name,
            platform=PLATFORM,
            backend="onnxruntime",
            max_batch_size=batching.max_batch_size,
            input=[
                model_config_pb2.ModelInput(name=n, data_type=_CONFIG_DTYPE[d], dims=[w])
                for n, d, w in _tensor_shapes(config)
            ],
            output=[
                model_config_pb2.ModelOutput(
                    name=config.output_name, data_type=model_config_pb2.TYPE_FP32, dims=[output_columns]
                ),
                model_config_pb2.ModelOutput(
                    name=DECISION_OUTPUT, data_type=model_config_pb2.TYPE_INT32, dims=[1]
                ),
            ],
            dynamic_batching=model_config_pb2.ModelDynamicBatching(
                max_queue_delay_microseconds=batching.max_queue_delay_us
            ),
        )
    )
