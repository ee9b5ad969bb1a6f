#!/usr/bin/env bash
# Quick start on a fresh Debian machine with Python 3.11 (run as root, or with sudo for apt-get):
#   ./run.sh serve   start the server on the bundled models (127.0.0.1:50051 gRPC, :9100 metrics)
#   ./run.sh test    install everything the tests need and run the whole test suite
#   ./run.sh install install the server into the venv only (what the Dockerfile runs)
# Every other word is passed on: ./run.sh serve --port 50052, ./run.sh test -k quantization.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
VENV=${RISKSERVE_VENV:-.venv}
APT_PACKAGES_TEST=(prometheus libb64-0d)

ensure_venv() {
  local extras=$1 stamp="$VENV/.installed-$1"
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  # Reinstall when pyproject.toml changed since the last install with these extras.
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet -e ".[$extras]"
    touch "$stamp"
  fi
}

ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

cmd=${1:-}
shift || true
case "$cmd" in
  install)
    ensure_venv "loadtest"
    ;;
  serve)
    ensure_venv "loadtest"
    exec "$VENV/bin/riskserve" serve "$@"
    ;;
  test)
    ensure_apt "${APT_PACKAGES_TEST[@]}"
    ensure_venv "train,loadtest,test"
    "$VENV/bin/ruff" check .
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh serve [riskserve serve flags] | ./run.sh test [pytest args] | ./run.sh install" >&2
    exit 2
    ;;
esac
