"""The cache key holds the code version: changed quantization code never reuses an INT8 model built before."""

import shutil
from pathlib import Path

import pytest

from server.quantization import code_version
from server.quantization.pipeline import _cache_key, prepare_model


def _copy_sources(destination: Path) -> Path:
    """The fingerprinted files, copied to `destination` with their paths relative to the server package."""
    for path in code_version.source_files():
        target = destination / path.relative_to(code_version.SERVER_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return destination


def _append(path: Path, text: str) -> None:
    path.write_bytes(path.read_bytes() + text.encode())


@pytest.fixture()
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the quantization sources that the fingerprint reads instead of the real ones."""
    copy = _copy_sources(tmp_path / "server")
    monkeypatch.setattr(code_version, "SERVER_ROOT", copy)
    return copy


def test_every_fingerprinted_pattern_matches_a_file() -> None:
    # A renamed module would silently drop out of the fingerprint.
    for pattern in code_version.SOURCE_PATTERNS:
        assert list(code_version.SERVER_ROOT.glob(pattern)), pattern
    files = code_version.source_files()
    assert code_version.SERVER_ROOT / "quantization" / "tuner.py" in files
    assert code_version.SERVER_ROOT / "ort_session.py" in files


def test_fingerprint_follows_the_bytes_not_the_location(tmp_path: Path) -> None:
    copy = _copy_sources(tmp_path / "server")
    assert code_version.code_fingerprint(copy) == code_version.code_fingerprint()
    _append(copy / "quantization" / "quantizer.py", "\n# changed pre-processing\n")
    assert code_version.code_fingerprint(copy) != code_version.code_fingerprint()


def test_cache_key_changes_with_a_source_file_and_with_the_package_version(
    model_folder, sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = model_folder()
    first = _cache_key(config, vnni=True)
    assert _cache_key(config, vnni=True) == first
    _append(sources / "served_model.py", "\n# changed\n")
    second = _cache_key(config, vnni=True)
    assert second != first
    monkeypatch.setattr(code_version, "riskserve_version", lambda: "99.0.0")
    assert _cache_key(config, vnni=True) not in (first, second)


def test_changed_tuner_rebuilds_the_cached_model(model_folder, sources: Path, tmp_path: Path) -> None:
    config = model_folder()
    first = prepare_model(config, tmp_path / "cache")
    assert prepare_model(config, tmp_path / "cache").facts.from_cache
    _append(sources / "quantization" / "tuner.py", "\n# a changed tuner\n")
    rebuilt = prepare_model(config, tmp_path / "cache")
    assert not rebuilt.facts.from_cache
    assert rebuilt.report is not None and first.report is not None
    assert rebuilt.report.cache_key != first.report.cache_key
