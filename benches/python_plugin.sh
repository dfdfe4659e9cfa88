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
rounds=${ROUNDS:-3}
source "$(dirname "$0")/python_common.sh"
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
alternate "$rounds" evaluate_ms
