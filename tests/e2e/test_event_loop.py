"""`riskserve serve` on either event loop (`event_loop`: uvloop by default, or asyncio): the same answers
through both front doors, bit for bit, and a clean drain. In-process e2e servers (tests/e2e/conftest.py)
run on the loop their settings name, so the rest of the e2e suite runs on uvloop too; the in-queue
deadline test runs on both (test_health_and_metadata.py)."""

import re

import grpc
import numpy as np
import tritonclient.grpc as triton

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from tests.e2e.model_factory import FRAUD_FLOATS, FRAUD_STRINGS, write_model
from tests.e2e.requests import risky_transaction, transaction

LOOP = re.compile(r"event=listening .* loop=(\w+)")


def _infer_inputs(t: scoring_pb2.Transaction) -> list[triton.InferInput]:
    row = {"amount": t.amount, "hour_of_day": (t.timestamp // 3600) % 24}
    row |= {name: float(getattr(t.behaviour, name)) for name in FRAUD_FLOATS[2:]}
    inputs = []
    for name in FRAUD_FLOATS:
        tensor = triton.InferInput(name, [1, 1], "FP32")
        tensor.set_data_from_numpy(np.array([[row[name]]], dtype=np.float32))
        inputs.append(tensor)
    for name in FRAUD_STRINGS:
        tensor = triton.InferInput(name, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[getattr(t, name).encode()]], dtype=object))
        inputs.append(tensor)
    return inputs


def _answers(target: str) -> tuple[list[float], list[float], list[float]]:
    """Score, ScoreBatch and ModelInfer (Triton's client) probabilities for the same three transactions."""
    transactions = [transaction("l-0"), risky_transaction("l-1"), transaction("l-2", amount=300.0)]
    with grpc.insecure_channel(target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        unary = [fraud.Score(t, timeout=10).probability for t in transactions]
        batch = fraud.ScoreBatch(scoring_pb2.TransactionBatch(transactions=transactions), timeout=10)
    with triton.InferenceServerClient(target) as client:
        infer = [
            float(client.infer("fraud", _infer_inputs(t)).as_numpy("probabilities")[0, 1])
            for t in transactions
        ]
    return unary, [s.probability for s in batch.scores], infer


def test_both_event_loops_serve_the_same_answers_and_drain_clean(spawn_server, tmp_path):
    write_model(tmp_path / "fraud", "fraud")
    answers = {}
    for loop in ("default", "asyncio", "uvloop"):
        settings = {} if loop == "default" else {"event_loop": loop}
        server = spawn_server(tmp_path, models="fraud", **settings)
        server.wait_serving(60)
        assert LOOP.search(server.log_text())[1] == ("uvloop" if loop == "default" else loop)
        answers[loop] = _answers(server.target)
        assert server.stop() == 0
        assert "clean=True" in server.log_lines("drain_finished")[-1]
    unary, batch, infer = answers["uvloop"]
    assert unary == batch  # a transaction's score does not depend on its batch mates, on either loop
    assert np.allclose(unary, infer, atol=1e-6)  # ModelInfer's FP32 output against Score's double
    assert answers["asyncio"] == answers["uvloop"] == answers["default"]
