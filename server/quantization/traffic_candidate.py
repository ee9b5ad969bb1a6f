"""A new version of a model calibrated on its live traffic (`riskserve quantize --calibration-from-traffic`).

A version folder is staged beside the served one as `.<candidate>` (ignored by the repository until
renamed): a copy of its config with `version: <served version>-traffic-<UTC time>` and `calibration_file`
naming a copy of the served version's traffic file (server/monitoring/traffic_sample.py), every other file
hard-linked. The copy is checked first: this model's, its feature columns, at least the pipeline's minimum
of calibration rows. The pipeline quantizes it and gates it on the unchanged holdout; a
candidate that serves INT8 is renamed in, so the repository poll or `riskserve models reload` swaps it in
(after gating it again, from the cache). Any other verdict removes it: a restart must never serve a
candidate that did not pass.
"""

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from server.config.errors import ConfigError, DataFileError
from server.config.model_config import CONFIG_FILE_NAME, ModelConfig, load_model_config
from server.config.model_versions import load_served_config, served_folder
from server.model_data import CSV_SUFFIXES, PARQUET_SUFFIXES, read_data_file
from server.monitoring.traffic_sample import file_model, traffic_file
from server.served_model import Precision, PreparedModel

TRAFFIC_CALIBRATION_STEM = "traffic-calibration"  # + the traffic file's suffix: the candidate's calibration
_CANDIDATE_SUFFIX = re.compile(r"-traffic-\d{8}T\d{6}$")  # of a version that is itself such a candidate


def served_version_folder(model_dir: Path) -> Path:
    """The folder of the version `model_dir` serves, which must be a version folder: a candidate is added
    beside it. ConfigError for a flat model folder."""
    folder = served_folder(model_dir)
    if folder == model_dir:
        raise ConfigError(
            f"model folder {model_dir} holds one version in place (flat layout): move its files into "
            f"{model_dir}/<version>/ first, so a candidate version can be added beside it (docs/config.md, "
            "Versions)"
        )
    return folder


def names_one_file(source: Path) -> bool:
    """`source` is one traffic file (a data file's name), not a traffic_sample_dir."""
    return not source.is_dir() and source.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES


def traffic_path(source: Path, config: ModelConfig) -> Path:
    """The traffic file `source` means for `config`: the file itself, or in a traffic_sample_dir
    `<model>/<version>.parquet`. DataFileError when there is none."""
    path = source if names_one_file(source) else traffic_file(source, config.name, config.version)
    if not path.is_file():
        raise DataFileError(f"no traffic file for model {config.name} version {config.version}: {path}")
    return path


def check_traffic_file(path: Path, config: ModelConfig, shown: Path | None = None) -> int:
    """Its rows; DataFileError when it is another model's, has other columns than this model's features
    or fewer rows than the pipeline needs. `shown`: the name to give it (the original of a copy)."""
    frame = read_data_file(path)
    name = shown or path
    recorded = file_model(path) if path.suffix.lower() in PARQUET_SUFFIXES else None
    if recorded is not None and recorded[0] != config.name:
        raise DataFileError(f"traffic file {name} is model {recorded[0]}'s, not {config.name}'s")
    columns, features = set(map(str, frame.columns)), set(config.feature_names)
    if columns != features:
        missing, extra = sorted(features - columns), sorted(columns - features)
        raise DataFileError(
            f"traffic file {name} is for another feature set than model {config.name}'s: "
            f"missing {', '.join(missing) or 'none'}; not features of this model {', '.join(extra) or 'none'}"
        )
    needed = config.quantization.required_calibration_rows
    if len(frame) < needed:
        raise DataFileError(f"traffic file {name}: {len(frame)} rows, at least {needed} are needed")
    return len(frame)


def candidate_version(version: str, now: datetime) -> str:
    """`<version>-traffic-<UTC time>`, higher than `version` (and than an earlier candidate of it)."""
    return f"{_CANDIDATE_SUFFIX.sub('', version)}-traffic-{now:%Y%m%dT%H%M%S}"


def stage_candidate(folder: Path, config: ModelConfig, traffic: Path, version: str) -> Path:
    """`.<version>` beside `folder`: its files hard-linked (copied across file systems), a copy of the
    traffic file as the calibration file, the config saying both. Returns the staged folder.

    The copy is read through one open file, so it is whole even while the server replaces the traffic file
    (a Parquet reader opening the file by name twice could see the footer of one and the pages of another)."""
    if (folder.parent / version).exists():
        raise ConfigError(f"version folder {folder.parent / version} exists already")
    staging = folder.parent / f".{version}"
    if staging.exists():  # left by an interrupted run
        shutil.rmtree(staging)
    staging.mkdir()
    skipped = {CONFIG_FILE_NAME, config.calibration_file}
    for path in folder.iterdir():
        if path.is_file() and path.name not in skipped and not path.name.startswith("."):
            _link(path, staging / path.name)
    calibration = TRAFFIC_CALIBRATION_STEM + traffic.suffix.lower()
    shutil.copyfile(traffic, staging / calibration)
    raw = yaml.safe_load((folder / CONFIG_FILE_NAME).read_text())
    raw["version"], raw["calibration_file"] = version, calibration
    header = f"# {config.name} {version}: version {config.version} calibrated on its traffic file {traffic}\n"
    (staging / CONFIG_FILE_NAME).write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return staging


def publish(staging: Path) -> Path:
    """Rename the staged candidate in: the repository's highest version from now on."""
    return staging.rename(staging.with_name(staging.name.removeprefix(".")))


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@dataclass(frozen=True)
class TrafficCandidate:
    """What `build_candidate` made: the gated candidate and, if it serves INT8, its published folder."""

    prepared: PreparedModel
    version: str
    traffic: Path
    rows: int
    folder: Path | None  # None: not written (its verdict is not INT8)


def build_candidate(
    model_dir: Path,
    source: Path,
    cache_dir: Path,
    progress: Callable[[str], None] | None = None,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> TrafficCandidate:
    """Check the served version's traffic file, stage, quantize and gate the candidate, publish it if it
    serves INT8 (see the module doc). ConfigError / QuantizationError for a bad model or traffic file."""
    from server.quantization.pipeline import prepare_model  # the pipeline's imports, only when used

    folder = served_version_folder(model_dir)
    config = load_served_config(model_dir)
    traffic = traffic_path(source, config)
    version = candidate_version(config.version, now or datetime.now(UTC))
    staging = stage_candidate(folder, config, traffic, version)
    try:
        candidate = load_model_config(staging)
        rows = check_traffic_file(candidate.calibration_path, config, shown=traffic)  # the copy it uses
        prepared = prepare_model(candidate, cache_dir, progress, force=force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if prepared.facts.precision is not Precision.INT8:
        shutil.rmtree(staging, ignore_errors=True)
        return TrafficCandidate(prepared, version, traffic, rows, None)
    return TrafficCandidate(prepared, version, traffic, rows, publish(staging))
