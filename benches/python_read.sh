#!/usr/bin/env bash
# Reading a 1,000,000-row organisms.csv from Python: `lineage.open(RUN)
# .organisms` (pandas' C parser) on a real run's records: OneMax on 64 bits,
# 10,000 organisms x 100 generations. Prints the run's size and the median
# of ROUNDS reads (each a fresh `Run`, so nothing is cached), and the same
# for `Run.generations`. Target: under 2 s on the 2-core machine.
#
# Usage: bash benches/python_read.sh
# Environment:
#   ROUNDS   reads (default 5)
#   PYTHON   a Python with the `lineage` package (default: the tests'
#            environment, target/test-venv, which `bash tests/run.sh` makes
#            and installs the package into)
#   LINEAGE  a `lineage` binary to make the run (default: builds the release one)
set -euo pipefail
rounds=${ROUNDS:-5}
source "$(dirname "$0")/python_common.sh"
cat > "$work/big.toml" <<'TOML'
name = "read-bench"
seed = 1
generations = 100
population = 10000
checkpoint_every = 1000

[genome]
bits = 64

[fitness]
function = "onemax"

[selection]
method = "tournament"
tournament_size = 2

[mutation]
bit_rate = 0.015625
TOML
"$LINEAGE" run "$work/big.toml" --out "$work/run" --quiet
machine "$rounds"
echo "organisms.csv: $(wc -l < "$work/run/organisms.csv") lines, $(du -h "$work/run/organisms.csv" | cut -f1)"
"$py" - "$work/run" "$rounds" <<'PY'
import statistics
import sys
import time

import lineage

run_dir, rounds = sys.argv[1], int(sys.argv[2])
for table in ("organisms", "generations"):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        frame = getattr(lineage.open(run_dir), table)
        times.append(time.perf_counter() - start)
    print(f"{table}: {len(frame):,} rows x {frame.shape[1]} columns; median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}) over {rounds} reads")
PY
