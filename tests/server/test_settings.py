"""One typed server configuration: flags > RISKSERVE_* environment > YAML file > defaults."""

from pathlib import Path

import pytest

from server.config.errors import ConfigError
from server.config.settings import InferenceHandoff, ServerSettings, load_settings


def test_defaults_serve_the_bundled_models_on_localhost():
    settings = load_settings(environ={})
    assert (settings.host, settings.port, settings.metrics_host, settings.metrics_port) == (
        "127.0.0.1",
        50051,
        "127.0.0.1",
        9100,
    )
    assert settings.models == () and settings.inference_handoff is InferenceHandoff.AUTO
    assert settings.debug_inference_delay_ms == 0 and settings.tls_cert_file is None


def test_flags_beat_environment_beat_file(tmp_path: Path):
    config = tmp_path / "server.yaml"
    config.write_text("port: 6000\nmetrics_port: 9300\ndrain_pause_s: 1.5\nmodels: [fraud]\n")
    environ = {"RISKSERVE_PORT": "7000", "RISKSERVE_MODELS": "fraud,credit", "RISKSERVE_LOG_LEVEL": "DEBUG"}
    settings = load_settings(config, {"port": 8000, "host": None}, environ)
    assert settings.port == 8000  # flag
    assert settings.models == ("fraud", "credit")  # environment over file
    assert settings.log_level == "DEBUG"  # environment
    assert settings.metrics_port == 9300 and settings.drain_pause_s == 1.5  # file
    assert settings.host == "127.0.0.1"  # a flag left unset does not override


@pytest.mark.parametrize(
    ("environ", "file_text", "names"),
    [
        ({"RISKSERVE_PORT": "http"}, "", ["port", "environment", "RISKSERVE_PORT"]),
        ({}, "grace_period_s: -1\n", ["grace_period_s", "config file"]),
        ({}, "prot: 5000\n", ["prot"]),
        ({"RISKSERVE_TLS_CERT_FILE": "/x.pem"}, "", ["tls_cert_file", "no such file: /x.pem", "environment"]),
    ],
)
def test_bad_values_are_named_with_their_source(tmp_path: Path, environ, file_text, names):
    config = tmp_path / "server.yaml"
    config.write_text(file_text)
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ=environ)
    for name in names:
        assert name in str(error.value)


def test_missing_config_file_is_reported(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_settings_are_immutable():
    with pytest.raises(ValueError):
        ServerSettings().port = 1  # type: ignore[misc]
