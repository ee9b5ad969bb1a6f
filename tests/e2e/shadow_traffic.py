"""Live traffic through ModelInfer, recomputed offline: the helpers of the shadow-scoring tests (the FP32 live
check, a challenger) that send rows to a real server, score them offline and read its metrics."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import tritonclient.grpc as triton

from server.batch_invariance import chunked
from server.config.model_config import ModelConfig
from server.model_data import feeds_from_frame
from server.ort_session import create_session
from tests.e2e.conftest import ServerThread
from tests.e2e.model_factory import fraud_frame
from tests.metrics.conftest import samples, scrape


def offline_scores(
    model_path: Path, config: ModelConfig, frame: pd.DataFrame, chunk_rows: int | None = 1
) -> np.ndarray:
    """Positive-class probability of each row; by default one ORT call per row (no batch effect to argue
    about), else in 4096-row blocks with the runtime's chunk size (the served scores)."""
    session = create_session(model_path)
    run = chunked(lambda feeds: session.run([config.output_name], feeds)[0], chunk_rows)
    feeds = feeds_from_frame(config, frame)
    step = 1 if chunk_rows == 1 else 4096
    blocks = [run({k: v[i : i + step] for k, v in feeds.items()}) for i in range(0, len(frame), step)]
    return np.concatenate(blocks)[:, -1].astype(np.float64)


def flipping_rows(config: ModelConfig, int8_path: Path, wanted: int) -> pd.DataFrame:
    """Rows of fresh traffic whose review decision INT8 and FP32 disagree on."""
    pool = fraud_frame(6000, seed=11)[config.feature_names]
    int8, fp32 = offline_scores(int8_path, config, pool), offline_scores(config.onnx_path, config, pool)
    review = config.decision.review
    flipping = pool[(int8 >= review) != (fp32 >= review)]
    assert len(flipping) >= wanted, f"only {len(flipping)} flipping rows in the pool"
    return flipping.head(wanted)


def infer_inputs(config: ModelConfig, frame: pd.DataFrame) -> list[triton.InferInput]:
    inputs = []
    for spec in config.inputs:
        string = spec.dtype == "string"
        values = frame[spec.name].to_numpy(dtype=object if string else np.float32).reshape(-1, 1)
        tensor = triton.InferInput(spec.name, list(values.shape), "BYTES" if string else "FP32")
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


def send_rows(
    server, config: ModelConfig, frame: pd.DataFrame, sizes=(1, 7, 32), channel_args=None
) -> list[dict]:
    """`frame`'s rows through ModelInfer in calls of the given sizes, in turn; each answer's parameters and
    probabilities."""
    answers, start, turn = [], 0, 0
    with triton.InferenceServerClient(server.target, channel_args=channel_args) as client:
        while start < len(frame):
            part = frame.iloc[start : start + sizes[turn % len(sizes)]]
            result = client.infer(config.name, infer_inputs(config, part))
            parameters = result.get_response().parameters
            answers += [
                {"p": float(p), "precision": parameters["precision"].string_param,
                 "verdict": parameters["gate_verdict"].string_param}
                for p in result.as_numpy("probabilities")[:, -1]
            ]  # fmt: skip
            start, turn = start + len(part), turn + 1
    return answers


def metric(server: ServerThread, name: str, **labels: str) -> list[tuple[dict, float]]:
    return samples(scrape(f"http://127.0.0.1:{server.server.metrics_port}/metrics"), name, **labels)


def metric_value(server: ServerThread, name: str, **labels: str) -> float | None:
    found = metric(server, name, **labels)
    assert len(found) <= 1, found
    return found[0][1] if found else None


def wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def psi(expected_counts: np.ndarray, actual_counts: np.ndarray) -> float:
    e = expected_counts / expected_counts.sum() + 1e-6
    a = actual_counts / actual_counts.sum() + 1e-6
    return float(np.sum((a - e) * np.log(a / e)))
