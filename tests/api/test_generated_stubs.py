"""The committed domain-API stubs are exactly what protoc makes of the committed .proto file."""

import importlib.util
from pathlib import Path

from server.api.gen.riskserve.v1 import scoring_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
STUBS = ("scoring_pb2.py", "scoring_pb2.pyi", "scoring_pb2_grpc.py")


def _generator():
    spec = importlib.util.spec_from_file_location("generate", REPO_ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_match_the_proto(tmp_path):
    _generator().generate(tmp_path)
    committed = REPO_ROOT / "server" / "api" / "gen" / "riskserve" / "v1"
    for name in STUBS:
        fresh = (tmp_path / "riskserve" / "v1" / name).read_text()
        assert fresh == (committed / name).read_text(), f"{name} is stale: run python protos/generate.py"


def test_domain_messages_carry_feature_maps():
    for message in (scoring_pb2.Transaction, scoring_pb2.Application):
        fields = message.DESCRIPTOR.fields_by_name
        assert fields["features"].message_type.GetOptions().map_entry
        assert fields["categorical_features"].message_type.GetOptions().map_entry
