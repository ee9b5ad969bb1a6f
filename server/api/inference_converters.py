"""Open Inference Protocol (KServe v2 / Triton) tensors <-> feature columns, and model metadata/config.

Inputs arrive either in `raw_input_contents` (one little-endian buffer per input, in `inputs` order;
BYTES tensors as 4-byte-length-prefixed strings, Triton's serialization) or in each tensor's typed
`contents`. Shapes are [N, 1] or [N]. Every tensor name, dtype and shape is checked here; the values are
then checked by the same FeatureSchema the domain API uses.
"""

import struct

import numpy as np
from tritonclient.grpc import model_config_pb2, service_pb2

from server.config.model_config import ModelConfig
from server.runtime.errors import InvalidInputError
from server.runtime.model_runtime import ModelRuntime

PLATFORM = "onnxruntime_onnx"
_WIRE_DTYPE = {"float32": "FP32", "string": "BYTES"}
_CONFIG_DTYPE = {"float32": model_config_pb2.TYPE_FP32, "string": model_config_pb2.TYPE_STRING}
_LENGTH = struct.Struct("<I")


def tensor_namer(name: str, row: int | None) -> str:
    return f"inputs[{name}]" if row is None else f"inputs[{name}][{row}]"


def _rows_of(tensor: service_pb2.ModelInferRequest.InferInputTensor) -> int:
    shape = list(tensor.shape)
    if (len(shape) == 2 and shape[1] == 1) or len(shape) == 1:
        if shape[0] < 1:
            raise InvalidInputError(f"inputs[{tensor.name}].shape", f"{shape}: needs at least one row")
        return int(shape[0])
    raise InvalidInputError(f"inputs[{tensor.name}].shape", f"{shape}: expected [N, 1] or [N]")


def _decode_bytes(buffer: bytes, rows: int, field: str) -> list[str]:
    values, offset = [], 0
    try:
        for _ in range(rows):
            (length,) = _LENGTH.unpack_from(buffer, offset)
            offset += 4
            if offset + length > len(buffer):
                raise struct.error("string runs past the buffer")
            values.append(buffer[offset : offset + length].decode("utf-8"))
            offset += length
    except (struct.error, UnicodeDecodeError) as exc:
        raise InvalidInputError(field, f"malformed BYTES tensor ({exc})") from exc
    if offset != len(buffer):
        raise InvalidInputError(field, f"BYTES tensor has {len(buffer) - offset} bytes beyond {rows} strings")
    return values


def _decode(tensor, raw: bytes | None, dtype: str, rows: int) -> np.ndarray | list[str]:
    field = f"inputs[{tensor.name}]"
    if dtype == "float32":
        if raw is not None:
            if len(raw) != rows * 4:
                raise InvalidInputError(
                    field, f"raw FP32 contents hold {len(raw)} bytes, shape needs {rows * 4}"
                )
            return np.frombuffer(raw, dtype="<f4")
        values = tensor.contents.fp32_contents
        if len(values) != rows:
            raise InvalidInputError(field, f"fp32_contents has {len(values)} values, shape needs {rows}")
        return np.asarray(values, dtype=np.float32)
    if raw is not None:
        return _decode_bytes(raw, rows, field)
    values = tensor.contents.bytes_contents
    if len(values) != rows:
        raise InvalidInputError(field, f"bytes_contents has {len(values)} values, shape needs {rows}")
    try:
        return [v.decode("utf-8") for v in values]
    except UnicodeDecodeError as exc:
        raise InvalidInputError(field, "not valid UTF-8") from exc


def request_columns(
    request: service_pb2.ModelInferRequest, config: ModelConfig, max_rows: int
) -> tuple[dict[str, np.ndarray | list[str]], int]:
    """Decode and shape-check every input tensor -> ({input: 1-D column}, rows)."""
    dtypes = {spec.name: spec.dtype for spec in config.inputs}
    raw_contents = list(request.raw_input_contents)
    if raw_contents and len(raw_contents) != len(request.inputs):
        raise InvalidInputError(
            "raw_input_contents", f"{len(raw_contents)} buffers for {len(request.inputs)} inputs"
        )
    for name in request.outputs:
        if name.name != config.output_name:
            raise InvalidInputError(
                f"outputs[{name.name}]", f"unknown output; available: {config.output_name}"
            )
    columns: dict[str, np.ndarray | list[str]] = {}
    rows: int | None = None
    for i, tensor in enumerate(request.inputs):
        if tensor.name not in dtypes:
            raise InvalidInputError(
                f"inputs[{tensor.name}]", f"unknown input; model {config.name} takes {', '.join(dtypes)}"
            )
        if tensor.name in columns:
            raise InvalidInputError(f"inputs[{tensor.name}]", "given twice")
        expected = _WIRE_DTYPE[dtypes[tensor.name]]
        if tensor.datatype != expected:
            raise InvalidInputError(
                f"inputs[{tensor.name}].datatype", f"'{tensor.datatype}', expected {expected}"
            )
        tensor_rows = _rows_of(tensor)
        if rows is None:
            rows = tensor_rows
        elif tensor_rows != rows:
            raise InvalidInputError(
                f"inputs[{tensor.name}].shape", f"{tensor_rows} rows, other inputs have {rows}"
            )
        if tensor_rows > max_rows:
            raise InvalidInputError(f"inputs[{tensor.name}].shape", f"{tensor_rows} rows, at most {max_rows}")
        columns[tensor.name] = _decode(
            tensor, raw_contents[i] if raw_contents else None, dtypes[tensor.name], tensor_rows
        )
    if rows is None:
        raise InvalidInputError("inputs", "no input tensors")
    return columns, rows


def infer_response(
    request: service_pb2.ModelInferRequest,
    runtime: ModelRuntime,
    probabilities: np.ndarray,
    latency_us: int,
) -> service_pb2.ModelInferResponse:
    """The answer, with the served model's facts (precision, gate_verdict) and the server latency as
    response parameters, as the domain API's ModelRef carries them."""
    config, facts = runtime.config, runtime.facts
    response = service_pb2.ModelInferResponse(
        model_name=config.name, model_version=config.version, id=request.id
    )
    response.parameters["precision"].string_param = facts.precision
    response.parameters["gate_verdict"].string_param = facts.gate_verdict
    response.parameters["server_latency_us"].int64_param = latency_us
    output = response.outputs.add(name=config.output_name, datatype="FP32")
    output.shape.extend(probabilities.shape)
    response.raw_output_contents.append(np.ascontiguousarray(probabilities, dtype="<f4").tobytes())
    return response


def model_metadata(config: ModelConfig) -> service_pb2.ModelMetadataResponse:
    tensor = service_pb2.ModelMetadataResponse.TensorMetadata
    return service_pb2.ModelMetadataResponse(
        name=config.name,
        versions=[config.version],
        platform=PLATFORM,
        inputs=[tensor(name=s.name, datatype=_WIRE_DTYPE[s.dtype], shape=[-1, 1]) for s in config.inputs],
        outputs=[tensor(name=config.output_name, datatype="FP32", shape=[-1, 2])],
    )


def model_config(config: ModelConfig) -> service_pb2.ModelConfigResponse:
    """Triton's model configuration: batching on (dims exclude the batch dimension)."""
    batching = config.batching
    return service_pb2.ModelConfigResponse(
        config=model_config_pb2.ModelConfig(
            name=config.name,
            platform=PLATFORM,
            backend="onnxruntime",
            max_batch_size=batching.max_batch_size,
            input=[
                model_config_pb2.ModelInput(name=s.name, data_type=_CONFIG_DTYPE[s.dtype], dims=[1])
                for s in config.inputs
            ],
            output=[
                model_config_pb2.ModelOutput(
                    name=config.output_name, data_type=model_config_pb2.TYPE_FP32, dims=[2]
                )
            ],
            dynamic_batching=model_config_pb2.ModelDynamicBatching(
                max_queue_delay_microseconds=batching.max_queue_delay_us
            ),
        )
    )
