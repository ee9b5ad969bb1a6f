"""grpc.health.v1 status of the whole server (""), of each service, of each model (`model/<name>`), and the
process's liveness (`liveness`).

The server and its services are SERVING once the process accepts calls (models loaded, gated and warmed)
and, with `strict_readiness` (the default, as Triton does), only while every configured model serves; a
drain sets them NOT_SERVING again. `model/<name>` is SERVING while that model can answer (not given up,
not stalled). `liveness` is what the liveness probe asks: SERVING from the start and through a drain,
NOT_SERVING only while the watchdog (server/app/watchdog.py) finds a model stalled, so the orchestrator
restarts a wedged process and never a draining one. An event loop that does not answer cannot say so: the
probe's own timeout is the signal then.
"""

from grpc_health.v1 import health, health_pb2
from tritonclient.grpc import service_pb2

from server.api.gen.riskserve.v1 import scoring_pb2

SERVICE_NAMES = (
    "",
    scoring_pb2.DESCRIPTOR.services_by_name["FraudScoring"].full_name,
    scoring_pb2.DESCRIPTOR.services_by_name["CreditScoring"].full_name,
    service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)
MODEL_SERVICE_PREFIX = "model/"
LIVENESS_SERVICE = "liveness"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthState:
    """NOT_SERVING until the models are loaded, gated and warmed; NOT_SERVING again once a drain starts.
    `liveness` apart: NOT_SERVING only while a model is stalled."""

    def __init__(self, strict_readiness: bool = True) -> None:
        self.servicer = health.aio.HealthServicer()
        self.strict_readiness = strict_readiness
        self.accepting = False  # the process takes calls (after loading, before a drain)
        self.models: dict[str, bool] = {}  # model -> it serves
        self.stalled: set[str] = set()  # models the watchdog found making no progress

    @property
    def serving(self) -> bool:
        """What the server-wide status says: accepting, and (strictly) every configured model serving."""
        return self.accepting and (not self.strict_readiness or all(self._serves(m) for m in self.models))

    @property
    def live(self) -> bool:
        return not self.stalled

    def _serves(self, model: str) -> bool:
        return self.models.get(model, False) and model not in self.stalled

    async def set_serving(self, serving: bool) -> None:
        """The process starts (True) or stops (False, a drain) accepting calls."""
        self.accepting = serving
        await self._publish()

    async def set_model(self, name: str, serving: bool) -> None:
        self.models[name] = serving
        await self._publish()

    async def set_stalled(self, name: str, stalled: bool) -> None:
        """The watchdog found model `name` stalled (True) or making progress again (False)."""
        (self.stalled.add if stalled else self.stalled.discard)(name)
        await self._publish()

    async def _publish(self) -> None:
        status = _SERVING if self.serving else _NOT_SERVING
        for name in SERVICE_NAMES:
            await self.servicer.set(name, status)
        for model in self.models:
            await self.servicer.set(
                MODEL_SERVICE_PREFIX + model,
                _SERVING if self._serves(model) and self.accepting else _NOT_SERVING,
            )
        await self.servicer.set(LIVENESS_SERVICE, _SERVING if self.live else _NOT_SERVING)
