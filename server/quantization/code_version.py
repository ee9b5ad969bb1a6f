"""The version of the code that builds an INT8 model, for the cache key.

A changed tuner, pre-processing or gate must not reuse INT8 models built by the old code, so the cache key
holds the riskserve package version and a SHA-256 over the source files of the quantization code. Any edit
of those files (comments included) means one cold start per model; that is the price of never serving a
stale artifact.
"""

import hashlib
from importlib import metadata
from pathlib import Path

SERVER_ROOT = Path(__file__).resolve().parents[1]  # the `server` package
# Relative to SERVER_ROOT: everything whose change can change the INT8 model, the gate or the report.
SOURCE_PATTERNS = (
    "quantization/*.py",
    "quantization/rewrites/*.py",  # the checked graph rewrites before quantizing
    "served_model.py",
    "ort_session.py",
    "model_data.py",
    "model_io.py",  # feeds and the positive output column, as the gate scores them
    "batch_invariance.py",  # the serving chunk size the gate scores with
    "config/quantization_config.py",
    "evaluation/*.py",  # the gate's metrics and paired intervals
)


def riskserve_version() -> str:
    try:
        return metadata.version("riskserve")
    except metadata.PackageNotFoundError:
        return "unknown"


def source_files(root: Path | None = None) -> list[Path]:
    """The fingerprinted files under `root` (default SERVER_ROOT), sorted."""
    base = root or SERVER_ROOT
    return sorted({path for pattern in SOURCE_PATTERNS for path in base.glob(pattern) if path.is_file()})


def code_fingerprint(root: Path | None = None) -> str:
    """SHA-256 over each source file's path relative to `root` and its bytes: the same code anywhere on disk
    gives the same fingerprint."""
    base = root or SERVER_ROOT
    digest = hashlib.sha256()
    for path in source_files(base):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def code_version() -> dict[str, str]:
    """What the cache key records of the code: the package version and the source fingerprint."""
    return {"riskserve": riskserve_version(), "quantization_sources_sha256": code_fingerprint()}
