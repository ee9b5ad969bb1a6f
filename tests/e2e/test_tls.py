"""TLS: with a certificate and key configured, the server answers only TLS clients that trust it."""

import shutil
import subprocess

import grpc
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from tests.e2e.requests import transaction


@pytest.fixture()
def certificate(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "server.key", tmp_path / "server.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


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
