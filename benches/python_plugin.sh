#!/usr/bin/env bash
# What a fitness function written in Python costs per generation: 1,024
# organisms with 8 real genes, a Python function that does nothing (returns
# zeros) against the built-in `sphere`, each run ROUNDS times alternating.
# The figure is the median over generations of `evaluate_ms` (timings.csv):
# the batch encoded, sent to the Python worker, decoded into NumPy, scored,
# and the scores sent back. Target: under 5 ms per generation.
#
# Usage: bash benches/python_plugin.sh
# Environment:
#   ROUNDS   runs per path (default 3)
#   PYTHON   a Python with the `lineage` package (default: target/test-venv)
#   LINEAGE  a `lineage` binary (default: builds the release one)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
py=${PYTHON:-target/test-venv/bin/python}
"$py" -c 'import lineage' 2>/dev/null ||
  { echo "error: $py has no lineage package: run \`bash tests/run.sh\` once, or set PYTHON" >&2; exit 1; }
if [ -z "${LINEAGE:-}" ]; then
  cargo build --release --offline -q --bin lineage
  LINEAGE=target/release/lineage
fi
export LINEAGE_PLUGIN_PYTHON=$py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/nothing.py" <<'PY'
import numpy as np
import lineage

@lineage.fitness(minimize=["nothing"])
def nothing(batch):
    return np.zeros(len(batch))
PY
for f in python builtin; do
  if [ $f = python ]; then fn='py:nothing'; plug=$'[plugins.py]\nlibrary = "python:nothing.py"'; else fn=sphere; plug=''; fi
  cat > "$work/$f.toml" <<TOML
name = "bench-$f"
seed = 1
generations = 30
population = 1024

[genome]
genes = [{ name = "x", count = 8, min = -1.0, max = 1.0 }]

$plug

[fitness]
function = "$fn"

[selection]
method = "tournament"
tournament_size = 2

[mutation]
sigma = 0.1
TOML
done
median_ms() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "evaluate_ms") c = i; next } { print $c }' "$1/timings.csv" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1 /proc/loadavg); rounds: $rounds"
for r in $(seq "$rounds"); do
  for f in builtin python; do
    "$LINEAGE" run "$work/$f.toml" --out "$work/run-$f-$r" --quiet
    echo "$f round $r: median evaluate_ms per generation $(median_ms "$work/run-$f-$r")"
  done
done
