#!/usr/bin/env bash
# Regenerates the Python stubs of protos/ into server/api/gen/ (committed; never edit them by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
out=server/api/gen
mkdir -p "$out"
"${PYTHON:-.venv/bin/python}" -m grpc_tools.protoc -I protos --python_out="$out" --pyi_out="$out" \
  --grpc_python_out="$out" protos/riskserve/v1/*.proto
# protoc writes absolute imports (`from riskserve.v1 import ...`); make them package-relative.
sed -i -E 's/^from riskserve\.v1 import/from server.api.gen.riskserve.v1 import/' "$out"/riskserve/v1/*_pb2_grpc.py
touch server/api/__init__.py "$out/__init__.py" "$out/riskserve/__init__.py" "$out/riskserve/v1/__init__.py"
