"""Listening on a port: one clear error when the gRPC or metrics address cannot be taken.

gRPC reports a failed bind only as RuntimeError("Failed to bind to address ..."), and the metrics server as
MetricsPortError; both become a ListenError whose message is the one line `riskserve serve` prints:
`cannot listen on 127.0.0.1:50051: address already in use (another riskserve?); choose another --port ...`.
"""

import errno
import os
import socket

from server.config.settings import ServerSettings
from server.metrics import MetricsHttpServer, MetricsPortError, ServingMetrics, start_metrics_http_server
from server.metrics.http_server import MetricsTls


class ListenError(RuntimeError):
    """An address the server needs cannot be listened on (startup failed)."""

    def __init__(self, host: str, port: int, code: int | None, flag: str) -> None:
        self.host, self.port, self.errno = host, port, code
        super().__init__(listen_error_message(host, port, code, flag))


def listen_error_message(host: str, port: int, code: int | None, flag: str) -> str:
    """One line naming the address, the reason and what to do."""
    if code == errno.EADDRINUSE:
        return (
            f"cannot listen on {host}:{port}: address already in use (another riskserve?); "
            f"choose another {flag} or stop the process using it"
        )
    reason = os.strerror(code).lower() if code else "bind failed"
    return f"cannot listen on {host}:{port}: {reason}; check --host and {flag}"


def probe_bind(host: str, port: int) -> tuple[tuple, int | None]:
    """Try binding host:port as gRPC does (SO_REUSEADDR, no SO_REUSEPORT). Returns the address's
    (family, type, proto, sockaddr), with sockaddr's port 0 resolved when the bind worked, and the errno
    why it failed (None if it worked)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        return (socket.AF_INET, socket.SOCK_STREAM, 0, (host, port)), errno.EADDRNOTAVAIL
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = probe.getsockname()
    except OSError as exc:
        return (family, kind, proto, address), exc.errno
    finally:
        probe.close()
    return (family, kind, proto, address), None


def bind_errno(host: str, port: int) -> int | None:
    """Why host:port cannot be bound, found by trying it (as gRPC does, with SO_REUSEADDR); None if it can."""
    return probe_bind(host, port)[1]


def metrics_tls(settings: ServerSettings) -> MetricsTls | None:
    """HTTPS for /metrics from the `metrics_tls_*` settings (checked together by the settings model)."""
    if settings.metrics_tls_cert_file is None or settings.metrics_tls_key_file is None:
        return None
    return MetricsTls(
        settings.metrics_tls_cert_file, settings.metrics_tls_key_file, settings.metrics_tls_client_ca_file
    )


def start_metrics(metrics: ServingMetrics, settings: ServerSettings) -> MetricsHttpServer:
    """The /metrics endpoint at `metrics_host:metrics_port` (HTTPS with `metrics_tls_*`); ListenError if
    its address is taken."""
    host, port = settings.metrics_host, settings.metrics_port
    try:
        return start_metrics_http_server(metrics, host, port, metrics_tls(settings))
    except MetricsPortError as exc:
        cause = exc.__cause__
        code = cause.errno if isinstance(cause, OSError) else None
        raise ListenError(host, port, code, "--metrics-port") from exc
