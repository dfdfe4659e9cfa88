#!/usr/bin/env bash
# What supplying a lifetime's data through an environment plugin costs: the
# built-in `gaussian_clusters` (MLP) and `decision` (RNN) environments, run
# once directly and once served by benches/env-plugin (the same code
# drawing the same kind of data, reached through the environment ABI:
# the seed handed over, the host's buffers filled and checked). Each
# workload runs ROUNDS times, alternating built-in and plugin so both see
# the same load; the figures are the medians of the runs' summed `learn_ms`
# (timings.csv: drawing every lifetime's data and learning), and the median
# (and range) of the rounds' paired ratios plugin/built-in. Target: at most
# 1.05. Two more rows bound it from above:
# `draw`, lifetimes of 4,096 examples and 5 steps, where drawing the data is
# most of the work; and `isolated`, the decision workload with the plugin in
# a worker process (`isolation = "process"`: every lifetime's data cross a
# pipe, one lifetime at a time).
#
# Usage: bash benches/env_plugin.sh
# Environment:
#   ROUNDS     runs per workload and path (default 5)
#   LINEAGE    a release `lineage` binary (default: builds target/release/lineage)
# The machine is shared and noisy: compare the ratios of one run.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
cargo build --release --offline -q -p lineage-bench-env
if [ -z "${LINEAGE:-}" ]; then
  cargo build --release --offline -q --bin lineage
  LINEAGE=target/release/lineage
fi
lib=$(pwd)/target/release/liblineage_bench_env.so
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# scenario NAME ENVIRONMENT MODEL BUDGET STEPS POPULATION GENERATIONS [ISOLATION]
scenario() {
  cat > "$work/$1.toml" <<TOML
name = "$1"
seed = 1
generations = $7
population = $6

[genome]
genes = [{ name = "lr", min = 1e-3, max = 0.3, log = true }]

[plugins.bench]
library = "$lib"
isolation = "${8:-in-process}"

[fitness]
function = "heldout_loss"

[selection]
method = "tournament"
tournament_size = 2

[mutation]
sigma = 0.1

[lifetime]
budget = $4
steps = $5
batch = 32
eval_every = $5
environment = $2
model = $3
optimizer = { method = "sgd", momentum = 0.9 }
TOML
}

mlp='{ kind = "mlp", hidden = [64], activation = "relu" }'
rnn='{ kind = "rnn", hidden = 64, alpha = 1.0, activation = "relu" }'
scenario clusters-builtin '{ kind = "gaussian_clusters", classes = 4, dim = 16, spread = 1.0, heldout = 1000, seed = 7 }' "$mlp" 1024 1000 32 4
scenario clusters-plugin '{ plugin = "bench:clusters", classes = 4, dim = 16, spread = 1.0, heldout = 1000, world = 7 }' "$mlp" 1024 1000 32 4
scenario decision-builtin '{ kind = "decision", heldout = 1000, seed = 1 }' "$rnn" 4096 300 16 3
scenario decision-plugin '{ plugin = "bench:decision", heldout = 1000, world = 1 }' "$rnn" 4096 300 16 3
scenario draw-builtin '{ kind = "gaussian_clusters", classes = 4, dim = 16, spread = 1.0, heldout = 1000, seed = 7 }' "$mlp" 4096 5 64 4
scenario draw-plugin '{ plugin = "bench:clusters", classes = 4, dim = 16, spread = 1.0, heldout = 1000, world = 7 }' "$mlp" 4096 5 64 4
cp "$work/decision-builtin.toml" "$work/isolated-builtin.toml"
scenario isolated-plugin '{ plugin = "bench:decision", heldout = 1000, world = 1 }' "$rnn" 4096 300 16 3 process

learn_ms() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "learn_ms") c = i; next } { s += $c } END { printf "%.1f", s }' "$1/timings.csv"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1 /proc/loadavg); rounds: $rounds"
printf '%-10s %12s %12s %14s %16s\n' workload "built-in ms" "plugin ms" "median ratio" "ratio range"
for w in clusters decision draw isolated; do
  : > "$work/$w-builtin.ms"; : > "$work/$w-plugin.ms"
  for r in $(seq "$rounds"); do
    for path in builtin plugin; do
      out="$work/run-$w-$path-$r"
      "$LINEAGE" run "$work/$w-$path.toml" --out "$out" --quiet
      learn_ms "$out" >> "$work/$w-$path.ms"; echo >> "$work/$w-$path.ms"
      echo "  $w $path round $r: $(tail -n1 "$work/$w-$path.ms") ms" >&2
    done
  done
  a=$(median < "$work/$w-builtin.ms"); b=$(median < "$work/$w-plugin.ms")
  paste -d' ' "$work/$w-builtin.ms" "$work/$w-plugin.ms" | awk 'NF == 2 { printf "%.4f\n", $2 / $1 }' > "$work/$w.ratio"
  r=$(median < "$work/$w.ratio")
  range=$(sort -g "$work/$w.ratio" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }')
  printf '%-10s %12s %12s %14.3f %16s\n' "$w" "$a" "$b" "$r" "$range"
done
