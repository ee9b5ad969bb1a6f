"""Shared toy models: trained once per test session, copied into each test's own folder."""

import dataclasses
import shutil
from pathlib import Path

import pytest

from server.config.model_config import ModelConfig, load_model_config
from tests.quantization.model_factory import ModelSpec, write_model_folder


@pytest.fixture(scope="session")
def _trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trained")
    return {
        "plain": write_model_folder(root / "plain", ModelSpec()).directory,
        # A layer fed by an outlier-heavy feature: INT8 misses the budget until that layer is FP32.
        "sensitive": write_model_folder(root / "sensitive", ModelSpec(outlier_feature=True)).directory,
        # Same data, one hidden layer: after protecting the output there is one INT8 layer and nothing to
        # fall back to without leaving INT8 altogether.
        # Narrow last hidden layer (4 units): on an 8-bit grid its 4 outputs collapse the FP32 head's scores
        # into ties (distinct-score ratio ~0.5); leaving the head's input float restores them.
        "narrow": write_model_folder(root / "narrow", ModelSpec(hidden=(8, 4))).directory,
        "hopeless": write_model_folder(
            root / "hopeless", ModelSpec(hidden=(16,), outlier_feature=True)
        ).directory,
    }


@pytest.fixture()
def model_folder(_trained: dict[str, Path], tmp_path: Path):
    """Factory: a private copy of a trained toy model, optionally with a changed quantization section."""

    def make(kind: str = "plain", **quantization: object) -> ModelConfig:
        folder = tmp_path / kind
        if not folder.exists():
            shutil.copytree(_trained[kind], folder)
        config = load_model_config(folder)
        if quantization:
            q = config.quantization
            q = type(q).model_validate({**q.model_dump(), **quantization})
            config = config.model_copy(update={"quantization": q})
        return config

    return make


@pytest.fixture()
def int8_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests of the accuracy machinery on toy models too small for INT8 to pay (their Q/DQ metadata
    outweighs their few weights): the objective is taken as met, its measured reason kept, and it does not
    choose among moves inside the budget (the tuner's order does)."""
    from server.quantization import build
    from server.quantization.benefit import Benefit

    monkeypatch.setattr(Benefit, "score", property(lambda self: 0.0))
    real = build.judge_benefit

    def paying(*args: object, **kwargs: object):
        benefit = real(*args, **kwargs)
        return dataclasses.replace(benefit, pays=True, reason=f"{benefit.reason} (taken as met by the test)")

    monkeypatch.setattr(build, "judge_benefit", paying)
