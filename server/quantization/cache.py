"""Content-addressed cache of quantization results: the quantized ONNX file and its report.

The key is a SHA-256 over everything the result depends on: the FP32 model, calibration and holdout bytes,
the quantization settings and decision thresholds, the onnxruntime version, the CPU's VNNI flag (the
`reduce_range` default depends on it) and the code that built it (riskserve version and a fingerprint of the
quantization sources, code_version.py). An entry is a folder written under a temporary name and renamed into
place, so a reader never sees half an entry; its manifest holds each file's SHA-256, checked on every load.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the report or artifact layout changes
MANIFEST = "manifest.json"
ENTRIES_KEPT_PER_MODEL = 3


class CacheCorruptionError(Exception):
    """A cache entry exists but does not match its manifest. The caller rebuilds it."""


@dataclass(frozen=True)
class CacheEntry:
    folder: Path
    files: dict[str, Path]  # logical name -> file inside `folder`


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(files: list[Path], settings: dict[str, Any]) -> str:
    """SHA-256 over the bytes of `files` (in order) and the JSON of `settings` (sorted keys)."""
    digest = hashlib.sha256(f"riskserve-quantization-cache/{CACHE_FORMAT}".encode())
    for path in files:
        digest.update(_file_digest(path).encode())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class QuantizationCache:
    """Entries live in `<root>/<model name>/<key>/`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, model_name: str, key: str) -> Path:
        return self.root / model_name / key

    def load(self, model_name: str, key: str) -> CacheEntry | None:
        """The verified entry for `key`, None if absent; CacheCorruptionError if it fails verification."""
        folder = self._folder(model_name, key)
        manifest_path = folder / MANIFEST
        if not folder.is_dir():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            expected: dict[str, str] = manifest["files"]
            if manifest.get("key") != key:
                raise CacheCorruptionError(f"cache entry {folder}: manifest is for another key")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CacheCorruptionError(f"cache entry {folder}: unreadable manifest ({exc})") from exc
        files = {}
        for name, checksum in expected.items():
            path = folder / name
            if not path.is_file():
                raise CacheCorruptionError(f"cache entry {folder}: {name} is missing")
            if _file_digest(path) != checksum:
                raise CacheCorruptionError(f"cache entry {folder}: {name} does not match its SHA-256")
            files[name] = path
        return CacheEntry(folder, files)

    def store(self, model_name: str, key: str, files: dict[str, Path]) -> CacheEntry:
        """Copy `files` (logical name -> source path) into a new entry, atomically replacing any old one."""
        parent = self.root / model_name
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
        try:
            checksums = {}
            for name, source in files.items():
                shutil.copyfile(source, staging / name)
                checksums[name] = _file_digest(staging / name)
            manifest = {"key": key, "format": CACHE_FORMAT, "files": checksums}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
            final = self._folder(model_name, key)
            if final.exists():  # a corrupt entry being rebuilt: move it aside, then swap in the new one
                trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=parent))
                os.replace(final, trash / key)
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._prune(parent, keep=final)
        return CacheEntry(final, {name: final / name for name in files})

    def _prune(self, parent: Path, keep: Path) -> None:
        entries = sorted(
            (p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".") and p != keep),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in entries[ENTRIES_KEPT_PER_MODEL - 1 :]:
            shutil.rmtree(old, ignore_errors=True)
            log.info("event=cache_pruned entry=%s", old.name[:12])
