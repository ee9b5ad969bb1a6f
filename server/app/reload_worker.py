"""What the reload's background process runs (server/app/model_reload.py). Light on purpose: the process
lowers its priority before it imports the quantization pipeline, so even the imports yield to serving."""

import fcntl
import logging
import os
from pathlib import Path

RELOAD_NICE = 10  # the preparing process's niceness: serving keeps the CPU when both want it

log = logging.getLogger(__name__)


def start_worker(log_level: str, log_format: str) -> None:
    """The process's initializer: lower its priority first, then log as the server does."""
    os.nice(RELOAD_NICE)
    from server.app.logging_setup import configure_logging

    configure_logging(log_level, log_format)


def prepare_in_worker(config, cache_dir: Path):
    """Quantize and gate `config` (a ModelConfig), or load its cache entry: the PreparedModel, or a
    ModelProblem (exceptions of the pipeline need not survive pickling). A file lock per model in the
    cache dir: workers that poll the same repository quantize once, the others load the cache entry."""
    from server.app.startup import problem_of
    from server.quantization.pipeline import prepare_model

    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".reload-{config.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return prepare_model(config, cache_dir, progress=lambda m: log.info("event=prepare %s", m))
        except Exception as exc:
            return problem_of(config.name, exc)
