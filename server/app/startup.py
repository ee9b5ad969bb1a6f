"""Startup, per model, before health says SERVING:
config -> prepare_model (quantize or cache, gate) -> ORT session -> warm-up at the batcher's batch sizes.

A model that fails at any step is a `ModelProblem`: it is kept out (UNAVAILABLE with its reason) and the
others serve, unless `exit_on_model_error` asks to stop the server instead.
"""

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from server.api.domain_api import check_domain_sources
from server.config.errors import ConfigError, DataFileError
from server.config.model_config import CONFIG_FILE_NAME, ModelConfig, check_challenger
from server.config.model_versions import is_model_folder, load_served_config
from server.config.settings import ServerSettings
from server.quantization.errors import (
    ModelFileError,
    ModelIntegrityError,
    NoQuantizableOpsError,
    QuantizationError,
)
from server.quantization.pipeline import prepare_model
from server.quantization.summary import format_summary
from server.runtime.model_runtime import ModelRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelProblem:
    """Why a configured model cannot be served: `kind` (config, data, integrity, model_file, quantization,
    internal) labels the metric; `message` names the file and the problem."""

    name: str
    kind: str
    message: str


def problem_of(name: str, error: BaseException) -> ModelProblem:
    if isinstance(error, DataFileError):
        kind = "data"
    elif isinstance(error, ConfigError):
        kind = "config"
    elif isinstance(error, ModelIntegrityError):
        kind = "integrity"
    elif isinstance(error, ModelFileError | NoQuantizableOpsError):
        kind = "model_file"
    elif isinstance(error, QuantizationError):
        kind = "quantization"
    else:
        kind = "internal"
    message = str(error) if kind != "internal" else f"{type(error).__name__}: {error}"
    return ModelProblem(name, kind, message)


def discover_models(settings: ServerSettings) -> tuple[list[ModelConfig], list[ModelProblem]]:
    """The configs of the models to serve (`settings.models`, or every folder with a config.yaml or version
    folders: server/config/model_versions.py), each at the version it serves, and the
    models whose config is bad. ConfigError for the repository itself, or for a bad model's config when
    `settings.exit_on_model_error`."""
    root = Path(settings.models_dir)
    if not root.is_dir():
        raise ConfigError(f"models_dir: not a directory: {root}")
    names = settings.models or tuple(sorted(p.name for p in root.iterdir() if is_model_folder(p)))
    if not names:
        raise ConfigError(f"models_dir: no model folders (with {CONFIG_FILE_NAME}) in {root}")
    configs, problems = [], []
    for name in names:
        try:
            config = load_served_config(root / name)
            check_domain_sources(config)
        except ConfigError as exc:
            if settings.exit_on_model_error:
                raise
            problems.append(problem_of(name, exc))
            continue
        _check_request_limit(config, settings)
        configs.append(config)
    configured = {c.name: c for c in configs}
    for config in list(configs):
        try:
            check_challenger(config, configured)
        except ConfigError as exc:
            if settings.exit_on_model_error:
                raise
            problems.append(problem_of(config.name, exc))
            configs.remove(config)
    return configs, problems


def _check_request_limit(config: ModelConfig, settings: ServerSettings) -> None:
    """A call larger than the model's queue can never be queued: say at startup that such calls will be
    refused (INVALID_ARGUMENT naming the limit), rather than let them look like a transient overload."""
    queue_rows = config.batching.max_queue_size
    if settings.max_request_rows > queue_rows:
        log.warning(
            "event=request_limit_lowered model=%s max_request_rows=%d max_queue_size=%d detail=%r",
            config.name,
            settings.max_request_rows,
            queue_rows,
            f"calls to this model may carry at most {queue_rows} rows (its batching.max_queue_size)",
        )


def load_model(config: ModelConfig, settings: ServerSettings, print_summary: bool = True) -> ModelRuntime:
    """Quantize (or load from cache), open the session and warm it up. Blocking; run it off the loop.
    `print_summary=False` in worker processes: their supervisor printed it once."""
    started = time.perf_counter()
    cache_dir = Path(settings.cache_dir)
    prepared = prepare_model(config, cache_dir, progress=lambda m: log.info("event=prepare %s", m))
    try:
        runtime = ModelRuntime.load(config, prepared, settings)
    except Exception as exc:
        # ONNX Runtime refusing a cached file its manifest vouches for (both rewritten): rebuild the entry.
        if not (prepared.facts.from_cache and type(exc).__module__.startswith("onnxruntime")):
            raise
        log.warning(
            "event=cache_corrupt model=%s file=%s action=rebuild detail=%r",
            config.name,
            prepared.model_path,
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        )
        prepared = prepare_model(config, cache_dir, lambda m: log.info("event=prepare %s", m), force=True)
        runtime = ModelRuntime.load(config, prepared, settings)
    if prepared.report and print_summary:
        print(format_summary(prepared.report), file=sys.stderr)
    sizes = runtime.warm_up()
    log.info(
        "event=model_ready model=%s version=%s task=%s precision=%s gate_verdict=%s from_cache=%s "
        "warmup_batch_sizes=%s seconds=%.2f onnx=%s",
        config.name,
        config.version,
        config.task.value,
        prepared.facts.precision.value,
        prepared.facts.gate_verdict.value,
        prepared.facts.from_cache,
        ",".join(map(str, sizes)),
        time.perf_counter() - started,
        prepared.model_path.name,
    )
    return runtime
