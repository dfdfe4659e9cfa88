#!/usr/bin/env bash
# What an environment written in Python costs per lifetime: 256 organisms
# each learn 4 Gaussian clusters in 8 dimensions (an MLP of 16 units, 16
# SGD steps of 16 examples: 256 fresh training examples per lifetime),
# drawn by the built-in `gaussian_clusters` or by a Python class that draws
# the same kind of data with NumPy. Each path runs ROUNDS times,
# alternating. The figure is the median over generations of `learn_ms`
# (timings.csv), which includes drawing every lifetime's training data: in
# Python, one ENV_FILL round trip to the worker per lifetime, served one at
# a time. The overhead per lifetime is the difference / 256.
#
# Usage: bash benches/python_env.sh
# Environment:
#   ROUNDS   runs per path (default 3)
#   PYTHON   a Python with the `lineage` package (default: target/test-venv)
#   LINEAGE  a `lineage` binary (default: builds the release one)
set -euo pipefail
rounds=${ROUNDS:-3}
source "$(dirname "$0")/python_common.sh"
cat > "$work/clusters.py" <<'PY'
import numpy as np
import lineage

@lineage.environment
class Clusters:
    """Gaussian clusters: 4 classes in 8 dimensions."""
    def __init__(self, config):
        self.centres = np.random.default_rng(7).standard_normal((4, 8)) * 2.0
    def describe(self):
        return lineage.Task.classification(inputs=8, classes=4, heldout=400)
    def fill(self, part, seed, n):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 4, n)
        return {"x": self.centres[labels] + rng.standard_normal((n, 8)), "labels": labels}
PY
for f in python builtin; do
  if [ $f = python ]; then
    env='{ plugin = "py:Clusters", seed = 7 }'
    plug=$'[plugins.py]\nlibrary = "python:clusters.py"'
  else
    env='{ kind = "gaussian_clusters", classes = 4, dim = 8, spread = 1.0, heldout = 400, seed = 7 }'
    plug=''
  fi
  cat > "$work/$f.toml" <<TOML
name = "bench-env-$f"
seed = 1
generations = 12
population = 256

[genome]
genes = [{ name = "lr", min = 1e-3, max = 0.3, log = true }]

$plug

[fitness]
function = "heldout_loss"

[selection]
method = "tournament"
tournament_size = 2

[mutation]
sigma = 0.1
gene_rate = 1.0

[lifetime]
budget = 256
steps = 16
batch = 16
eval_every = 16
environment = $env
model = { kind = "mlp", hidden = [16], activation = "relu" }
optimizer = { method = "sgd" }
TOML
done
alternate "$rounds" learn_ms
