"""What a real server exports after real calls: the score distribution, the oversized-call refusal, and
every metric the Grafana dashboard queries."""

from bisect import bisect_left

import grpc
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.metrics.buckets import SCORE_BUCKETS
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import INT8_HIDDEN, INT8_SERVED, write_model
from tests.e2e.requests import application, risky_transaction, transaction
from tests.metrics.conftest import samples, scrape
from tests.metrics.dashboard_queries import dashboard_queries, metric_names

# Exported only once such an event happened (a family without samples); the test checks its TYPE line.
EVENT_ONLY = {"riskserve_requests_failed_total"}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> ServerThread:
    root = tmp_path_factory.mktemp("served-metrics")
    batching = {"max_batch_size": 16, "max_queue_size": 32}
    # Quantized and served INT8 (wide enough that INT8 is smaller), so the gate's figures and the live
    # check's are exported too.
    write_model(
        root / "models" / "fraud", "fraud", batching=batching, quantization=INT8_SERVED, hidden=INT8_HIDDEN
    )
    write_model(root / "models" / "credit", "credit")
    # credit watched against a challenger, so the champion-vs-challenger figures are exported too
    write_model(root / "models" / "credit_v2", "credit", name="credit_v2", hidden=(6,))
    config_file = root / "models" / "credit" / "config.yaml"
    config_file.write_text(config_file.read_text() + "challenger:\n  model: credit_v2\n")
    running = ServerThread(test_settings(root / "models", root / "cache")).wait_ready()
    yield running
    running.close()


def _metrics_url(served: ServerThread) -> str:
    return f"http://127.0.0.1:{served.server.metrics_port}/metrics"


def _score_counts(text: str) -> dict[str, float]:
    return {
        labels["le"]: value for labels, value in samples(text, "riskserve_model_score_bucket", model="fraud")
    }


def test_score_distribution_counts_every_scored_transaction(served):
    before = _score_counts(scrape(_metrics_url(served)))
    with grpc.insecure_channel(served.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        answers = [fraud.Score(transaction(f"t-{i}", amount=10.0 + 37 * i), timeout=5) for i in range(6)]
        answers.append(fraud.Score(risky_transaction(), timeout=5))
        batch = [transaction(f"b-{i}", amount=5.0 + 11 * i) for i in range(12)]
        answers += fraud.ScoreBatch(scoring_pb2.TransactionBatch(transactions=batch), timeout=5).scores
    after = _score_counts(scrape(_metrics_url(served)))
    probabilities = [a.probability for a in answers]
    for i, bound in enumerate([*SCORE_BUCKETS, float("inf")]):
        expected = sum(bisect_left(SCORE_BUCKETS, p) <= i for p in probabilities)  # cumulative, le=bound
        label = "+Inf" if bound == float("inf") else repr(bound)
        matching = [v for le, v in after.items() if float(le) == bound]
        previous = [v for le, v in before.items() if float(le) == bound]
        assert matching, f"no bucket le={label}"
        assert matching[0] - (previous[0] if previous else 0) == expected, f"bucket le={label}"


def test_call_larger_than_the_queue_is_invalid_not_a_retry(served):
    batch = [transaction(f"b-{i}") for i in range(33)]  # the fraud model queues at most 32 rows
    with grpc.insecure_channel(served.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            fraud.ScoreBatch(scoring_pb2.TransactionBatch(transactions=batch), timeout=5)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 32" in error.value.details()


def test_every_metric_the_dashboard_queries_is_exported_after_real_calls(served):
    with grpc.insecure_channel(served.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        fraud.Score(transaction(), timeout=5)
        scoring_pb2_grpc.CreditScoringStub(channel).Assess(application(), timeout=5)
        with pytest.raises(grpc.RpcError):
            fraud.Score(transaction(currency="XXX"), timeout=5)  # a rejection
        text = scrape(_metrics_url(served))
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    queried = set().union(*(metric_names(q) for q in dashboard_queries()))
    assert len(queried) >= 12
    missing = {name for name in queried - exported if name not in EVENT_ONLY or name not in families}
    assert not missing, "dashboard queries metrics a serving server does not export"
