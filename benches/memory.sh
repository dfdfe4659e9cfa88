#!/usr/bin/env bash
# Peak memory of one generation of learning organisms against the population
# size (issue 13): MLP 64-128-10 organisms, each learning from 1,024 examples
# of 64-D Gaussian clusters for 100 SGD steps at batch 64 (the issue's
# workload), one generation, records as usual. For each population size the
# script runs `lineage run` under GNU time and prints the peak RSS; the
# marginal bytes per organism is the slope between the two largest sizes.
#
# Usage: bash benches/memory.sh [POPULATION ...]   (default: 256 1024 4096)
# Environment: LINEAGE (the binary; default: builds target/release/lineage),
#              LINEAGE_BENCH_THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(256 1024 4096)
threads=${LINEAGE_BENCH_THREADS:-$(nproc)}
if [ -z "${LINEAGE:-}" ]; then
  cargo build --release --quiet
  LINEAGE=target/release/lineage
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "| population | peak RSS (MiB) | wall (s) |"
echo "|---|---|---|"
prev_n=""; prev_kb=""
for n in "${sizes[@]}"; do
  cat >"$tmp/memory-$n.toml" <<TOML
name = "memory-$n"
seed = 1
generations = 1
population = $n
[genome]
genes = [{ name = "lr", min = 0.01, max = 0.1, log = true }]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
[lifetime]
budget = 1024
steps = 100
batch = 64
environment = { kind = "gaussian_clusters", classes = 10, dim = 64, spread = 1.0, heldout = 256, seed = 1 }
model = { kind = "mlp", hidden = [128], activation = "relu" }
optimizer = { method = "sgd", lr = 0.05, momentum = 0.9 }
TOML
  /usr/bin/time -f "%M %e" -o "$tmp/time-$n" \
    "$LINEAGE" run "$tmp/memory-$n.toml" --out "$tmp/run-$n" --quiet --threads "$threads"
  read -r kb secs <"$tmp/time-$n"
  echo "| $n | $((kb / 1024)) | $secs |"
  if [ -n "$prev_n" ]; then
    slope=$(( (kb - prev_kb) * 1024 / (n - prev_n) ))
    last_slope="marginal: $slope bytes per organism (between $prev_n and $n)"
  fi
  prev_n=$n; prev_kb=$kb
  rm -rf "$tmp/run-$n"
done
echo
echo "${last_slope:-one size: no slope}"
