"""The serving process's one typed configuration.

Sources, highest priority first: command-line flags > environment variables `RISKSERVE_<FIELD>` >
a YAML file (`--config`) > the defaults below. Every value is validated by pydantic; a bad value fails
at startup with the field (and where it came from) named.
"""

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from server.config._base import StrictModel
from server.config.errors import ConfigError
from server.config.paths import default_cache_dir, default_models_dir

ENV_PREFIX = "RISKSERVE_"


class InferenceHandoff(StrEnum):
    AUTO = "auto"  # a lone small request inline (no thread hop), concurrent load on the thread
    THREAD = "thread"  # ORT runs on one batcher thread per model; the event loop never waits on it
    INLINE = "inline"  # ORT runs on the event loop itself (only for tiny models; see docs/server.md)


class LogFormat(StrEnum):
    KEYVALUE = "keyvalue"
    JSON = "json"


class ServerSettings(StrictModel):
    """Everything `riskserve serve` can be told. Field names double as env var suffixes (upper case)."""

    host: str = Field("127.0.0.1", description="address the gRPC server listens on")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one)")
    metrics_host: str = Field("127.0.0.1", description="address of the Prometheus /metrics endpoint")
    metrics_port: int = Field(9100, ge=0, le=65535, description="Prometheus port (0 picks a free one)")
    models_dir: Path = Field(default_factory=default_models_dir, description="the model repository")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="quantization cache")
    models: tuple[str, ...] = Field((), description="model folders to serve; empty = every folder")
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest gRPC message")
    max_request_rows: int = Field(4096, ge=1, description="rows one call may carry (ScoreBatch, ModelInfer)")
    drain_pause_s: float = Field(5.0, ge=0.0, description="after SIGTERM: still serving, health NOT_SERVING")
    grace_period_s: float = Field(20.0, ge=0.0, description="after the pause: time in-flight calls get")
    intra_op_threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op threads per model")
    inference_handoff: InferenceHandoff = Field(InferenceHandoff.AUTO, description="where ORT runs")
    tls_cert_file: Path | None = Field(None, description="server certificate (PEM); with tls_key_file")
    tls_key_file: Path | None = Field(None, description="server private key (PEM)")
    tls_client_ca_file: Path | None = Field(None, description="CA for client certificates (mutual TLS)")
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
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_format: LogFormat = LogFormat.KEYVALUE
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

    @model_validator(mode="after")
    def _tls_pair(self) -> "ServerSettings":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
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
            field = ".".join(str(p) for p in item["loc"]) or "(top level)"
            where = origin.get(str(item["loc"][0]), "default") if item["loc"] else "settings"
            env_hint = f" (env {ENV_PREFIX}{field.upper()})" if where == "environment" else ""
            lines.append(f"  {field}: {item['msg']} [from {where}{env_hint}]")
        raise ConfigError("\n".join(lines)) from exc
