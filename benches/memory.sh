#!/usr/bin/env bash
# Peak memory of one generation against the population size (issue 13).
#
# Learning organisms (the default): MLP 64-128-10 organisms, each learning
# from 1,024 examples of 64-D Gaussian clusters for 100 SGD steps at batch
# 64 (the issue's workload), one generation, a checkpoint at its end. For
# each population size the script runs `lineage run` under GNU time and
# prints the peak RSS, the wall time, the throughput in organism-steps/s,
# the bytes per row of organisms.csv and the checkpoint's bytes per
# organism; the marginal bytes per organism is the slope between the two
# largest sizes.
#
# Genome-only organisms (GENOME_ONLY=1): 1,024-bit OneMax genomes, one
# generation of tournament selection and bit-flip mutation.
#
# Usage: bash benches/memory.sh [POPULATION ...]   (default: 256 1024 4096)
# Environment:
#   LINEAGE                 the binary (default: builds target/release/lineage)
#   LINEAGE_BENCH_THREADS   worker threads (default: all cores)
#   WEIGHTS                 record.weights: needed (default), learned, all
#   INHERITANCE             lifetime.inheritance (default darwinian; lamarckian
#                           keeps every organism's birth and learned weights)
#   ORGANISMS               record.organisms: all (default), none, sample:N, elites:N
#   GENOME_ONLY             1: genome-only organisms instead of learning ones
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(256 1024 4096)
threads=${LINEAGE_BENCH_THREADS:-$(nproc)}
weights=${WEIGHTS:-needed}
inheritance=${INHERITANCE:-darwinian}
organisms=${ORGANISMS:-all}
genome_only=${GENOME_ONLY:-0}
if [ -z "${LINEAGE:-}" ]; then
  cargo build --release --quiet
  LINEAGE=target/release/lineage
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "$organisms" in
  sample:*) record="organisms = \"sample\"
sample = ${organisms#sample:}" ;;
  elites:*) record="organisms = \"elites\"
elites = ${organisms#elites:}" ;;
  *) record="organisms = \"$organisms\"" ;;
esac

if [ "$genome_only" = 1 ]; then
  echo "genome-only: 1,024-bit OneMax genomes, one generation, record.organisms = $organisms, $threads threads"
else
  echo "MLP 64-128-10, 100 SGD steps: record.weights = $weights, inheritance = $inheritance, record.organisms = $organisms, $threads threads"
fi
echo
echo "| population | peak RSS (MiB) | wall (s) | organism-steps/s | organisms.csv bytes/row | checkpoint bytes/organism | records + checkpoint share |"
echo "|---|---|---|---|---|---|---|"
prev_n=""; prev_kb=""
for n in "${sizes[@]}"; do
  if [ "$genome_only" = 1 ]; then
    cat >"$tmp/memory-$n.toml" <<TOML
name = "memory-$n"
seed = 1
generations = 1
population = $n
[genome]
bits = 1024
[fitness]
function = "onemax"
[selection]
method = "tournament"
tournament_size = 2
[mutation]
bit_rate = 0.0009765625
[record]
$record
TOML
  else
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
inheritance = "$inheritance"
environment = { kind = "gaussian_clusters", classes = 10, dim = 64, spread = 1.0, heldout = 256, seed = 1 }
model = { kind = "mlp", hidden = [128], activation = "relu" }
optimizer = { method = "sgd", lr = 0.05, momentum = 0.9 }
[record]
$record
weights = "$weights"
TOML
  fi
  /usr/bin/time -f "%M %e" -o "$tmp/time-$n" \
    "$LINEAGE" run "$tmp/memory-$n.toml" --out "$tmp/run-$n" --quiet --threads "$threads"
  read -r kb secs <"$tmp/time-$n"
  run="$tmp/run-$n"
  rows=0; csv_bytes=0
  if [ -f "$run/organisms.csv" ]; then
    rows=$(( $(wc -l <"$run/organisms.csv") - 1 ))
    csv_bytes=$(( $(stat -c %s "$run/organisms.csv") - $(head -1 "$run/organisms.csv" | wc -c) ))
  fi
  per_row="-"; [ "$rows" -gt 0 ] && per_row=$(( csv_bytes / rows ))
  # The last checkpoint holds the population that starts the next generation.
  last=$(ls -d "$run"/checkpoints/gen-* | sort | tail -1)
  ckpt=$(du -sb "$last" | cut -f1)
  steps="-"
  if [ "$genome_only" != 1 ]; then
    steps=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n * 100 / s }')
  fi
  # Wall time of the Record set and the checkpoint against the generation's.
  share=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { r += $col["record_ms"] + $col["checkpoint_ms"]; t += $col["total_ms"] }
    END { printf "%.1f%%", 100 * r / t }' "$run/timings.csv")
  echo "| $n | $((kb / 1024)) | $secs | $steps | $per_row | $(( ckpt / n )) | $share |"
  if [ -n "$prev_n" ]; then
    slope=$(( (kb - prev_kb) * 1024 / (n - prev_n) ))
    last_slope="marginal: $slope bytes per organism (between $prev_n and $n)"
  fi
  prev_n=$n; prev_kb=$kb
  rm -rf "$run"
done
echo
echo "${last_slope:-one size: no slope}"
