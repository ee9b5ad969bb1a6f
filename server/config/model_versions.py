"""Which version of a model folder serves, and what identifies that version's files.

Two layouts, both in one repository if need be:
- flat (today's): `models/<name>/config.yaml`; the version is the config's `version`;
- one folder per version: `models/<name>/<version>/config.yaml` (each a complete model folder); the
  highest version serves, compared part by part with numbers as numbers (`10` > `9`, `2.1` > `2.0`).
  A version folder's config must say the folder's name as its `version`.
"""

import hashlib
import re
from pathlib import Path

from server.config.errors import ConfigError
from server.config.model_config import CONFIG_FILE_NAME, ModelConfig, load_model_config

_PARTS = re.compile(r"(\d+)")


def version_order(version: str) -> tuple[tuple[int, int, str], ...]:
    """A sort key: numeric parts compare as numbers, and a number sorts after text in the same place."""
    parts = (part for part in _PARTS.split(version) if part)
    return tuple((1, int(part), "") if part.isdigit() else (0, 0, part) for part in parts)


def version_folders(model_dir: Path) -> list[Path]:
    """The version folders of `model_dir` (those holding a config.yaml), lowest version first."""
    if not model_dir.is_dir():
        return []
    folders = [
        p
        for p in model_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / CONFIG_FILE_NAME).is_file()
    ]
    return sorted(folders, key=lambda p: version_order(p.name))


def is_model_folder(path: Path) -> bool:
    return (path / CONFIG_FILE_NAME).is_file() or bool(version_folders(path))


def served_folder(model_dir: Path) -> Path:
    """The folder of the version to serve: `model_dir` itself (flat layout), else its highest version
    folder. ConfigError when it has neither."""
    if (model_dir / CONFIG_FILE_NAME).is_file():
        return model_dir
    folders = version_folders(model_dir)
    if not folders:
        raise ConfigError(
            f"model folder {model_dir}: no {CONFIG_FILE_NAME}, and no version folder (<version>/"
            f"{CONFIG_FILE_NAME}) in it"
        )
    return folders[-1]


def load_served_config(model_dir: Path) -> ModelConfig:
    """The config of the version `model_dir` serves (see the module doc); ConfigError naming the file."""
    folder = served_folder(model_dir)
    config = load_model_config(folder)
    if folder != model_dir and config.version != folder.name:
        raise ConfigError(
            f"invalid model config {folder / CONFIG_FILE_NAME}:\n  version: '{config.version}' differs from "
            f"its version folder's name '{folder.name}'"
        )
    return config


def folder_digest(model_dir: Path) -> str | None:
    """SHA-256 over the names and contents of the served version folder's files: changes when any file of
    it changes or a higher version folder appears. None when the folder has no version to serve."""
    try:
        folder = served_folder(model_dir)
    except ConfigError:
        return None
    digest = hashlib.sha256(str(folder.relative_to(model_dir)).encode())
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(b"\0" + path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
