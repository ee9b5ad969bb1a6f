"""The /metrics HTTP endpoint: prometheus_client's WSGI app on a threaded server of its own, plain HTTP or,
with a certificate, HTTPS (optionally requiring client certificates signed by a given CA).

prometheus_client's own `start_http_server(certfile=...)` shakes hands inside `accept()`, on the one thread
that accepts every scrape: a client that connects and says nothing would stall them all. Here the
handshake happens on each connection's own thread, which gives up on a silent client after
CLIENT_TIMEOUT_S, and a failed handshake is one DEBUG line, not a traceback on stderr.
"""

import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

from server.metrics.serving_metrics import ServingMetrics

log = logging.getLogger(__name__)

CLIENT_TIMEOUT_S = 10.0


class MetricsPortError(RuntimeError):
    """The metrics HTTP server could not listen on the requested address."""


@dataclass(frozen=True)
class MetricsTls:
    """HTTPS for /metrics: the server's certificate and key; with `client_ca_file`, scrapers must present a
    certificate it signed."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=str(self.client_ca_file))
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass
class MetricsHttpServer:
    """A running exporter; `close()` stops it and frees the port."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread
    tls: MetricsTls | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _QuietHandler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT_S  # a silent client is dropped (StreamRequestHandler applies it)

    def log_message(self, format: str, *args: object) -> None:
        """No access log (prometheus_client's handler keeps quiet too)."""


def start_metrics_http_server(
    metrics: ServingMetrics, host: str = "127.0.0.1", port: int = 9100, tls: MetricsTls | None = None
) -> MetricsHttpServer:
    """Serve `metrics` in the Prometheus text format at http(s)://host:port/metrics (port 0: any free
    port)."""

    class Server(ThreadingWSGIServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            log.debug("event=metrics_request_failed client=%s", client_address, exc_info=True)

    try:
        Server.address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server = make_server(host, port, make_wsgi_app(metrics.registry), Server, handler_class=_QuietHandler)
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror}; choose another "
            f"metrics port or stop the process using it"
        ) from exc
    if tls is not None:
        server.socket = tls.context().wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    thread = threading.Thread(target=server.serve_forever, name="riskserve-metrics-http", daemon=True)
    thread.start()
    bound_port = server.server_address[1]
    scheme = "http" if tls is None else ("https+client_cert" if tls.client_ca_file else "https")
    log.info("event=metrics_http_started host=%s port=%d scheme=%s", host, bound_port, scheme)
    return MetricsHttpServer(host, bound_port, server, thread, tls)
