"""Models with one [N, F] float input: a PyTorch-style MLP (Gemm, Relu, Gemm, Sigmoid; output [N, 1]) and a
LightGBM tree ensemble (onnxmltools: TreeEnsembleClassifier, [N, 2]). `models init` maps the data's
columns, in file order, onto the input's F columns; the server then scores them from FraudScoring's and
CreditScoring's `features` maps, and (not yet) from an [N, F] Open Inference Protocol tensor."""

from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.grpc as triton

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.config.model_config import load_model_config
from tests.model_init.conftest import run_init
from tests.model_init.model_factory import (
    ID,
    LABEL,
    NUMBERS,
    TIME,
    labelled_frame,
    lightgbm_onnx,
    torch_style_mlp_onnx,
    write,
)


def _numbers_only(rows: int, seed: int) -> pd.DataFrame:
    return labelled_frame(rows, seed).drop(columns=["device_type"])


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two model folders set up by `models init`: `mlp` (fraud) and `trees` (credit)."""
    root = tmp_path_factory.mktemp("matrix")
    train = _numbers_only(4000, seed=0)
    features, labels = train[list(NUMBERS)].to_numpy(np.float32), train[LABEL].to_numpy()
    data = write(root / "export" / "data.parquet", _numbers_only(4000, seed=1))
    for name, payload, task in (
        ("mlp", torch_style_mlp_onnx(features, labels), "fraud"),
        ("trees", lightgbm_onnx(features, labels), "credit"),
    ):
        model = write(root / "export" / f"{name}.onnx", payload)
        code, _, err = run_init(
            root / "models" / name,
            *("--onnx", str(model), "--data", str(data), "--label", LABEL, "--task", task),
            *("--ignore", ID, "--time-column", TIME),
        )
        assert code == 0, err
    return root


def test_the_matrix_input_gets_the_datas_columns_in_file_order(repo: Path) -> None:
    for name, output, mode in (("mlp", "output", "static"), ("trees", "probabilities", "none")):
        config = load_model_config(repo / "models" / name)
        (spec,) = config.inputs
        assert (spec.name, spec.dtype, spec.width) == ("input", "float32", len(NUMBERS))
        assert [c.name for c in spec.columns] == list(NUMBERS)
        assert [c.source for c in spec.columns] == [f"features.{n}" for n in NUMBERS]
        assert all(c.minimum == 0.0 for c in spec.columns)  # never negative in the data
        assert config.output_name == output
        assert config.quantization.mode.value == mode  # a tree ensemble has no MatMul/Gemm to quantize


def _fp32(folder: Path, matrix: np.ndarray, output: str) -> np.ndarray:
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    result = session.run([output], {"input": matrix})[0]
    return result[:, -1].astype(np.float64)


@pytest.fixture(scope="module")
def server(repo: Path):
    from tests.e2e.conftest import ServerThread, test_settings

    running = ServerThread(test_settings(repo / "models", repo / "cache")).wait_ready()
    yield running
    running.close()


@pytest.fixture(scope="module")
def rows(repo: Path) -> pd.DataFrame:
    return pd.read_parquet(repo / "models" / "mlp" / "holdout.parquet").head(16)


def test_fraud_scoring_reads_the_columns_from_the_features_map(server, repo: Path, rows) -> None:
    transactions = [
        scoring_pb2.Transaction(
            transaction_id=f"t{i}", model="mlp", features={n: float(r[n]) for n in NUMBERS}
        )
        for i, r in rows.iterrows()
    ]
    with grpc.insecure_channel(server.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        singles = [fraud.Score(t, timeout=10) for t in transactions]
        batch = fraud.ScoreBatch(scoring_pb2.TransactionBatch(transactions=transactions), timeout=10)
    served = np.array([s.probability for s in singles])
    assert served.tolist() == [s.probability for s in batch.scores]
    fp32 = _fp32(repo / "models" / "mlp", rows[list(NUMBERS)].to_numpy(np.float32), "output")
    precision = singles[0].model.precision
    if precision == "fp32":
        assert served.tolist() == fp32.tolist()
    else:  # INT8 within its gate: close, and the columns in the model's order (a swap would not be)
        assert np.abs(served - fp32).max() < 0.05


def test_credit_scoring_serves_the_tree_ensemble_in_fp32(server, repo: Path, rows) -> None:
    with grpc.insecure_channel(server.target) as channel:
        credit = scoring_pb2_grpc.CreditScoringStub(channel)
        answers = [
            credit.Assess(
                scoring_pb2.Application(
                    application_id=f"a{i}", model="trees", features={n: float(r[n]) for n in NUMBERS}
                ),
                timeout=10,
            )
            for i, r in rows.iterrows()
        ]
    fp32 = _fp32(repo / "models" / "trees", rows[list(NUMBERS)].to_numpy(np.float32), "probabilities")
    assert [a.probability_of_default for a in answers] == fp32.tolist()
    assert {a.model.precision for a in answers} == {"fp32"} and {a.model.gate_verdict for a in answers} == {
        "disabled"
    }


def test_open_inference_protocol_takes_the_n_by_f_tensor(server, repo: Path, rows) -> None:
    matrix = rows[list(NUMBERS)].to_numpy(np.float32)
    tensor = triton.InferInput("input", list(matrix.shape), "FP32")
    tensor.set_data_from_numpy(matrix)
    with triton.InferenceServerClient(server.target) as client:
        answer = client.infer("mlp", [tensor], outputs=[triton.InferRequestedOutput("output")])
    with grpc.insecure_channel(server.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        domain = [
            fraud.Score(
                scoring_pb2.Transaction(model="mlp", features={n: float(r[n]) for n in NUMBERS}), timeout=10
            ).probability
            for _, r in rows.iterrows()
        ]
    assert answer.as_numpy("output")[:, 0].astype(np.float64).tolist() == domain
