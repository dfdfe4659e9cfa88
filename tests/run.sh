#!/usr/bin/env bash
# Every test of Lineage, on a fresh machine with the README's prerequisites
# (Rust, Python 3, a C compiler, make). It makes what the tests need once
# and reuses it: a virtual environment with the pinned packages of
# tests/requirements.txt under target/ (remade when that file changes).
# Arguments go to `cargo test` (e.g. `bash tests/run.sh --test replay`).
# .ci/run calls exactly this command.
set -euo pipefail
cd "$(dirname "$0")/.."

missing() {
  echo "error: the tests need $1, which is not on PATH: $2" >&2
  exit 1
}
command -v cargo >/dev/null 2>&1 ||
  missing "Rust (cargo)" "install it from https://rustup.rs"
cc_cmd=${CC:-cc}
command -v "$cc_cmd" >/dev/null 2>&1 ||
  missing "a C compiler ($cc_cmd)" "the plugin tests build C plugins; on Debian or Ubuntu: apt-get install build-essential"
command -v make >/dev/null 2>&1 ||
  missing "make" "the plugin tests build a scaffolded C plugin; on Debian or Ubuntu: apt-get install make"
python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 ||
  missing "Python 3 ($python)" "tests/replay.rs retrains a lifetime in JAX; on Debian or Ubuntu: apt-get install python3 python3-venv"

target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target="$PWD/$target" ;; esac
venv="$target/test-venv"
stamp="$venv/requirements.txt"
if ! cmp -s tests/requirements.txt "$stamp" 2>/dev/null; then
  echo "== making the tests' Python environment in $venv (once)"
  rm -rf "$venv"
  "$python" -m venv "$venv" 2>/dev/null || {
    rm -rf "$venv"
    missing "Python's venv module" "on Debian or Ubuntu: apt-get install python3-venv"
  }
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$stamp"
fi
export LINEAGE_PYTHON="$venv/bin/python"

cargo test --workspace --locked "$@"

# The Python package (python/): built into the same environment (the dev
# profile, sharing the build above) and tested by pytest against the
# binary just built. Part of every full run; `bash tests/run.sh ARGS`, which
# picks cargo tests, leaves it out.
if [ $# -eq 0 ]; then
  echo "== the Python package: maturin develop into $venv, then pytest python/tests"
  VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop --quiet --locked \
    -m python/Cargo.toml
  LINEAGE_BIN="$target/debug/lineage" "$venv/bin/python" -m pytest -q python/tests
fi
