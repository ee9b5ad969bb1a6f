"""The client commands' one settings type: target and TLS derived from the server's settings and flags."""

import subprocess
import sys
from pathlib import Path

import pytest

from server.cli.client_channel import ClientSettings
from server.config.errors import ConfigError
from server.config.settings import ServerSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("127.0.0.1", "127.0.0.1:6000"),
        ("0.0.0.0", "127.0.0.1:6000"),
        ("::", "127.0.0.1:6000"),
        ("10.1.2.3", "10.1.2.3:6000"),
        ("::1", "[::1]:6000"),
    ],
)
def test_the_target_follows_the_servers_host_and_port(host: str, target: str) -> None:
    assert ClientSettings.from_server(ServerSettings(host=host, port=6000)).target == target
    assert ClientSettings.from_server(ServerSettings(host=host), target="h:1").target == "h:1"


def test_a_server_port_of_zero_needs_an_explicit_target() -> None:
    with pytest.raises(ConfigError, match="pass --target"):
        ClientSettings.from_server(ServerSettings(port=0))
    assert ClientSettings.from_server(ServerSettings(port=0), target="127.0.0.1:7").target == "127.0.0.1:7"


def test_tls_follows_the_servers_settings_unless_flags_say_otherwise(tmp_path: Path) -> None:
    assert ClientSettings.from_server(ServerSettings()).tls is None  # plaintext server: plaintext client
    pair = dict(tls_cert_file=tmp_path / "s.pem", tls_key_file=tmp_path / "s.key")
    # model_construct: no files here; the settings model checks real ones (tests/e2e/test_tls_settings.py)
    tls = ClientSettings.from_server(ServerSettings.model_construct(**pair)).tls
    assert (tls.root, tls.cert, tls.key) == (pair["tls_cert_file"], None, None)  # trusts the server cert
    mutual = ClientSettings.from_server(
        ServerSettings.model_construct(**pair, tls_client_ca_file=tmp_path / "ca.pem")
    ).tls
    assert (mutual.cert, mutual.key) == (pair["tls_cert_file"], pair["tls_key_file"])
    own = ClientSettings.from_server(
        ServerSettings.model_construct(**pair, tls_client_ca_file=tmp_path / "ca.pem"),
        tls_ca=tmp_path / "ca.pem",
        tls_cert=tmp_path / "c.pem",
        tls_key=tmp_path / "c.key",
        tls_server_name="risk.internal",
    ).tls
    assert (own.root, own.cert, own.key, own.server_name) == (
        tmp_path / "ca.pem",
        tmp_path / "c.pem",
        tmp_path / "c.key",
        "risk.internal",
    )
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key must be given together"):
        ClientSettings.from_server(ServerSettings(), tls_cert=tmp_path / "c.pem")


def test_an_unreadable_certificate_file_is_named(tmp_path: Path) -> None:
    client = ClientSettings.from_server(ServerSettings(), tls_ca=tmp_path / "absent.pem")
    with pytest.raises(ConfigError, match=r"cannot read TLS CA file .*absent\.pem"):
        client.channel()


def test_the_client_commands_stay_light() -> None:
    """Exec probes run `riskserve health` (or `python -m server.cli.health_cmd`) every few seconds."""
    code = (
        "import sys, server.cli.health_cmd, server.cli.main as m; m.build_parser(); "
        "print(sorted({'pandas', 'numpy', 'onnxruntime'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "[]"
