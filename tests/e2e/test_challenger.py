"""Champion and challenger through a real server: shadow scoring never changes an answer; the exported
agreement, correlation and PSI equal an offline recomputation on the rows sent; a full shadow queue drops
and counts; the live split is sticky per card or applicant and names the deciding model; a bad `challenger`
is a config error naming the key."""

import shutil
from hashlib import blake2b
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
import yaml

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.app.startup import discover_models
from server.config.errors import ConfigError
from server.config.model_config import load_model_config
from server.model_data import DataKind, input_frame
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import INT8_HIDDEN, INT8_SERVED, fraud_frame, write_model
from tests.e2e.requests import application, transaction
from tests.e2e.shadow_traffic import metric, metric_value, offline_scores, psi, send_rows, wait_for
from tests.e2e.test_request_path import SCORE_PATH, traced_modules

SHADOW_ALL = {"shadow_share": 1.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Champions (fraud served INT8, so its FP32 live check and its challenger share one hook; credit) and
    challengers of other widths: same inputs, other scores."""
    root = tmp_path_factory.mktemp("challenger-models")
    write_model(root / "fraud", "fraud", quantization=INT8_SERVED, hidden=INT8_HIDDEN)
    write_model(root / "fraud_v2", "fraud", name="fraud_v2", hidden=(8,))
    write_model(root / "credit", "credit")
    write_model(root / "credit_v2", "credit", name="credit_v2", hidden=(6,))
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("challenger-cache")


def repo_with(models: Path, target: Path, **challengers: dict) -> Path:
    """A copy of `models` whose champions name a challenger: `fraud={"shadow_share": 1.0}` gives fraud the
    challenger fraud_v2 with that section (`model` may be overridden)."""
    for folder in models.iterdir():
        shutil.copytree(folder, target / folder.name)
    for champion, section in challengers.items():
        config_file = target / champion / "config.yaml"
        config = yaml.safe_load(config_file.read_text())
        config["challenger"] = {"model": f"{champion}_v2", **section}
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def _transactions(count: int) -> list[scoring_pb2.Transaction]:
    return [
        transaction(
            f"t-{i}",
            card_id=f"card-{i}",
            amount=float(5 + (i * 37) % 900),
            entry_mode=("chip", "manual", "swipe")[i % 3],
            behaviour=dict(
                txn_count_1h=i % 7, distance_from_home_km=float(i * 13 % 500), is_new_device=i % 2
            ),
        )
        for i in range(count)
    ]


def _answers(server: ServerThread) -> tuple[list[bytes], int]:
    """Score, ScoreBatch and Assess answers (server_latency_us cleared), serialized; and the fraud rows."""
    fraud, credit_rows = _transactions(30), 8
    answers: list[bytes] = []
    with grpc.insecure_channel(server.target) as channel:
        fraud_stub, credit_stub = (
            scoring_pb2_grpc.FraudScoringStub(channel),
            scoring_pb2_grpc.CreditScoringStub(channel),
        )
        replies = [fraud_stub.Score(t, timeout=10) for t in fraud]
        replies += list(
            fraud_stub.ScoreBatch(scoring_pb2.TransactionBatch(transactions=fraud), timeout=10).scores
        )
        replies += [
            credit_stub.Assess(application(f"a-{i}", debt_to_income=0.05 * i, inquiries_6m=i), timeout=10)
            for i in range(credit_rows)
        ]
    for reply in replies:
        reply.server_latency_us = 0
        answers.append(reply.SerializeToString(deterministic=True))
    return answers, 2 * len(fraud)


def test_answers_are_bit_identical_with_and_without_a_challenger(servers, models, tmp_path):
    shadowed = servers(repo_with(models, tmp_path / "with", fraud=SHADOW_ALL, credit=SHADOW_ALL))
    alone = servers(repo_with(models, tmp_path / "without"))
    config = load_model_config(models / "fraud")
    frame = fraud_frame(40, seed=4)[config.feature_names]
    with_challenger, fraud_rows = _answers(shadowed)
    assert with_challenger == _answers(alone)[0]
    assert send_rows(shadowed, config, frame) == send_rows(alone, config, frame)  # ModelInfer
    labels = {"model": "fraud", "challenger": "fraud_v2"}
    wait_for(lambda: metric_value(shadowed, "riskserve_challenger_rows_total", **labels) == fraud_rows + 40)
    # an assessment's counterfactual rows (reason codes) are not traffic: only the 8 applications
    wait_for(lambda: metric_value(shadowed, "riskserve_challenger_rows_total", model="credit") == 8)
    assert not metric(alone, "riskserve_challenger_rows_total")


def _expected(config, champion_path: Path, chunk_rows, challenger_path: Path, frame: pd.DataFrame) -> dict:
    """The challenger figures recomputed offline: both models on the sent rows (one row per call), PSI of the
    challenger against the champion in ten bins at the quantiles of the champion's holdout scores."""
    champion = offline_scores(champion_path, config, frame)
    challenger = offline_scores(challenger_path, config, frame)
    holdout = offline_scores(
        champion_path, config, input_frame(config, DataKind.HOLDOUT).dropna(), chunk_rows
    )
    quantiles = np.unique(np.quantile(holdout, np.linspace(0, 1, 11)))
    edges = np.concatenate([[-np.inf], quantiles[1:-1], [np.inf]])
    disagreements = {
        n: int(np.sum((champion >= t) != (challenger >= t))) for n, t in config.decision.thresholds().items()
    }
    return {
        "champion": champion,
        "disagreements": disagreements,
        "pearson": float(np.corrcoef(champion, challenger)[0, 1]),
        "mean": float(np.mean(np.abs(champion - challenger))),
        "psi": psi(np.histogram(champion, edges)[0], np.histogram(challenger, edges)[0]),
    }


def _disagreeing_rows(config, champion_path: Path, challenger_path: Path, wanted: int) -> pd.DataFrame:
    """Rows of fresh traffic whose review decision the champion and the challenger disagree on."""
    pool = fraud_frame(6000, seed=11)[config.feature_names]
    champion, challenger = (offline_scores(p, config, pool) for p in (champion_path, challenger_path))
    review = config.decision.review
    disagreeing = pool[(champion >= review) != (challenger >= review)]
    assert len(disagreeing) >= wanted, f"only {len(disagreeing)} disagreeing rows in the pool"
    return disagreeing.head(wanted)


def test_exported_figures_equal_an_offline_recomputation_of_the_sent_rows(servers, models, tmp_path):
    server = servers(
        repo_with(models, tmp_path / "repo", fraud={"shadow_share": 1.0, "min_agreement": 0.9}),
        live_check_sample_rate=1.0,
    )
    champion = server.server.repository.get("fraud")
    config = champion.config
    assert champion.facts.precision.value == "int8"
    challenger_path = models / "fraud_v2" / "model.onnx"
    frame = pd.concat(
        [
            _disagreeing_rows(config, champion.prepared.model_path, challenger_path, 8),
            fraud_frame(142, seed=5)[config.feature_names],
        ]
    ).sample(frac=1.0, random_state=0)
    answers = send_rows(server, config, frame)
    labels = {"model": "fraud", "version": config.version, "challenger": "fraud_v2"}
    labels["challenger_version"] = "1.0.0-test"
    wait_for(lambda: metric_value(server, "riskserve_challenger_rows_total", **labels) == len(frame))
    # the FP32 live check shares the runtime's one sampling hook: it saw every row too
    wait_for(lambda: metric_value(server, "riskserve_live_check_rows_total", model="fraud") == len(frame))
    expected = _expected(config, champion.prepared.model_path, champion.chunk_rows, challenger_path, frame)
    assert [a["p"] for a in answers] == pytest.approx(expected["champion"].tolist(), abs=0)
    assert metric_value(server, "riskserve_challenger_window_rows", **labels) == len(frame)
    assert metric_value(server, "riskserve_challenger_dropped_rows_total", **labels) == 0
    assert expected["disagreements"]["review"] >= 8  # the test can tell agreement from disagreement
    for threshold, disagreements in expected["disagreements"].items():
        counted = metric_value(
            server, "riskserve_challenger_disagreements_total", **labels, threshold=threshold
        )
        assert counted == disagreements
        agreement = metric_value(server, "riskserve_challenger_agreement_rate", **labels, threshold=threshold)
        assert agreement == pytest.approx(1 - disagreements / len(frame))
    # the challenger scores its queue in batches: last-bit float32 differences from one row per call
    correlation = metric_value(server, "riskserve_challenger_score_correlation", **labels)
    assert correlation == pytest.approx(expected["pearson"], abs=1e-6)
    mean = metric_value(server, "riskserve_challenger_mean_abs_score_diff", **labels)
    assert mean == pytest.approx(expected["mean"], abs=1e-7)
    assert metric_value(server, "riskserve_challenger_psi", **labels) == pytest.approx(expected["psi"])
    assert metric_value(server, "riskserve_challenger_min_agreement", **labels) == 0.9


def test_a_full_shadow_queue_drops_and_counts_the_sampled_rows(servers, models, tmp_path):
    server = servers(
        repo_with(models, tmp_path / "repo", fraud=SHADOW_ALL),
        challenger_queue_rows=4,
        live_check_sample_rate=0,
    )
    config = load_model_config(models / "fraud")
    send_rows(server, config, fraud_frame(25, seed=8)[config.feature_names], sizes=(5,))  # 5 never fit in 4
    wait_for(lambda: metric_value(server, "riskserve_challenger_dropped_rows_total", model="fraud") == 25)
    assert metric_value(server, "riskserve_challenger_rows_total", model="fraud") == 0


def _challenger_decides(identity: str, share: float) -> bool:
    """The split's rule, restated: an 8-byte BLAKE2b of the id below share x 2^64."""
    return int.from_bytes(blake2b(identity.encode(), digest_size=8).digest(), "big") < round(share * 2**64)


def test_the_live_split_is_sticky_per_id_and_names_the_deciding_model(servers, models, tmp_path):
    split = {"shadow_share": 0.0, "live_share": 0.5}
    server = servers(
        repo_with(models, tmp_path / "repo", fraud=split, credit=split), live_check_sample_rate=0
    )
    cards = [f"tok-{i:04d}" for i in range(40)]
    with grpc.insecure_channel(server.target) as channel:
        fraud, credit = (
            scoring_pb2_grpc.FraudScoringStub(channel),
            scoring_pb2_grpc.CreditScoringStub(channel),
        )
        for card in cards:
            deciders = set()
            for amount in (12.0, 640.0):  # two calls per card: the same model decides both
                answer = fraud.Score(transaction(card_id=card, amount=amount), timeout=10)
                deciders.add(answer.model.name)
                alone = "fraud_v2" if _challenger_decides(card, 0.5) else "fraud"
                direct = fraud.Score(transaction(card_id=card, amount=amount, model=alone), timeout=10)
                assert answer.probability == direct.probability  # the deciding model's own score
            assert deciders == {"fraud_v2" if _challenger_decides(card, 0.5) else "fraud"}, card
        pinned = fraud.Score(transaction(card_id=cards[0], model_version="1.0.0-test"), timeout=10)
        no_card = fraud.Score(transaction(card_id=""), timeout=10)
        applicants = {}
        for i in range(20):
            applicant = f"person-{i}"
            names = {
                credit.Assess(application(f"a-{i}-{n}", applicant_id=applicant), timeout=10).model.name
                for n in range(2)
            }
            assert len(names) == 1, applicant
            applicants[applicant] = names.pop()
    assert (pinned.model.name, no_card.model.name) == ("fraud", "fraud")  # a pin or no card: the champion
    by_challenger = [c for c in cards if _challenger_decides(c, 0.5)]
    assert 0 < len(by_challenger) < len(cards)  # both models decide some
    expected = {a: "credit_v2" if _challenger_decides(a, 0.5) else "credit" for a in applicants}
    assert applicants == expected and len(set(expected.values())) == 2
    # the challenger's calls are recorded under its name: split + direct calls
    count = metric_value(
        server, "riskserve_request_latency_window_seconds_count", model="fraud_v2", method="Score"
    )
    assert count == 4 * len(by_challenger)


def test_a_challenger_leaves_an_unsampled_call_on_the_seven_module_path(servers, models, tmp_path):
    server = servers(
        repo_with(models, tmp_path / "repo", fraud={"shadow_share": 1e-12}), live_check_sample_rate=0
    )
    with grpc.insecure_channel(server.target) as channel:
        stub = scoring_pb2_grpc.FraudScoringStub(channel)
        for _ in range(20):
            stub.Score(transaction(), timeout=10)
        modules = traced_modules(server, lambda: [stub.Score(transaction(), timeout=10) for _ in range(3)])
    assert modules == SCORE_PATH


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (
            {"model": "fraud_v3"},
            "'fraud_v3' is not a configured model (others configured: credit, credit_v2, fraud_v2)",
        ),
        ({"model": "credit"}, "'credit' is a credit model; 'fraud' is fraud"),
        ({"model": "fraud"}, "challenger.model: 'fraud' is this model"),
        ({"shadow_share": 1.5}, "challenger.shadow_share: Input should be less than or equal to 1"),
    ],
)
def test_a_bad_challenger_is_a_config_error_naming_the_key(models, tmp_path, section, problem):
    repo = repo_with(models, tmp_path / "repo", fraud=section)
    with pytest.raises(ConfigError) as raised:
        discover_models(test_settings(repo, tmp_path / "cache", exit_on_model_error=True))
    assert problem in str(raised.value) and "fraud/config.yaml" in str(raised.value)
    configs, problems = discover_models(test_settings(repo, tmp_path / "cache"))
    assert [(p.name, p.kind) for p in problems] == [("fraud", "config")]  # the others serve on
    assert sorted(c.name for c in configs) == ["credit", "credit_v2", "fraud_v2"]


def test_a_challenger_with_other_inputs_is_a_config_error(models, tmp_path):
    repo = repo_with(models, tmp_path / "repo", fraud=SHADOW_ALL)
    config_file = repo / "fraud_v2" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["inputs"][0]["onnx_name"] = "amount_usd"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError, match=r"challenger.model: 'fraud_v2' has other inputs"):
        discover_models(test_settings(repo, tmp_path / "cache", exit_on_model_error=True))
