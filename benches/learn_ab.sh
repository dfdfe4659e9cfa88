#!/usr/bin/env bash
# Two builds of Lineage against each other, and against JAX, on the
# lifetime-learning workloads of benches/learn_vs_peers.sh, in one run: for a
# refactor that must not change speed. Each Lineage build runs each workload
# ROUNDS times, alternating A and B, so both see the same load; JAX runs once
# per workload. Prints every measurement and a table of medians with the
# ratios B/A and B/JAX.
#
# Usage: bash benches/learn_ab.sh LINEAGE_A LINEAGE_B
#   LINEAGE_A, LINEAGE_B   two `lineage` binaries (release builds)
# Environment:
#   ROUNDS                 runs per build and workload (default 3)
#   PYTHON                 a Python with jax[cpu] and numpy (default: the
#                          tests' environment, target/test-venv, which
#                          `bash tests/run.sh` makes)
#   LINEAGE_BENCH_THREADS  threads for every framework (default: all cores)
# The machine is shared and noisy: compare the ratios of one run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# = 2 ] || { sed -n '2,19p' "$0"; exit 2; }
a=$1 b=$2
rounds=${ROUNDS:-3}
py=${PYTHON:-target/test-venv/bin/python}
threads=${LINEAGE_BENCH_THREADS:-$(nproc)}
"$py" -c 'import jax' 2>/dev/null ||
  { echo "error: $py has no jax: run \`bash tests/run.sh\` once, or set PYTHON" >&2; exit 1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads: $threads; load before: $(cut -d' ' -f1 /proc/loadavg)"
rows=()
for row in "mlp:64-128-10 sgd 64 200" \
           "mlp:64-128-10 adamw 64 200" \
           "rnn:3-64-3:t8 sgd 32 100" \
           "transformer:49-48-32:l2:h4:ff96:t17 adamw 64 30" \
           "transformer:49-48-32:l2:h1:ff96:t17:noln:relu:last adamw 128 30"; do
  read -r model optimizer batch steps <<<"$row"
  args=(--model "$model" --optimizer "$optimizer" --batch "$batch" --population 64 --steps "$steps" --threads "$threads")
  rate() { "$@" | grep '^{' | tail -1 | "$py" -c 'import json,sys; print(json.load(sys.stdin)["organism_steps_per_s"])'; }
  ra=() rb=()
  for _ in $(seq "$rounds"); do
    ra+=("$(rate "$a" bench learn "${args[@]}" --json)")
    rb+=("$(rate "$b" bench learn "${args[@]}" --json)")
  done
  rj=$(rate "$py" benches/peers/learn_jax.py "${args[@]}")
  echo "$model $optimizer: A ${ra[*]}; B ${rb[*]}; JAX $rj"
  rows+=("$model|$optimizer|${ra[*]}|${rb[*]}|$rj")
done
echo
"$py" - "${rows[@]}" <<'PY'
import statistics, sys
print("| model | optimizer | A (median) | B (median) | B/A | JAX | B/JAX |")
print("|---|---|---|---|---|---|---|")
for row in sys.argv[1:]:
    model, opt, ra, rb, rj = row.split("|")
    ma = statistics.median(map(float, ra.split()))
    mb = statistics.median(map(float, rb.split()))
    j = float(rj)
    print(f"| `{model}` | {opt} | {ma:,.0f} | {mb:,.0f} | {mb / ma:.2f}x | {j:,.0f} | {mb / j:.2f}x |")
PY
echo "load after: $(cut -d' ' -f1 /proc/loadavg)"
