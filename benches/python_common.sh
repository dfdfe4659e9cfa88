# Sourced by the Python benchmarks (benches/python_*.sh): finds a Python
# with the `lineage` package ($PYTHON, default target/test-venv, which
# `bash tests/run.sh` makes) and a `lineage` binary ($LINEAGE, default the
# release one, built here), makes a scratch folder $work removed on exit,
# and defines `median_ms RUN COLUMN`, the median over generations of a
# column of RUN/timings.csv, and `alternate ROUNDS COLUMN`, which runs
# $work/builtin.toml and $work/python.toml in turn ROUNDS times and prints
# each run's median of COLUMN.
cd "$(dirname "$0")/.."
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

median_ms() {
  awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } { print $c }' "$1/timings.csv" |
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

machine() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1 /proc/loadavg); rounds: $1"
}

alternate() {
  machine "$1"
  for r in $(seq "$1"); do
    for f in builtin python; do
      "$LINEAGE" run "$work/$f.toml" --out "$work/run-$f-$r" --quiet
      echo "$f round $r: median $2 per generation $(median_ms "$work/run-$f-$r" "$2")"
    done
  done
}
