"""Default locations of the model repository, the quantization cache and the traffic files."""

import os
from pathlib import Path

# The repository's bundled models; the Docker image copies them to the same relative place.
BUNDLED_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def default_models_dir() -> Path:
    """`RISKSERVE_MODELS_DIR`, else the bundled model repository."""
    return Path(os.environ.get("RISKSERVE_MODELS_DIR", BUNDLED_MODELS_DIR))


def default_cache_dir() -> Path:
    """`RISKSERVE_CACHE_DIR`, else `$XDG_CACHE_HOME/riskserve` (by default ~/.cache/riskserve)."""
    if "RISKSERVE_CACHE_DIR" in os.environ:
        return Path(os.environ["RISKSERVE_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "riskserve"


def default_traffic_sample_dir() -> Path | None:
    """`RISKSERVE_TRAFFIC_SAMPLE_DIR` (the server's traffic_sample_dir), else None."""
    value = os.environ.get("RISKSERVE_TRAFFIC_SAMPLE_DIR")
    return Path(value) if value else None
