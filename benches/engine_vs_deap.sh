#!/usr/bin/env bash
# Lineage's engine against DEAP in one run, on the same setup:
# OneMax, 100,000 organisms x 1,024 bits, tournament k = 2, bit-flip
# mutation at 1/L, no crossover (benches/onemax-100k.toml and
# benches/deap_onemax.py). Also measures Lineage's peak memory per organism.
#
# Usage: bash benches/engine_vs_deap.sh [DEAP_GENERATIONS]
# Installs DEAP with pip in benches/.venv (ignored by git) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
deap_generations=${1:-2}
threads=${LINEAGE_BENCH_THREADS:-2}

cargo build --release --quiet
lineage=target/release/lineage

if [ ! -x benches/.venv/bin/python ]; then
  python3 -m venv benches/.venv
  benches/.venv/bin/pip install --quiet deap numpy
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== Lineage ($threads threads)"
/usr/bin/time -f "%M" -o "$tmp/rss-100k" \
  "$lineage" run benches/onemax-100k.toml --generations 12 --threads "$threads" --out "$tmp/run" --quiet
# Median total_ms over generations 1..10 (generation 0 warms up; the last
# one also writes the final checkpoint).
lineage_ms=$(awk -F, 'NR>2 && NR<13 {print $NF}' "$tmp/run/timings.csv" | sort -n | awk '{a[NR]=$1} END {print (a[int((NR+1)/2)]+a[int((NR+2)/2)])/2}')
echo "median generation: ${lineage_ms} ms"
awk -F, 'NR==1 || (NR>2 && NR<13)' "$tmp/run/timings.csv" | column -s, -t

# Peak memory per organism: the difference between 100,000 and 10,000
# organisms, divided by 90,000, so that fixed costs cancel.
sed 's/^population = 100000/population = 10000/' benches/onemax-100k.toml > "$tmp/onemax-10k.toml"
/usr/bin/time -f "%M" -o "$tmp/rss-10k" \
  "$lineage" run "$tmp/onemax-10k.toml" --generations 12 --threads "$threads" --out "$tmp/run10k" --quiet
rss_100k=$(tail -1 "$tmp/rss-100k")
rss_10k=$(tail -1 "$tmp/rss-10k")
per_organism=$(( (rss_100k - rss_10k) * 1024 / 90000 ))
echo "peak RSS: ${rss_100k} KiB at 100k, ${rss_10k} KiB at 10k -> ${per_organism} bytes per organism (genome: 128 bytes)"

echo "== DEAP ($deap_generations generations, single-threaded as DEAP runs by default)"
deap_json=$(benches/.venv/bin/python benches/deap_onemax.py --generations "$deap_generations")
echo "$deap_json"
deap_s=$(echo "$deap_json" | benches/.venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["seconds_per_generation"])')

echo "== Ratio"
awk -v d="$deap_s" -v l="$lineage_ms" 'BEGIN {printf "Lineage is %.0fx faster per generation (DEAP %.2f s, Lineage %.1f ms)\n", d*1000/l, d, l}'
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
