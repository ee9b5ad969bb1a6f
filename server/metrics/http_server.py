"""The /metrics HTTP endpoint: prometheus_client's own WSGI server on a port of its own."""

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from server.metrics.serving_metrics import ServingMetrics

log = logging.getLogger(__name__)


class MetricsPortError(RuntimeError):
    """The metrics HTTP server could not listen on the requested address."""


@dataclass
class MetricsHttpServer:
    """A running exporter; `close()` stops it and frees the port."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_http_server(
    metrics: ServingMetrics, host: str = "127.0.0.1", port: int = 9100
) -> MetricsHttpServer:
    """Serve `metrics` in the Prometheus text format at http://host:port/metrics (port 0: any free port)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror}; choose another "
            f"metrics port or stop the process using it"
        ) from exc
    bound_port = server.server_address[1]
    log.info("event=metrics_http_started host=%s port=%d", host, bound_port)
    return MetricsHttpServer(host, bound_port, server, thread)
