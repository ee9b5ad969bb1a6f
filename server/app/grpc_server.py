"""The grpc.aio server: domain API, Open Inference Protocol, health and (unless turned off) reflection on
one port; every handler registered through server/app/request_guard.py (unparseable requests refused with
INVALID_ARGUMENT, status messages made safe)."""

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from server.api.calls import Calls
from server.api.domain_api import CreditScoringServicer, FraudScoringServicer, add_fraud_scoring
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.api.inference_servicer import InferenceServicer
from server.app.concurrency_limit import Admission
from server.app.health import HealthState
from server.app.listen import ListenError, bind_errno
from server.app.request_guard import RequestGuard
from server.config.errors import ConfigError
from server.config.settings import ServerSettings
from server.runtime.repository import ModelRepository


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS (mutual with a client CA) from the settings, which checked the files together."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _pending_limit(limit: int) -> list[tuple[str, int]]:
    """gRPC core's bound on calls received but not yet requested by Python, a memory bound only: no random
    early drop below it (soft = hard limit). Core ends calls beyond it CANCELLED; shedding below it is
    Python's, by queueing delay (server/app/concurrency_limit.py, docs/server.md)."""
    if limit <= 0:
        return []
    return [
        ("grpc.server.max_pending_requests", limit),
        ("grpc.server.max_pending_requests_hard_limit", limit),
    ]


def _connection_age(age_s: float, grace_s: float) -> list[tuple[str, int]]:
    """Close each client connection after `age_s` (GOAWAY: calls on it get `grace_s` more), so clients
    reconnect and re-resolve DNS, finding replicas added since (docs/deployment.md). 0: never."""
    if age_s <= 0:
        return []
    return [
        ("grpc.max_connection_age_ms", max(1, round(age_s * 1000))),
        ("grpc.max_connection_age_grace_ms", round(grace_s * 1000)),
    ]


def server_options(settings: ServerSettings, *, reuse_port: bool = False) -> list[tuple[str, int]]:
    """The gRPC core channel arguments the server is built with."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        *_pending_limit(settings.max_pending_rpcs),
        *_connection_age(settings.max_connection_age_s, settings.max_connection_age_grace_s),
    ]


def admission_of(settings: ServerSettings) -> Admission:
    """The door's limits from the settings (server/app/concurrency_limit.py)."""
    return Admission(
        settings.max_concurrent_rpcs,
        settings.max_concurrent_batch_rpcs,
        max_active=settings.max_active_rpcs,
        target_s=settings.queue_delay_target_ms / 1e3,
        interval_s=settings.queue_delay_interval_ms / 1e3,
        max_streams=settings.max_concurrent_streams,
        max_streams_per_client=settings.max_streams_per_client,
        max_request_bytes=settings.max_request_bytes_in_flight,
    )


def build_server(
    settings: ServerSettings,
    repository: ModelRepository,
    calls: Calls,
    health: HealthState,
    *,
    reuse_port: bool = False,
) -> tuple[grpc.aio.Server, int, Admission]:
    """Create the server with every service registered and bind its port.

    Returns (server, bound port, the admission `calls` now uses: server/app/concurrency_limit.py);
    ListenError if the address cannot be bound.

    `reuse_port` (worker processes of one supervisor): every worker binds the same port with SO_REUSEPORT
    and the kernel spreads connections over them. Otherwise a second server on the port is an error, not a
    silent split."""
    admission = calls.admission = admission_of(settings)  # checked in the handlers' call scopes
    server = grpc.aio.server(options=server_options(settings, reuse_port=reuse_port))
    _register(settings, repository, calls, health, RequestGuard(calls).registrar(server))
    credentials = server_credentials(settings)
    host, address = settings.host, settings.grpc_address
    if not reuse_port and settings.port != 0 and (code := bind_errno(host, settings.port)) is not None:
        raise ListenError(host, settings.port, code, "--port")  # before gRPC logs its own bind error
    try:
        port = (
            server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        )
    except RuntimeError as exc:  # gRPC says only "Failed to bind to address ...": find out why
        code = bind_errno(host, settings.port)
        if code is None and credentials is not None:  # the address is fine: the credentials are not
            raise ConfigError(
                f"tls_cert_file / tls_key_file: gRPC could not listen with {settings.tls_cert_file} and "
                f"{settings.tls_key_file} (the port is free); check that they are a PEM certificate chain "
                "and its private key"
            ) from exc
        raise ListenError(host, settings.port, code, "--port") from exc
    return server, port, admission


def _register(
    settings: ServerSettings, repository: ModelRepository, calls: Calls, health: HealthState, server
) -> None:
    """Every service on `server` (the guard's registrar); reflection unless `settings.reflection` is off."""
    add_fraud_scoring(FraudScoringServicer(repository, calls), server)  # ScoreBatch parsed once admitted
    scoring_pb2_grpc.add_CreditScoringServicer_to_server(CreditScoringServicer(repository, calls), server)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(repository, calls, lambda: health.serving, lambda: health.accepting), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    if not settings.reflection:
        return
    names = (
        scoring_pb2.DESCRIPTOR.services_by_name["FraudScoring"].full_name,
        scoring_pb2.DESCRIPTOR.services_by_name["CreditScoring"].full_name,
        service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    # the asyncio servicer, named: enable_server_reflection picks it by the server's type, not the registrar's
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(names), server
    )
