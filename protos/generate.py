"""Regenerate the domain API's Python stubs (server/api/gen) from protos/riskserve/v1/scoring.proto.

    pip install 'grpcio-tools==1.85.1' && python protos/generate.py

The stubs are committed and never edited by hand; tests/api/test_generated_stubs.py checks that they
describe exactly the committed .proto file.
"""

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
PROTO = "riskserve/v1/scoring.proto"
GEN_PACKAGE = "server.api.gen"  # stubs import each other as server.api.gen.riskserve.v1...
GEN_DIR = REPO_ROOT / "server" / "api" / "gen"


def generate(out_dir: Path = GEN_DIR) -> None:
    """Run protoc (grpcio-tools) into `out_dir` and make the gRPC stub import its messages by package."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTO_ROOT / PROTO),
        ]
    )
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    grpc_stub = out_dir / PROTO.replace(".proto", "_pb2_grpc.py")
    text = grpc_stub.read_text()
    grpc_stub.write_text(text.replace("from riskserve.v1 import", f"from {GEN_PACKAGE}.riskserve.v1 import"))


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else GEN_DIR)
