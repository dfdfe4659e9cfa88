#!/usr/bin/env bash
# The rich/lazy suite's cost against the lifetimes it measures, in one run
# of a shipped scenario: per organism, the lifetime's time (learn_ms of
# timings.csv) and the suite's (evaluate_ms: the `richlazy:recurrent`
# suite is the only evaluation; held-out loss comes with the lifetime),
# mean over every run of the experiment (one organism per run), and their
# ratio.
#
# Usage: bash benches/richlazy_suite.sh [SCENARIO]   (default
# scenarios/richlazy-rank.toml; scenarios/richlazy-rank-n300.toml for the
# original's scale, about 8 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/richlazy-rank.toml}

cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s.%N)
target/release/lineage run "$scenario" --out "$tmp/run" --quiet
end=$(date +%s.%N)

echo "== $scenario (wall $(echo "$end - $start" | bc) s)"
printf "%-10s %5s %12s %12s %8s\n" condition runs learn_ms suite_ms suite/learn
for condition in "$tmp"/run/conditions/*/; do
  name=$(basename "$condition")
  cat "$condition"/seed-*/timings.csv | awk -F, -v name="$name" '
    $1 ~ /^[0-9]+$/ { n++; learn += $4; suite += $5 }
    END { printf "%-10s %5d %12.1f %12.1f %8.3f\n", name, n, learn / n, suite / n, suite / learn }'
done
cat "$tmp"/run/conditions/*/seed-*/timings.csv | awk -F, '
  $1 ~ /^[0-9]+$/ { n++; learn += $4; suite += $5 }
  END { printf "%-10s %5d %12.1f %12.1f %8.3f\n", "all", n, learn / n, suite / n, suite / learn;
        printf "suite total over the sweep: %.1f s\n", suite / 1000 }'
