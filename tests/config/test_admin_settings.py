"""The admin port's guards: off by default, loopback unless mutual TLS, one process, not the serving port."""

import pytest

from server.config.errors import ConfigError
from server.config.settings import load_settings


def test_admin_is_off_and_on_loopback_by_default():
    settings = load_settings(environ={})
    assert settings.admin_enabled is False and settings.admin_host == "127.0.0.1"
    assert settings.model_poll_s == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workers": 2}, "admin_enabled: needs workers = 1"),
        ({"admin_host": "0.0.0.0"}, "admin_host: 0.0.0.0 is not a loopback address"),
        ({"admin_port": 50051}, "admin_port: 50051 is the serving port"),
    ],
)
def test_unsafe_admin_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError) as refused:
        load_settings(overrides={"admin_enabled": True, **overrides}, environ={})
    assert message in str(refused.value)
