"""Fixtures every test package may use."""

import shutil
import subprocess
from pathlib import Path

import pytest


def self_signed_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (usable as its own CA) and its key."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    command = [
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
    ]
    command += [
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture()
def certificate(tmp_path):
    """(cert.pem, key.pem) of a self-signed localhost certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    return self_signed_pair(tmp_path, "server")
