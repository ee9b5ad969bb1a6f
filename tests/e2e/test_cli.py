"""`riskserve score` and `riskserve health` against a running server, as a user runs them."""

import json
import socket
import subprocess
import sys

from tests.e2e.conftest import REPO_ROOT


def _riskserve(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server.cli.main", *args],
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_score_fraud_prints_decision_for_a_random_holdout_row(server, model_repo):
    done = _riskserve(
        "score", "fraud", "--models-dir", str(model_repo), "--target", server.target, "--seed", "3"
    )
    assert done.returncode == 0, done.stderr
    assert "risk score" in done.stdout and "model fraud 1.0.0-test (fp32, gate disabled)" in done.stdout
    assert any(word in done.stdout for word in ("APPROVE", "REVIEW", "DECLINE"))


def test_score_credit_from_json_with_field_override_prints_reasons(server, model_repo):
    application = {
        "annual_income": 30000,
        "debt_to_income": 0.7,
        "revolving_utilization": 1.1,
        "delinquencies_2y": 2,
        "inquiries_6m": 4,
        "credit_history_months": 10,
        "loan_amount": 30000,
        "term_months": 60,
        "employment_years": 1,
        "open_accounts": 4,
        "purpose": "car",
        "home_ownership": "rent",
    }
    done = _riskserve(
        "score",
        "credit",
        "--json",
        "-",
        "--field",
        "application_id=app-77",
        "--output",
        "json",
        "--target",
        server.target,
        stdin=json.dumps(application),
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["application_id"] == "app-77" and answer["reasons"]
    assert answer["reasons"][0]["code"].startswith("RC_")


def test_score_reports_the_named_field_of_a_bad_request(server, model_repo):
    done = _riskserve(
        "score",
        "fraud",
        "--models-dir",
        str(model_repo),
        "--target",
        server.target,
        "--field",
        "currency=XYZ",
    )
    assert done.returncode == 1
    assert "INVALID_ARGUMENT: currency: unknown value 'XYZ'" in done.stderr


def test_score_names_a_model_missing_from_the_models_dir_in_one_line(model_repo, tmp_path):
    done = _riskserve("score", "fraud", "--model", "nosuch", "--models-dir", str(model_repo))
    assert done.returncode == 2
    assert done.stderr == f"error: no model 'nosuch' in {model_repo} (models there: credit, fraud)\n"
    done = _riskserve("score", "credit", "--models-dir", str(tmp_path / "absent"))
    assert done.returncode == 2
    assert done.stderr == f"error: models dir {tmp_path / 'absent'} is not a directory (set --models-dir)\n"


def test_health_exit_status_follows_serving_state(server):
    done = _riskserve("health", "--target", server.target, "--service", "riskserve.v1.FraudScoring")
    assert done.returncode == 0 and "SERVING" in done.stdout
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _riskserve("health", "--target", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert done.returncode == 2
