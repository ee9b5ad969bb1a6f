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
APT_PACKAGES_TEST=(prometheus)
# Triton's perf_analyzer, for tests/e2e/test_perf_analyzer.py: PyPI's perf-analyzer wheel, installed beside the
# venv by ensure_perf_analyzer. Not a pip extra: its wheels are manylinux_2_38 only, which pip refuses on a
# glibc 2.36 host (Debian 12) and an unpinned name falls back to the 0.1.0 placeholder, which has no binary.
PERF_ANALYZER_VERSION=2.60.0

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

# Install perf-analyzer into $VENV/perf-analyzer and write $VENV/bin/perf_analyzer, which runs its binary and
# returns its exit status (the wheel's own console script drops it). The binary needs glibc 2.38 and GCC 13's
# libstdc++; on an older host the wrapper starts it with Debian 13's libc6, libstdc++6 and libgcc-s1, unpacked
# into $VENV/perf-analyzer/runtime (nothing installed system-wide). Best effort: the test skips without it.
ensure_perf_analyzer() {
  local dir arch triplet
  dir="$(cd "$VENV" && pwd)/perf-analyzer"  # absolute: the wrapper runs from any directory
  local stamp="$dir/.installed-$PERF_ANALYZER_VERSION" wrapper="$VENV/bin/perf_analyzer"
  [ -f "$stamp" ] && [ -x "$wrapper" ] && return 0
  arch=$(uname -m)
  triplet="$arch-linux-gnu"
  rm -rf "$dir"
  "$VENV/bin/pip" install --quiet --no-deps --only-binary=:all: --platform "manylinux_2_38_$arch" \
    --target "$dir/wheel" "perf-analyzer==$PERF_ANALYZER_VERSION" || return 1
  local binary="$dir/wheel/perf_analyzer/bin/perf_analyzer" run libs
  chmod +x "$binary"
  libs=$(ldd "$binary" 2>&1 || true)
  if [[ $libs == *"not found"* ]]; then  # e.g. version `GLIBC_2.38' not found
    fetch_debian13_runtime "$dir/runtime" || return 1
    local runtime="$dir/runtime/usr/lib/$triplet" loader
    loader=$(ls "$runtime"/ld-linux-*.so.*)
    run="exec \"$loader\" --library-path \"$runtime:/lib/$triplet:/usr/lib/$triplet\" \"$binary\" \"\$@\""
  else
    run="exec \"$binary\" \"\$@\""
  fi
  printf '#!/bin/sh\n# Written by run.sh: perf_analyzer %s from PyPI perf-analyzer.\n%s\n' \
    "$PERF_ANALYZER_VERSION" "$run" >"$wrapper"
  chmod +x "$wrapper"
  "$wrapper" --version >/dev/null 2>&1 || return 1
  touch "$stamp"
}

# Debian 13's C and C++ runtime, downloaded with apt-get from the host's own Debian mirror (read from its apt
# sources) with a private apt state, and unpacked into $1.
fetch_debian13_runtime() {
  local into=$1 work uris
  uris=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  [ -n "$uris" ] || uris=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:/) { print $i; exit } }' \
    /etc/apt/sources.list 2>/dev/null)
  [ -n "$uris" ] || { echo "run.sh: no Debian mirror in the apt sources" >&2; return 1; }
  work=$(mktemp -d)
  mkdir -p "$work/parts" "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$into"
  printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' \
    "$uris" /usr/share/keyrings/debian-archive-keyring.gpg >"$work/parts/debian13.sources"
  local apt=(apt-get -qq -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/parts"
    -o "Dir::Etc::PreferencesParts=$work/parts" -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache" -o "Dir::State::status=/dev/null" -o "APT::Sandbox::User=root")
  if "${apt[@]}" update && (cd "$work/debs" && "${apt[@]}" download libc6 libstdc++6 libgcc-s1); then
    for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$into"; done
    rm -rf "$work"
  else
    rm -rf "$work"
    return 1
  fi
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
    ensure_perf_analyzer || echo "run.sh: perf_analyzer not installed; tests/e2e/test_perf_analyzer.py will skip" >&2
    "$VENV/bin/ruff" check .
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh serve [riskserve serve flags] | ./run.sh test [pytest args] | ./run.sh install" >&2
    exit 2
    ;;
esac
