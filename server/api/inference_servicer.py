"""The Open Inference Protocol's thin front door (package `inference`, Triton's generated stubs).

ModelInfer converts tensors to feature columns, or a one-row request straight to tensors
(server/api/inference_converters.py), and calls the same scoring core as the domain API
(ModelRuntime.predict). Errors, drain and metrics: server/api/calls.py.
"""

from collections.abc import Callable

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from server import __version__
from server.api.calls import Calls
from server.api.inference_converters import (
    TensorLayout,
    infer_response,
    model_config,
    model_metadata,
    one_row_feeds,
    request_columns,
)
from server.runtime.model_runtime import ModelRuntime
from server.runtime.repository import ModelRepository, ModelSlot

SERVER_NAME = "riskserve"
EXTENSIONS = ("model_configuration",)


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self,
        repository: ModelRepository,
        calls: Calls,
        is_serving: Callable[[], bool],
        is_accepting: Callable[[], bool],
    ) -> None:
        """`is_serving`: the server is ready (grpc.health.v1 ""); `is_accepting`: it takes calls at all,
        so a model that serves is ready even while another configured model is unavailable."""
        self.repository = repository
        self._routes = repository.routes[None]
        self.calls = calls
        self.is_serving = is_serving
        self.is_accepting = is_accepting
        self._layouts: dict[str, tuple[ModelRuntime, TensorLayout]] = {}

    def _layout(self, runtime: ModelRuntime) -> TensorLayout:
        """The runtime's tensor layout, built once (rebuilt if the repository now serves another runtime)."""
        cached = self._layouts.get(runtime.name)
        if cached is None or cached[0] is not runtime:
            cached = self._layouts[runtime.name] = (runtime, TensorLayout.of(runtime.config))
        return cached[1]

    @staticmethod
    def _runtime(slot: ModelSlot, name: str, version: str) -> ModelRuntime:
        runtime = slot.serving or slot.ready()
        if version and version != runtime.facts.version:
            raise slot.version_error(version)
        return runtime

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=self.is_serving())

    async def ModelReady(self, request, context):
        ready = (
            self.is_accepting()
            and self.repository.is_ready(request.name)
            and (not request.version or request.version == self.repository.get(request.name).config.version)
        )
        return service_pb2.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(
            name=SERVER_NAME, version=__version__, extensions=EXTENSIONS
        )

    async def ModelMetadata(self, request, context):
        slot = self.repository.slot(request.name)
        async with self.calls.unary(context, slot.label, "ModelMetadata", admit=False):
            runtime = self._runtime(slot, request.name, request.version)
            return model_metadata(runtime.config, runtime.output_columns)

    async def ModelConfig(self, request, context):
        slot = self.repository.slot(request.name)
        async with self.calls.unary(context, slot.label, "ModelConfig", admit=False):
            runtime = self._runtime(slot, request.name, request.version)
            return model_config(runtime.config, runtime.output_columns)

    async def ModelInfer(self, request: service_pb2.ModelInferRequest, context: grpc.aio.ServicerContext):
        slot = self._routes.get(request.model_name) or self.repository.slot(request.model_name)
        async with self.calls.unary(context, slot.label, "ModelInfer") as call:
            runtime = self._runtime(slot, request.model_name, request.model_version)
            layout = self._layout(runtime)
            max_rows = runtime.max_request_rows
            feeds = one_row_feeds(request, layout, runtime.schema, max_rows)
            if feeds is None:
                columns, rows = request_columns(request, layout, max_rows, runtime.config)
            else:
                columns, rows = {}, 1
            prediction = call.prediction = await runtime.predict(
                columns, rows, layout.namer, call.deadline, feeds=feeds
            )
            facts = runtime.facts
            return infer_response(
                request, runtime.config, facts.precision, facts.gate_verdict, prediction, call.latency_us()
            )

    async def _not_implemented(self, request, context):
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "riskserve implements the Open Inference Protocol and ModelConfig, not this Triton extension",
        )

    # Triton's repository, shared-memory, statistics, trace, log and streaming extensions: answered cleanly
    # (the generated base class would raise NotImplementedError and log a traceback per call).
    ModelStreamInfer = ModelStatistics = RepositoryIndex = RepositoryModelLoad = _not_implemented
    RepositoryModelUnload = SystemSharedMemoryStatus = SystemSharedMemoryRegister = _not_implemented
    SystemSharedMemoryUnregister = CudaSharedMemoryStatus = CudaSharedMemoryRegister = _not_implemented
    CudaSharedMemoryUnregister = TraceSetting = LogSettings = _not_implemented
