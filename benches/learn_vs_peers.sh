#!/usr/bin/env bash
# Lineage's population-batched lifetime learning against JAX and PyTorch, in
# one run, on the same workloads: P = 64 independent networks, each with its
# own weights and its own fixed random batch, trained side by side.
#
#   Lineage:  lineage bench learn --model M --optimizer O --batch B --population 64 --steps S --json
#   JAX:      benches/peers/learn_jax.py   (jax.jit(jax.vmap(step)), one jitted call per step)
#   PyTorch:  benches/peers/learn_torch.py (stacked [P, out, in] weights, baddbmm/bmm, torch.optim)
#
# Every program prints one JSON line with the same fields (organism_steps_per_s
# = P * S / seconds of the timed steps after a warm-up; gflops by the FLOP
# convention documented at the top of the peer scripts); this script prints
# them and a markdown table, and the machine's 1024^3 f32 GEMM rate, so the
# GFLOP/s columns can be read against what the cores can do.
#
# Workloads (model, optimiser, batch): mlp:64-128-10 with SGD and with AdamW
# (64), rnn:3-64-3:t8 with SGD (32), transformer:49-48-32:l2:h4:ff96:t17 with
# AdamW (64), and the ICL model, $ICL_MODEL with AdamW (128): by default
# transformer:49-48-32:l2:h1:ff96:t17:noln:relu:last, the transformer the
# scenarios/icl-*.toml train (Reddy's kind: one head per layer, no LayerNorm,
# ReLU; 32 content + 17 position dimensions, 32 labels, 17 tokens), scored on
# the query's label alone (`:last`). The model strings are `lineage bench
# learn`'s (core/learn/src/bench.rs); the peers accept the same.
#
# Usage: bash benches/learn_vs_peers.sh [--check] [--peers-only]
#   --check        also run each peer's sanity check (loss falls; organism 0
#                  trained alone matches its training inside the population)
#   --peers-only   skip building and running Lineage
# Environment:
#   LINEAGE_BENCH_THREADS  threads for every framework (default: all cores)
#   POPULATION             organisms (default 64)
#   STEPS_MLP, STEPS_RNN, STEPS_TRANSFORMER   timed steps per workload
#                          (defaults 200, 100, 30: each measurement a few seconds
#                          to half a minute on the 2-core benchmark machine)
#   ICL_MODEL              the ICL workload's model string (default
#                          transformer:49-48-32:l2:h1:ff96:t17:noln:relu:last)
#   STEPS_ICL              its timed steps (default STEPS_TRANSFORMER)
#
# Installs jax[cpu] and torch (CPU) with pip into benches/.venv (ignored by
# git; shared with engine_vs_deap.sh, whose DEAP stays) on first use.
# The machine is shared and noisy: compare the ratios of one run.
set -euo pipefail
cd "$(dirname "$0")/.."

check=""
lineage_ok=1
for arg in "$@"; do
  case "$arg" in
    --check) check="--check" ;;
    --peers-only) lineage_ok=0 ;;
    -h | --help) sed -n '2,42p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

threads=${LINEAGE_BENCH_THREADS:-$(nproc)}
population=${POPULATION:-64}
steps_mlp=${STEPS_MLP:-200}
steps_rnn=${STEPS_RNN:-100}
steps_transformer=${STEPS_TRANSFORMER:-30}
icl_model=${ICL_MODEL:-transformer:49-48-32:l2:h1:ff96:t17:noln:relu:last}
steps_icl=${STEPS_ICL:-$steps_transformer}

venv=benches/.venv
py=$venv/bin/python

# ---- peers' environment --------------------------------------------------
if [ ! -x "$py" ]; then
  python3 -m venv "$venv"
fi
if ! "$py" -c 'import jax' 2>/dev/null; then
  echo "== installing jax[cpu] into $venv" >&2
  "$py" -m pip install --quiet 'jax[cpu]'
fi
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "== installing torch (CPU) into $venv" >&2
  # The CPU-only wheel (about 200 MB) when its index is reachable; otherwise
  # PyPI's default wheel, which also pulls the CUDA libraries (about 5 GB
  # installed) that go unused here.
  if ! "$py" -m pip install --quiet --retries 1 --timeout 30 torch \
      --index-url https://download.pytorch.org/whl/cpu; then
    echo "   download.pytorch.org unreachable: installing torch from PyPI (with CUDA libraries)" >&2
    "$py" -m pip install --quiet torch
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- the machine ---------------------------------------------------------
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads used: $threads"
load=$(cut -d' ' -f1 /proc/loadavg)
echo "load average (1 min) before the run: $load"
if awk -v l="$load" 'BEGIN {exit !(l > 0.5)}'; then
  echo "warning: the machine is busy; every number below shares the cores with that load" >&2
fi

echo "== GEMM 1024^3 f32, $threads threads (median of 20)"
"$py" - "$threads" <<'EOF'
import sys, time, statistics
threads = int(sys.argv[1])
import torch, numpy as np
torch.set_num_threads(threads)
n = 1024
flop = 2 * n ** 3
def rate(f):
    for _ in range(3):
        f()
    times = []
    for _ in range(20):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return flop / statistics.median(times) / 1e9
a, b = torch.randn(n, n), torch.randn(n, n)
out = torch.empty(n, n)
print(f"torch {torch.__version__} matmul: {rate(lambda: torch.mm(a, b, out=out)):.1f} GFLOP/s")
an, bn = a.numpy(), b.numpy()
outn = np.empty((n, n), np.float32)
# numpy's BLAS (OpenBLAS) follows OPENBLAS_NUM_THREADS / all cores by default.
print(f"numpy {np.__version__} matmul: {rate(lambda: np.matmul(an, bn, out=outn)):.1f} GFLOP/s")
EOF

# ---- Lineage -------------------------------------------------------------
if [ "$lineage_ok" = 1 ]; then
  echo "== building Lineage (release)"
fi
if [ "$lineage_ok" = 1 ] && ! cargo build --release --quiet 2>"$tmp/build.err"; then
  lineage_ok=0
  echo "lineage: unavailable (the release build failed: $(grep -m1 '^error' "$tmp/build.err" || tail -1 "$tmp/build.err"))"
fi

# Last JSON line of a program's output, or nothing.
json_of() { grep '^{' "$1" | tail -1 || true; }
# A field of a JSON line.
field() { echo "$1" | "$py" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"; }

rows=()
for row in "mlp:64-128-10 sgd 64 $steps_mlp" \
           "mlp:64-128-10 adamw 64 $steps_mlp" \
           "rnn:3-64-3:t8 sgd 32 $steps_rnn" \
           "transformer:49-48-32:l2:h4:ff96:t17 adamw 64 $steps_transformer" \
           "$icl_model adamw 128 $steps_icl"; do
  read -r model optimizer batch steps <<<"$row"
  args=(--model "$model" --optimizer "$optimizer" --batch "$batch" --population "$population" --steps "$steps")
  echo "== $model $optimizer, batch $batch, $population organisms x $steps steps"

  lineage=""
  if [ "$lineage_ok" = 1 ]; then
    if cargo run --release --quiet -- bench learn "${args[@]}" --threads "$threads" --json \
        >"$tmp/lineage.out" 2>"$tmp/lineage.err"; then
      lineage=$(json_of "$tmp/lineage.out")
    fi
    if [ -n "$lineage" ]; then
      echo "$lineage"
    else
      echo "lineage: unavailable ($(grep -m1 -i 'error' "$tmp/lineage.err" || tail -1 "$tmp/lineage.err"))"
    fi
  else
    echo "lineage: unavailable (skipped)"
  fi

  peer() {  # framework script
    if "$py" "benches/peers/$2" "${args[@]}" --threads "$threads" $check >"$tmp/$1.out" 2>"$tmp/$1.err"; then
      local line
      json_of "$tmp/$1.out"
      grep '^check' "$tmp/$1.err" >&2 || true
    else
      echo "$1: failed ($(tail -1 "$tmp/$1.err"))" >&2
      grep '^check' "$tmp/$1.err" >&2 || true
    fi
  }
  jax=$(peer jax learn_jax.py)
  if [ -n "$jax" ]; then echo "$jax"; else echo "jax: unavailable"; fi
  torch=$(peer pytorch learn_torch.py)
  if [ -n "$torch" ]; then echo "$torch"; else echo "pytorch: unavailable"; fi
  rows+=("$model|$optimizer|$batch|$steps|$lineage|$jax|$torch")
done

# ---- table ---------------------------------------------------------------
echo
echo "organism-steps/s (GFLOP/s in brackets), $population organisms, $threads threads:"
echo
"$py" - "${rows[@]}" <<'EOF'
import json, sys
print("| model | optimizer | batch | steps | lineage | jax | pytorch | lineage/jax | lineage/pytorch |")
print("|---|---|---|---|---|---|---|---|---|")
for row in sys.argv[1:]:
    model, opt, batch, steps, *runs = row.split("|")
    runs = [json.loads(r) if r.strip() else None for r in runs]
    def cell(r):
        return f"{r['organism_steps_per_s']:,.0f} ({r['gflops']:.1f})" if r else "unavailable"
    def ratio(a, b):
        return f"{a['organism_steps_per_s'] / b['organism_steps_per_s']:.2f}x" if a and b else "n/a"
    lin, jax, tor = runs
    print(f"| `{model}` | {opt} | {batch} | {steps} | {cell(lin)} | {cell(jax)} | {cell(tor)} "
          f"| {ratio(lin, jax)} | {ratio(lin, tor)} |")
EOF
echo
echo "load average (1 min) after the run: $(cut -d' ' -f1 /proc/loadavg)"
