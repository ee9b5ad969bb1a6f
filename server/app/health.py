"""grpc.health.v1 status of the whole server ("") and of each service, moved together."""

from grpc_health.v1 import health, health_pb2
from tritonclient.grpc import service_pb2

from server.api.gen.riskserve.v1 import scoring_pb2

SERVICE_NAMES = (
    "",
    scoring_pb2.DESCRIPTOR.services_by_name["FraudScoring"].full_name,
    scoring_pb2.DESCRIPTOR.services_by_name["CreditScoring"].full_name,
    service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)


class HealthState:
    """NOT_SERVING until every model is loaded, gated and warmed; NOT_SERVING again once a drain starts."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()
        self.serving = False

    async def set_serving(self, serving: bool) -> None:
        self.serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in SERVICE_NAMES:
            await self.servicer.set(name, status)
