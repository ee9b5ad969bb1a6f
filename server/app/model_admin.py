"""riskserve.v1.ModelAdmin (Reload, ListVersions) on its own gRPC server and port, off by default
(`admin_enabled`). Loopback only unless clients must present a certificate (the settings check it): the
port swaps models, so it is never on the serving port, where any client of the scoring API could reach it.
"""

import grpc

from server.api.domain_api import model_ref
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.app.grpc_server import server_credentials
from server.app.listen import ListenError, bind_errno
from server.app.model_reload import ModelReloader, ReloadOutcome
from server.runtime.echo import echo
from server.runtime.repository import ModelSlot


def version_status(slot: ModelSlot, outcome: ReloadOutcome | None = None) -> scoring_pb2.ModelVersionStatus:
    """One model's line of a ModelVersions answer."""
    status = scoring_pb2.ModelVersionStatus(model=slot.name, outcome=outcome.outcome if outcome else "")
    if slot.serving is not None:
        status.serving.CopyFrom(model_ref(slot.serving.facts))
    if slot.kept_out is not None:
        status.kept_out_version, status.kept_out_reason = slot.kept_out
    return status


class ModelAdminServicer(scoring_pb2_grpc.ModelAdminServicer):
    def __init__(self, reloader: ModelReloader) -> None:
        self.reloader = reloader
        self.slots = reloader.repository.routes[None]

    async def Reload(self, request: scoring_pb2.ReloadRequest, context: grpc.aio.ServicerContext):
        if request.model and request.model not in self.slots:
            configured = ", ".join(self.reloader.models)
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"model '{echo(request.model)}' is not configured (configured: {configured}); a new model "
                "needs a restart, a new version of a configured one does not",
            )
        outcomes = await self.reloader.reload(request.model, trigger="admin")
        return scoring_pb2.ModelVersions(models=[version_status(self.slots[o.model], o) for o in outcomes])

    async def ListVersions(self, request: scoring_pb2.ListVersionsRequest, context: grpc.aio.ServicerContext):
        return scoring_pb2.ModelVersions(models=[version_status(slot) for slot in self.slots.values()])


async def start_admin(reloader: ModelReloader) -> tuple[grpc.aio.Server, int]:
    """The admin server, listening on admin_host:admin_port (with the serving port's TLS, if any).
    ListenError if the address cannot be bound."""
    settings = reloader.settings
    server = grpc.aio.server()
    scoring_pb2_grpc.add_ModelAdminServicer_to_server(ModelAdminServicer(reloader), server)
    host, port = settings.admin_host, settings.admin_port
    if port != 0 and (code := bind_errno(host, port)) is not None:
        raise ListenError(host, port, code, "admin_port")
    credentials = server_credentials(settings)
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    await server.start()
    return server, bound
