"""TLS settings are checked together, before anything listens: a client CA without a certificate (which
ran plaintext), a key that is not the certificate's (which said "bind failed"), a missing file (which was a
traceback and exit 1) are each one line naming the setting and exit 2. /metrics can be HTTPS, with client
certificates required."""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from server.config.errors import ConfigError
from server.config.settings import load_settings
from tests.conftest import self_signed_pair
from tests.e2e.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("tls")
    return {name: self_signed_pair(folder, name) for name in ("server", "other")}


def _settings_error(**environ: object) -> str:
    with pytest.raises(ConfigError) as error:
        load_settings(environ={f"RISKSERVE_{k.upper()}": str(v) for k, v in environ.items()})
    return str(error.value)


def test_a_client_ca_without_a_certificate_is_an_error_not_plaintext(pairs):
    cert, _ = pairs["server"]
    message = _settings_error(tls_client_ca_file=cert)
    assert "tls_client_ca_file: mutual TLS needs tls_cert_file and tls_key_file" in message
    assert "RISKSERVE_TLS_CLIENT_CA_FILE" in message


def test_a_key_that_is_not_the_certificates_is_named(pairs):
    cert, _ = pairs["server"]
    _, other_key = pairs["other"]
    message = _settings_error(tls_cert_file=cert, tls_key_file=other_key)
    assert f"tls_key_file: {other_key} is not the key of tls_cert_file {cert}" in message


@pytest.mark.parametrize("setting", ["tls_cert_file", "tls_key_file", "tls_client_ca_file"])
def test_a_missing_file_is_named(pairs, tmp_path, setting):
    cert, key = pairs["server"]
    given = {"tls_cert_file": cert, "tls_key_file": key, "tls_client_ca_file": cert}
    given[setting] = tmp_path / "absent.pem"
    message = _settings_error(**given)
    assert f"{setting}: Value error, no such file: {tmp_path / 'absent.pem'}" in message


def test_a_half_pair_and_a_file_that_is_not_pem_are_named(pairs, tmp_path):
    cert, key = pairs["server"]
    assert "tls_key_file: missing; tls_cert_file needs its key" in _settings_error(tls_cert_file=cert)
    assert "metrics_tls_cert_file: missing" in _settings_error(metrics_tls_key_file=key)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert "not a PEM certificate and its key" in _settings_error(tls_cert_file=junk, tls_key_file=key)
    assert "metrics_tls_client_ca_file" in _settings_error(
        metrics_tls_cert_file=cert, metrics_tls_key_file=key, metrics_tls_client_ca_file=junk
    )


def test_serve_exits_2_with_one_line_naming_the_setting(pairs, tmp_path, model_repo):
    cert, _ = pairs["server"]
    _, other_key = pairs["other"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKSERVE_")}
    cases = {
        "tls_client_ca_file": {"RISKSERVE_TLS_CLIENT_CA_FILE": str(cert)},
        "tls_key_file": {"RISKSERVE_TLS_CERT_FILE": str(cert), "RISKSERVE_TLS_KEY_FILE": str(other_key)},
        "tls_cert_file": {
            "RISKSERVE_TLS_CERT_FILE": str(tmp_path / "gone.pem"),
            "RISKSERVE_TLS_KEY_FILE": "x",
        },
    }
    for setting, variables in cases.items():
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "server.cli.main",
                "serve",
                "--models-dir",
                str(model_repo),
                "--port",
                "0",
            ],
            cwd=REPO_ROOT,
            env=env | variables,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert f"  {setting}: " in done.stderr and done.stderr.startswith("error: invalid server settings")


def _get(url: str, context: ssl.SSLContext | None = None) -> str:
    with urllib.request.urlopen(url, timeout=5, context=context) as answer:
        return answer.read().decode()


def test_metrics_over_https_with_client_certificates(start_server, model_repo, pairs):
    cert, key = pairs["server"]
    client_cert, client_key = pairs["other"]
    running = start_server(
        model_repo,
        metrics_tls_cert_file=cert,
        metrics_tls_key_file=key,
        metrics_tls_client_ca_file=client_cert,  # self-signed: the client's own certificate is its CA
    ).wait_ready()
    url = f"https://127.0.0.1:{running.server.metrics_port}/metrics"
    trusting = ssl.create_default_context(cafile=str(cert))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(url, trusting)  # no client certificate
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _get(url.replace("https", "http"))  # plain HTTP
    trusting.load_cert_chain(client_cert, client_key)
    assert "riskserve_server_ready 1.0" in _get(url, trusting)


def test_metrics_over_https_without_client_certificates(start_server, model_repo, pairs):
    cert, key = pairs["server"]
    running = start_server(model_repo, metrics_tls_cert_file=cert, metrics_tls_key_file=key).wait_ready()
    url = f"https://127.0.0.1:{running.server.metrics_port}/metrics"
    with socket.create_connection(("127.0.0.1", running.server.metrics_port)):  # connects, never speaks
        started = time.monotonic()
        assert "riskserve_request_duration_seconds" in _get(url, ssl.create_default_context(cafile=str(cert)))
        assert time.monotonic() - started < 2, "a silent client must not hold up the scrapes"
