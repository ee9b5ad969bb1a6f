"""Startup, per model, before health says SERVING:
config -> prepare_model (quantize or cache, gate) -> ORT session -> warm-up at the batcher's batch sizes.
"""

import logging
import sys
import time
from pathlib import Path

from server.api.domain_api import check_domain_sources
from server.config.errors import ConfigError
from server.config.model_config import CONFIG_FILE_NAME, ModelConfig, load_model_config
from server.config.settings import ServerSettings
from server.quantization.pipeline import prepare_model
from server.quantization.summary import format_summary
from server.runtime.model_runtime import ModelRuntime

log = logging.getLogger(__name__)


def discover_models(settings: ServerSettings) -> list[ModelConfig]:
    """The configs of the models to serve: `settings.models`, or every folder with a config.yaml."""
    root = Path(settings.models_dir)
    if not root.is_dir():
        raise ConfigError(f"models_dir: not a directory: {root}")
    names = settings.models or tuple(
        sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE_NAME).is_file())
    )
    if not names:
        raise ConfigError(f"models_dir: no model folders (with {CONFIG_FILE_NAME}) in {root}")
    configs = []
    for name in names:
        config = load_model_config(root / name)
        check_domain_sources(config)
        _check_request_limit(config, settings)
        configs.append(config)
    return configs


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
    prepared = prepare_model(
        config, Path(settings.cache_dir), progress=lambda m: log.info("event=prepare %s", m)
    )
    if prepared.report and print_summary:
        print(format_summary(prepared.report), file=sys.stderr)
    runtime = ModelRuntime.load(config, prepared, settings)
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
