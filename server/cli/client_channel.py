"""How the client commands (`riskserve score`, `riskserve health`) reach a server: one settings type
(ClientSettings, from the server's settings plus the client flags) and one channel factory. The rules are
CONNECTION_HELP, which both commands' --help show.

Light on purpose: `python -m server.cli.health_cmd` (exec probes) imports this; no pandas, no model code.
"""

import argparse
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from server.config.errors import ConfigError
from server.config.settings import ServerSettings, load_settings

CONNECTION_HELP = """\
The server's own settings (--config YAML, RISKSERVE_* variables, as for serve) say where and how to
connect, so on the server's host or in its container no flag is needed:
- target: --target, else the server's host (127.0.0.1 if it listens on every address) and port;
- with tls_cert_file set: TLS, trusting the server's certificate itself unless --tls-ca is given;
- with tls_client_ca_file set (mTLS): the server's certificate and key as the client certificate, unless
  --tls-cert/--tls-key are given;
- --tls-server-name defaults to the first DNS name (else the CN) of the server's certificate.
"""
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")  # listening everywhere: dial the loopback address


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every client command takes: where the server is and how to speak TLS to it."""
    parser.add_argument("--target", default=None, help="host:port of the server (default: from its settings)")
    parser.add_argument("--config", type=Path, default=None, help="the server's settings YAML, as for serve")
    parser.add_argument("--tls-ca", type=Path, default=None, help="CA to trust (default: the server's cert)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="client certificate (PEM) for mTLS")
    parser.add_argument("--tls-key", type=Path, default=None, help="client private key (PEM) for mTLS")
    parser.add_argument("--tls-server-name", default=None, help="name to verify in the server certificate")


@dataclass(frozen=True)
class TlsClient:
    """What a TLS client trusts, what it presents, which name it expects (None: gRPC's defaults)."""

    root: Path | None
    cert: Path | None
    key: Path | None
    server_name: str | None

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials from the PEM files; ConfigError naming a file that cannot be read."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.root, "TLS CA"),
            private_key=_read(self.key, "TLS client key"),
            certificate_chain=_read(self.cert, "TLS client certificate"),
        )

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


@dataclass(frozen=True)
class ClientSettings:
    """Where a client command dials and how: plaintext when `tls` is None."""

    target: str
    tls: TlsClient | None
    server: ServerSettings  # the server's settings these were derived from (e.g. its models_dir)

    @classmethod
    def from_server(
        cls,
        server: ServerSettings,
        target: str | None = None,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_server_name: str | None = None,
    ) -> "ClientSettings":
        """The server's settings plus the client flags (each overrides what the settings imply)."""
        return cls(
            target=target or default_target(server),
            tls=_tls_client(server, tls_ca, tls_cert, tls_key, tls_server_name),
            server=server,
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ClientSettings":
        """From the flags of `add_arguments`; ConfigError for unreadable settings or bad flags."""
        return cls.from_server(
            load_settings(args.config),
            args.target,
            args.tls_ca,
            args.tls_cert,
            args.tls_key,
            args.tls_server_name,
        )

    def channel(self) -> grpc.Channel:
        """A new channel to the server (close it, or use it as a context manager)."""
        if self.tls is None:
            return grpc.insecure_channel(self.target)
        return grpc.secure_channel(self.target, self.tls.credentials(), options=self.tls.options())


def default_target(server: ServerSettings) -> str:
    """host:port of the server as its settings say: its host (the loopback address when it listens on
    every address) and its port."""
    if server.port == 0:
        raise ConfigError("the server's port is 0 (a free one picked at startup): pass --target HOST:PORT")
    host = "127.0.0.1" if server.host in WILDCARD_HOSTS else server.host
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        host = f"[{host}]"
    return f"{host}:{server.port}"


def certificate_name(path: Path) -> str | None:
    """The first DNS name (else the common name) of a PEM certificate; None if it cannot be read."""
    try:  # CPython's own PEM decoder (no extra dependency); private, hence the broad fallback
        decoded = ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]
    except Exception:
        return None
    names = [value for kind, value in decoded.get("subjectAltName", ()) if kind == "DNS"]
    common = [value for rdn in decoded.get("subject", ()) for key, value in rdn if key == "commonName"]
    return (names or common or [None])[0]


def _tls_client(
    server: ServerSettings,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_server_name: str | None,
) -> TlsClient | None:
    """TLS from the flags, defaulting from the server's settings; None for plaintext (server TLS off)."""
    if server.tls_cert_file is None and all(f is None for f in (tls_ca, tls_cert, tls_key, tls_server_name)):
        return None
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key must be given together")
    root = tls_ca or server.tls_cert_file
    cert, key = tls_cert, tls_key
    if cert is None and server.tls_client_ca_file is not None:  # mTLS: the server's own pair as client
        cert, key = server.tls_cert_file, server.tls_key_file
    name = tls_server_name
    if name is None and server.tls_cert_file is not None:  # 127.0.0.1 is rarely in a pod's certificate
        name = certificate_name(server.tls_cert_file)
    return TlsClient(root, cert, key, name)


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc
