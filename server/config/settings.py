"""The serving process's one typed configuration.

Sources, highest priority first: command-line flags > environment variables `RISKSERVE_<FIELD>` >
a YAML file (`--config`) > the defaults below. Every value is validated by pydantic; a bad value fails
at startup with the field (and where it came from) named.
"""

import os
import ssl
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from server.config._base import StrictModel
from server.config.errors import ConfigError
from server.config.paths import default_cache_dir, default_models_dir

ENV_PREFIX = "RISKSERVE_"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class InferenceHandoff(StrEnum):
    AUTO = "auto"  # a lone small request inline (no thread hop), concurrent load on the thread
    THREAD = "thread"  # ORT runs on one batcher thread per model; the event loop never waits on it
    INLINE = "inline"  # ORT runs on the event loop itself (only for tiny models; see docs/server.md)


class LiveDriftPolicy(StrEnum):
    ALERT = "alert"  # export the live INT8-vs-FP32 figures; the alert rules page a human
    SERVE_FP32 = "serve_fp32"  # also switch the model to its FP32 original, as a failed gate would


class EventLoop(StrEnum):
    UVLOOP = "uvloop"  # libuv's loop (uvloop): the loop's own work per call in C, not Python
    ASYNCIO = "asyncio"  # the standard library's selector loop


class LogFormat(StrEnum):
    KEYVALUE = "keyvalue"
    JSON = "json"


TLS_FILE_SETTINGS = (
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "metrics_tls_cert_file",
    "metrics_tls_key_file",
    "metrics_tls_client_ca_file",
)


def check_key_pair(prefix: str, cert: Path, key: Path) -> None:
    """ValueError naming the setting when the certificate or key cannot be read, or do not match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise ValueError(f"{prefix}_key_file: {key} is not the key of {prefix}_cert_file {cert}") from exc
        raise ValueError(
            f"{prefix}_cert_file / {prefix}_key_file: {cert}, {key}: not a PEM certificate and its key "
            f"({exc.reason or exc})"
        ) from exc
    except OSError as exc:
        raise ValueError(f"{prefix}_cert_file / {prefix}_key_file: cannot read: {exc}") from exc


def check_ca_file(setting: str, path: Path) -> None:
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"{setting}: {path}: not a PEM CA certificate ({exc})") from exc


class ServerSettings(StrictModel):
    """Everything `riskserve serve` can be told. Field names double as env var suffixes (upper case)."""

    host: str = Field("127.0.0.1", description="address the gRPC server listens on")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one)")
    metrics_host: str = Field("127.0.0.1", description="address of the Prometheus /metrics endpoint")
    metrics_port: int = Field(9100, ge=0, le=65535, description="Prometheus port (0 picks a free one)")
    models_dir: Path = Field(default_factory=default_models_dir, description="the model repository")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="quantization cache")
    models: tuple[str, ...] = Field((), description="model folders to serve; empty = every folder")
    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="largest gRPC message either way (a 4,096-row request is 0.5-2 MB); gRPC core holds up "
        "to this much per call it is receiving, before Python sees it",
    )
    max_request_rows: int = Field(4096, ge=1, description="rows one call may carry (ScoreBatch, ModelInfer)")
    drain_pause_s: float = Field(5.0, ge=0.0, description="after SIGTERM: still serving, health NOT_SERVING")
    grace_period_s: float = Field(20.0, ge=0.0, description="after the pause: time in-flight calls get")
    intra_op_threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op threads per model")
    inference_handoff: InferenceHandoff = Field(InferenceHandoff.AUTO, description="where ORT runs")
    tls_cert_file: Path | None = Field(None, description="server certificate (PEM); with tls_key_file")
    tls_key_file: Path | None = Field(None, description="server private key (PEM)")
    tls_client_ca_file: Path | None = Field(
        None, description="CA for client certificates (mutual TLS); needs tls_cert_file and tls_key_file"
    )
    metrics_tls_cert_file: Path | None = Field(None, description="serve /metrics over HTTPS: certificate")
    metrics_tls_key_file: Path | None = Field(None, description="its private key (PEM)")
    metrics_tls_client_ca_file: Path | None = Field(
        None, description="/metrics scrapers must present a client certificate signed by this CA"
    )
    reflection: bool = Field(True, description="serve gRPC server reflection (lists the services)")
    debug_inference_delay_ms: float = Field(
        0.0, ge=0.0, description="TEST ONLY: sleep this long in every ONNX Runtime call"
    )
    workers: int = Field(
        1, ge=1, le=64, description="serving processes on one port (SO_REUSEPORT); 1 = a single process"
    )
    metrics_shared_dir: Path | None = Field(
        None, description="workers > 1: directory of per-process metric snapshots (default: a temp dir)"
    )
    max_concurrent_rpcs: int = Field(
        256, ge=0, description="RPCs one process holds; beyond, RESOURCE_EXHAUSTED at once (0: no limit)"
    )
    max_concurrent_batch_rpcs: int = Field(
        4, ge=0, description="ScoreBatch RPCs one process holds; beyond, RESOURCE_EXHAUSTED (0: no limit)"
    )
    max_pending_rpcs: int = Field(
        128, ge=0, description="calls gRPC core holds unrequested; beyond, it cancels them (0: gRPC default)"
    )
    max_connection_age_s: float = Field(
        0.0, ge=0.0, description="close client connections this old (GOAWAY) so clients re-resolve (0: never)"
    )
    max_connection_age_grace_s: float = Field(
        30.0, ge=0.0, description="after max_connection_age_s: time calls on the old connection get"
    )
    strict_readiness: bool = Field(
        True, description="health NOT_SERVING while any configured model is unavailable (as Triton does)"
    )
    exit_on_model_error: bool = Field(
        False, description="a model that fails to load, validate or quantize stops the server (for CI)"
    )
    watchdog_stall_s: float = Field(
        10.0,
        ge=0.0,
        description="a model with work but no finished batch this long: health `liveness` NOT_SERVING; an "
        "event loop silent this long is logged (0: no watchdog)",
    )
    malloc_mmap_threshold_kb: int = Field(
        128,
        ge=0,
        description="glibc malloc: buffers this large (KiB) are mapped and given back to the OS when freed, "
        "so a burst of large requests does not leave RSS at its peak (0: glibc's own, adjusting threshold)",
    )
    startup_gc_freeze: bool = Field(
        True, description="collect and gc.freeze() startup objects before SERVING (no full-GC stalls later)"
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_format: LogFormat = LogFormat.KEYVALUE
    event_loop: EventLoop = Field(
        EventLoop.UVLOOP,
        description="the serving process's event loop: uvloop (less CPU per call: docs/performance.md) or "
        "asyncio",
    )
    max_active_rpcs: int = Field(
        32, ge=0, description="unary calls that work at once; others wait in a timed FIFO (0: no limit)"
    )
    queue_delay_target_ms: float = Field(
        5.0, gt=0.0, description="CoDel target: calls waiting longer than this for a whole interval are shed"
    )
    queue_delay_interval_ms: float = Field(
        100.0, gt=0.0, description="CoDel interval: how long the queue delay may stay above the target"
    )
    max_concurrent_streams: int = Field(
        1024, ge=0, description="ScoreStreams one process holds open (own slots, not max_concurrent_rpcs)"
    )
    max_streams_per_client: int = Field(
        64, ge=0, description="ScoreStreams open from one client address; beyond, RESOURCE_EXHAUSTED"
    )
    max_request_bytes_in_flight: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="bytes of large requests (64 KiB+) held at once; beyond, refused unparsed (0: no limit)",
    )

    model_poll_s: float = Field(
        0.0,
        ge=0.0,
        description="look for changed or new model versions this often and reload them (0: off; "
        "`riskserve models reload` asks at once)",
    )
    admin_enabled: bool = Field(
        False, description="serve riskserve.v1.ModelAdmin (Reload, ListVersions) on admin_host:admin_port"
    )
    admin_host: str = Field(
        "127.0.0.1", description="address of the admin port; other than loopback only with mutual TLS"
    )
    admin_port: int = Field(50052, ge=0, le=65535, description="admin gRPC port (0 picks a free one)")

    live_check_sample_rate: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="share of calls to an INT8-served model also scored by its FP32 original, off the hot "
        "path (0: off, no FP32 session loaded)",
    )
    live_check_window_s: float = Field(
        600.0, gt=0.0, description="rolling window of the live INT8-vs-FP32 gauges and of on_live_drift"
    )
    live_check_queue_rows: int = Field(
        4096, ge=1, description="sampled rows waiting for the FP32 session; beyond, dropped and counted"
    )
    live_check_min_rows: int = Field(
        1000, ge=1, description="compared rows the window needs before on_live_drift may act on it"
    )
    on_live_drift: LiveDriftPolicy = Field(
        LiveDriftPolicy.ALERT,
        description="when the window's flip rate is above the gate's budget (95 % interval): alert (metrics "
        "only) or serve_fp32 (also switch the model to FP32, visibly)",
    )

    challenger_window_s: float = Field(
        600.0, gt=0.0, description="rolling window of the champion-vs-challenger gauges (agreement, PSI)"
    )
    challenger_queue_rows: int = Field(
        4096, ge=1, description="sampled rows waiting for a challenger's session; beyond, dropped and counted"
    )

    traffic_sample_dir: Path | None = Field(
        None,
        description="write sampled calls' feature rows (no ids) to <dir>/<model>/<version>.parquet, a "
        "rolling calibration file for `riskserve quantize --calibration-from-traffic` (None: off); outside "
        "models_dir",
    )
    traffic_sample_rate: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="share of calls whose feature rows go to the traffic file (a shadow consumer of its own, "
        "sampled apart from the live check and a challenger)",
    )
    traffic_sample_rows: int = Field(20000, ge=1, description="rows a traffic file keeps: the newest")
    traffic_sample_flush_rows: int = Field(
        1000, ge=1, description="rewrite the traffic file once this many new rows wait"
    )
    traffic_sample_flush_s: float = Field(
        60.0, gt=0.0, description="... or once new rows waited this long (and at shutdown)"
    )

    @field_validator(*TLS_FILE_SETTINGS)
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"no such file: {path}")
        return path

    @model_validator(mode="after")
    def _tls_together(self) -> "ServerSettings":
        """The TLS settings as one: a certificate with its key, a client CA only with both (it would
        otherwise run plaintext), and the key matching the certificate."""
        for prefix in ("tls", "metrics_tls"):
            cert, key = getattr(self, f"{prefix}_cert_file"), getattr(self, f"{prefix}_key_file")
            client_ca = getattr(self, f"{prefix}_client_ca_file")
            if cert is None and key is not None:
                raise ValueError(f"{prefix}_cert_file: missing; {prefix}_key_file needs its certificate")
            if key is None and cert is not None:
                raise ValueError(f"{prefix}_key_file: missing; {prefix}_cert_file needs its key")
            if client_ca is not None and cert is None:
                raise ValueError(
                    f"{prefix}_client_ca_file: mutual TLS needs {prefix}_cert_file and {prefix}_key_file too "
                    "(without them the port would be plaintext)"
                )
            if cert is not None:
                check_key_pair(prefix, cert, key)
            if client_ca is not None:
                check_ca_file(f"{prefix}_client_ca_file", client_ca)
        return self

    @model_validator(mode="after")
    def _admin_guarded(self) -> "ServerSettings":
        """The admin port swaps models: loopback only unless clients must present a certificate, and one
        process (with workers each worker polls the repository itself)."""
        if not self.admin_enabled:
            return self
        if self.workers > 1:
            raise ValueError(
                "admin_enabled: needs workers = 1 (with workers > 1 every worker polls the repository: set "
                "model_poll_s)"
            )
        if self.admin_host not in LOOPBACK_HOSTS and self.tls_client_ca_file is None:
            raise ValueError(
                f"admin_host: {self.admin_host} is not a loopback address; the admin port is served there "
                "only with mutual TLS (tls_cert_file, tls_key_file, tls_client_ca_file)"
            )
        if self.admin_port != 0 and self.admin_port == self.port:
            raise ValueError(f"admin_port: {self.admin_port} is the serving port; give the admin RPC its own")
        return self

    @model_validator(mode="after")
    def _traffic_sample_outside_models(self) -> "ServerSettings":
        """A traffic file inside the model repository would change the served folder's digest at every flush
        (a reload each time) and mix traffic into model folders; one process writes each file."""
        if self.traffic_sample_dir is None:
            return self
        directory, models = Path(self.traffic_sample_dir).resolve(), Path(self.models_dir).resolve()
        if directory == models or directory.is_relative_to(models):
            raise ValueError(f"traffic_sample_dir: {self.traffic_sample_dir} is inside models_dir {models}")
        if self.workers > 1:
            raise ValueError(
                "traffic_sample_dir: needs workers = 1 (each worker would rewrite the same file)"
            )
        return self

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.port}"


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in ServerSettings.model_fields:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None or raw == "":
            continue
        # A list field from the environment: comma separated, e.g. RISKSERVE_MODELS=fraud,credit
        values[name] = tuple(p.strip() for p in raw.split(",") if p.strip()) if name == "models" else raw
    return values


def _file_values(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"server config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"server config {path} is not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"server config {path} must be a mapping of settings, got {type(raw).__name__}")
    return raw


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerSettings:
    """Merge defaults < YAML file < environment < `overrides` (CLI flags; None values are ignored)."""
    layers = [
        ("config file", _file_values(config_file) if config_file else {}),
        ("environment", _env_values(os.environ if environ is None else environ)),
        ("command line", {k: v for k, v in (overrides or {}).items() if v is not None}),
    ]
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source, values in layers:
        merged.update(values)
        origin.update({key: source for key in values})
    try:
        return ServerSettings.model_validate(merged)
    except ValidationError as exc:
        lines = ["invalid server settings:"]
        for item in exc.errors():
            field, message = ".".join(str(p) for p in item["loc"]), item["msg"]
            if not field:  # a check of several settings: its message starts with the one at fault
                message = message.removeprefix("Value error, ")
                field, _, message = (
                    message.partition(": ") if ": " in message else ("(top level)", "", message)
                )
            first = field.split(" ")[0].split(".")[0]
            where = origin.get(first, "default")
            env_hint = f" (env {ENV_PREFIX}{first.upper()})" if where == "environment" else ""
            lines.append(f"  {field}: {message} [from {where}{env_hint}]")
        raise ConfigError("\n".join(lines)) from exc
