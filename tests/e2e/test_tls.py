"""TLS: with a certificate and key configured, the server answers only TLS clients that trust it; and
the client commands, `riskserve health` (the Docker HEALTHCHECK, exec probes) and `riskserve score`,
follow the same settings (RISKSERVE_* variables, --config) to reach it."""

import os
import subprocess
import sys

import grpc
import pytest
import yaml

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from tests.e2e.conftest import REPO_ROOT
from tests.e2e.requests import transaction


def test_tls_server_scores_for_a_trusting_client_only(start_server, model_repo, certificate):
    cert, key = certificate
    secure = start_server(model_repo, tls_cert_file=cert, tls_key_file=key).wait_ready()
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(secure.target, credentials) as channel:
        answer = scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction("tls-1"), timeout=5)
    assert answer.transaction_id == "tls-1"
    with grpc.insecure_channel(secure.target) as channel, pytest.raises(grpc.RpcError) as error:
        scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction(), timeout=2)
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE


RISKSERVE_HEALTH = ("server.cli.main", "health")
LIGHT_HEALTH = ("server.cli.health_cmd",)  # the same check, fewer imports (for frequent exec probes)


def _health(
    port: int, module: tuple[str, ...] = RISKSERVE_HEALTH, **env_settings
) -> subprocess.CompletedProcess:
    """`riskserve health` in a subprocess with only these RISKSERVE_* settings, as a container runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKSERVE_")}
    env |= {f"RISKSERVE_{k.upper()}": str(v) for k, v in (env_settings | {"port": port}).items()}
    command = [sys.executable, "-m", *module, "--timeout", "5"]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30)


def test_health_command_speaks_tls_from_the_servers_settings(start_server, model_repo, certificate):
    cert, key = certificate
    secure = start_server(model_repo, tls_cert_file=cert, tls_key_file=key).wait_ready()
    answered = _health(secure.server.port, tls_cert_file=cert, tls_key_file=key)
    assert answered.returncode == 0, answered.stderr
    assert "SERVING" in answered.stdout
    plaintext = _health(secure.server.port)
    assert plaintext.returncode != 0
    assert "UNAVAILABLE" in plaintext.stderr


def test_health_command_presents_the_servers_pair_under_mtls(start_server, model_repo, certificate):
    cert, key = certificate  # self-signed: it is its own CA, so it also vouches for itself as a client
    mutual = start_server(model_repo, tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=cert)
    mutual.wait_ready()
    settings = {"tls_cert_file": cert, "tls_key_file": key}
    answered = _health(mutual.server.port, LIGHT_HEALTH, **settings, tls_client_ca_file=cert)
    assert answered.returncode == 0, answered.stderr
    refused = _health(mutual.server.port, LIGHT_HEALTH, **settings)  # TLS, but no client certificate
    assert refused.returncode != 0


RISKSERVE_SCORE = ("server.cli.main", "score", "fraud")


def _score(*args: str) -> subprocess.CompletedProcess:
    """`riskserve score fraud ARGS` in a subprocess without RISKSERVE_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKSERVE_")}
    command = [sys.executable, "-m", *RISKSERVE_SCORE, "--seed", "1", "--timeout", "5", *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30)


def _config_file(path, **settings) -> str:
    """A server settings YAML, as `riskserve serve --config` reads it."""
    path.write_text(yaml.safe_dump({k: v if isinstance(v, int) else str(v) for k, v in settings.items()}))
    return str(path)


def test_score_command_speaks_tls_from_the_config_file(start_server, model_repo, certificate, tmp_path):
    cert, key = certificate
    secure = start_server(model_repo, tls_cert_file=cert, tls_key_file=key).wait_ready()
    settings = dict(port=secure.server.port, models_dir=model_repo, tls_cert_file=cert, tls_key_file=key)
    answered = _score("--config", _config_file(tmp_path / "tls.yaml", **settings))
    assert answered.returncode == 0, answered.stderr
    assert "risk score" in answered.stdout and "model fraud 1.0.0-test" in answered.stdout
    plaintext = _score("--target", secure.target, "--models-dir", str(model_repo))
    assert plaintext.returncode == 1
    assert "UNAVAILABLE" in plaintext.stderr


def test_score_command_presents_the_servers_pair_under_mtls(start_server, model_repo, certificate, tmp_path):
    cert, key = certificate
    mutual = start_server(model_repo, tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=cert)
    mutual.wait_ready()
    settings = dict(port=mutual.server.port, models_dir=model_repo, tls_cert_file=cert, tls_key_file=key)
    config = _config_file(tmp_path / "mtls.yaml", **settings, tls_client_ca_file=cert)
    answered = _score("--config", config, "--output", "json")
    assert answered.returncode == 0, answered.stderr
    assert '"risk_score"' in answered.stdout
    no_client_cert = _score("--config", _config_file(tmp_path / "tls.yaml", **settings))
    assert no_client_cert.returncode == 1
    assert "UNAVAILABLE" in no_client_cert.stderr
    explicit = _score("--config", config, "--tls-cert", str(cert), "--tls-key", str(key))
    assert explicit.returncode == 0, explicit.stderr
    half_pair = _score("--config", config, "--tls-cert", str(cert))
    assert half_pair.returncode == 2
    assert half_pair.stderr.strip() == "error: --tls-cert and --tls-key must be given together"
