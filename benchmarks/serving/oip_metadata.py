"""The Open Inference Protocol's metadata RPCs for the floor servers, so perf_analyzer can drive them: the
bundled fraud model's metadata and config, as riskserve answers them (server/api/inference_converters.py)."""

from functools import cache

from tritonclient.grpc import service_pb2

from server.api.inference_converters import model_config, model_metadata
from server.config.model_config import ModelConfig, load_model_config
from server.config.paths import BUNDLED_MODELS_DIR


@cache
def fraud_config() -> ModelConfig:
    return load_model_config(BUNDLED_MODELS_DIR / "fraud")


class MetadataMixin:
    """ServerLive / ServerMetadata / ServerReady / ModelReady / ModelMetadata / ModelConfig."""

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(name=type(self).__name__, version="0")

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=True)

    async def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=request.name == fraud_config().name)

    async def ModelMetadata(self, request, context):
        return model_metadata(fraud_config())

    async def ModelConfig(self, request, context):
        return model_config(fraud_config())
