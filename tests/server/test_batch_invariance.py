"""A transaction's score never depends on which other rows shared its ONNX Runtime call, bit for bit,
also for a model served in FP32 (whose GEMM kernels round differently by batch size)."""

import numpy as np
import pandas as pd
import pytest

from server import batch_invariance
from server.batch_invariance import FIXED_CHUNK_ROWS, choose_chunk_rows
from server.config import load_model_config
from server.config.quantization_config import QuantizationMode
from server.config.settings import ServerSettings
from server.model_data import feeds_from_frame, input_frame
from server.quantization.pipeline import prepare_model
from server.runtime.model_runtime import ModelRuntime
from tests.e2e.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def fp32_fraud(tmp_path_factory) -> ModelRuntime:
    config = load_model_config(REPO_ROOT / "models" / "fraud")
    config = config.model_copy(
        update={"quantization": config.quantization.model_copy(update={"mode": QuantizationMode.NONE})}
    )
    prepared = prepare_model(config, tmp_path_factory.mktemp("cache"))
    assert prepared.facts.precision.value == "fp32"
    return ModelRuntime.load(config, prepared, ServerSettings())


def _holdout_feeds(runtime: ModelRuntime, rows: int) -> dict[str, np.ndarray]:
    frame = pd.read_parquet(runtime.config.holdout_path).sample(rows, random_state=3)
    return {
        spec.name: frame[spec.name]
        .to_numpy()
        .astype(np.float32 if spec.dtype == "float32" else object)
        .reshape(-1, 1)
        for spec in runtime.config.inputs
    }


def test_plain_fp32_calls_are_not_batch_invariant_so_startup_switches_to_fixed_chunks(fp32_fraud):
    plain = fp32_fraud._run_once
    rows = feeds_from_frame(fp32_fraud.config, input_frame(fp32_fraud.config), 64)
    assert not batch_invariance.batch_invariant(plain, rows)  # what the check guards against
    assert fp32_fraud.chunk_rows == FIXED_CHUNK_ROWS


def test_every_row_scores_the_same_alone_and_in_random_batches(fp32_fraud):
    feeds = _holdout_feeds(fp32_fraud, 600)
    alone = np.concatenate(
        [fp32_fraud.run_batch({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(600)]
    )
    rng = np.random.default_rng(7)
    for _ in range(60):
        size = int(rng.integers(2, 300))
        picked = rng.choice(600, size, replace=False)
        batch = fp32_fraud.run_batch({k: v[picked] for k, v in feeds.items()})
        assert np.array_equal(batch, alone[picked]), f"a batch of {size} changed some rows' scores"


def test_a_model_whose_scores_depend_on_the_whole_batch_runs_one_row_per_call(fp32_fraud):
    """Like dynamic quantization (ranges from the batch): fixed chunks are not enough, one row per call is."""
    real = fp32_fraud._run_once

    def batch_scaled(feeds):  # each row's output depends on the largest amount in its call
        amounts = feeds["amount"].astype(np.float64)
        return real(feeds) * np.float32(1 + 1e-6 * float(amounts.max()))

    fp32_fraud._run_once = batch_scaled
    try:
        assert fp32_fraud.check_batch_invariance(
            feeds_from_frame(fp32_fraud.config, input_frame(fp32_fraud.config), 64)
        )
        assert fp32_fraud.chunk_rows == 1
        feeds = _holdout_feeds(fp32_fraud, 50)
        alone = np.concatenate(
            [fp32_fraud.run_batch({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(50)]
        )
        assert np.array_equal(fp32_fraud.run_batch(feeds), alone)
    finally:
        fp32_fraud._run_once = real
        fp32_fraud.check_batch_invariance(
            feeds_from_frame(fp32_fraud.config, input_frame(fp32_fraud.config), 64)
        )


def test_the_runtime_starts_from_the_gated_chunk_size_and_re_verifies_it(fp32_fraud):
    rows = feeds_from_frame(fp32_fraud.config, input_frame(fp32_fraud.config), 64)
    try:
        # Gated one row per call: kept (it is invariant), not widened to the chunk the runtime would pick.
        assert fp32_fraud.check_batch_invariance(rows, 1) and fp32_fraud.chunk_rows == 1
        # Gated as "any batch", but this model's plain calls are not invariant: the runtime moves on.
        assert fp32_fraud.check_batch_invariance(rows, None) and fp32_fraud.chunk_rows == FIXED_CHUNK_ROWS
    finally:
        fp32_fraud.check_batch_invariance(rows)


def test_choose_chunk_rows_says_when_even_one_row_per_call_is_not_invariant():
    calls = iter(range(10**6))

    def drifting(feeds):  # a different answer on every call: nothing makes it batch-invariant
        return np.full((len(next(iter(feeds.values()))), 1), float(next(calls)))

    rows = {"x": np.zeros((4, 1), np.float32)}
    assert choose_chunk_rows(drifting, rows) == (1, False)
    assert choose_chunk_rows(lambda feeds: feeds["x"] * 2, rows) == (None, True)
