#!/usr/bin/env bash
# Weak scaling of the island model over MPI (issue 14; BENCHMARKS.md,
# "Island model over MPI").
#
# The islands per process are fixed (PER_RANK, default 2) and each process
# runs one worker thread: 1 process runs PER_RANK islands, 2 processes run
# 2 x PER_RANK. Each island is 16 learning organisms (MLP 64-128-10 on
# 64-D Gaussian clusters, 1,024 examples, 200 SGD steps at batch 64) in a
# ring exchanging 2 migrants every 3 generations. The two launches
# alternate REPS times; the script prints each launch's wall time (the
# whole `mpirun`, start-up included), each process's time inside the
# island model and inside MPI calls (waiting at agreements included) from
# the run's closing `tracing` event, and then the medians: efficiency
# T1 / T2 and the MPI share of the wall time. It ends with the cost of
# one message of each size and of the one-word all-gather
# (`core/mpi/examples/message_cost.rs`), the inputs of the 64-node
# projection in BENCHMARKS.md.
#
# Usage: bash benches/mpi_scaling.sh
# Environment: PER_RANK (2), REPS (3), GENERATIONS (15), STEPS (200).
# Needs an MPI library, mpirun and libclang (README, "On a cluster").
set -euo pipefail
cd "$(dirname "$0")/.."

per_rank=${PER_RANK:-2}
reps=${REPS:-3}
generations=${GENERATIONS:-15}
steps=${STEPS:-200}
cargo build --release --quiet --features mpi --bin lineage
cargo build --release --quiet -p lineage-mpi --features mpi --example message_cost
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for np in 1 2; do
  cat >"$tmp/np$np.toml" <<EOF
name = "mpi-scaling"
seed = 1
generations = $generations
population = 16
checkpoint_every = 5
[genome]
genes = [{ name = "lr", min = 0.001, max = 0.3, log = true }]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 2
elitism = 1
[mutation]
sigma = 0.1
[lifetime]
budget = 1024
steps = $steps
batch = 64
environment = { kind = "gaussian_clusters", classes = 10, dim = 64, spread = 1.0, heldout = 256, seed = 3 }
model = { kind = "mlp", hidden = [128], activation = "relu" }
optimizer = { method = "sgd", momentum = 0.9 }
[islands]
count = $((np * per_rank))
migration_interval = 3
migrants = 2
EOF
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(mpirun --version | head -1)"
echo "islands per process: $per_rank, 1 thread per process, $generations generations, 16 organisms x $steps steps per island"
for rep in $(seq 1 "$reps"); do
  for np in 1 2; do
    out="$tmp/rep$rep-np$np"
    start=$(date +%s.%N)
    mpirun --oversubscribe -np "$np" target/release/lineage run "$tmp/np$np.toml" \
      --out "$out" --threads 1 --log-format json >/dev/null 2>"$out.log"
    end=$(date +%s.%N)
    echo "{\"rep\":$rep,\"processes\":$np,\"elapsed_s\":$(awk "BEGIN { printf \"%.3f\", $end - $start }")}" >>"$tmp/launches.jsonl"
    grep '"island model ended"' "$out.log" | sed "s/^{/{\"rep\":$rep,/" >>"$tmp/ends.jsonl"
  done
done

python3 - "$tmp/launches.jsonl" "$tmp/ends.jsonl" "$tmp" "$per_rank" <<'EOF'
import csv, json, math, random, statistics, sys
launches = [json.loads(l) for l in open(sys.argv[1])]
ends = [json.loads(l) for l in open(sys.argv[2])]
tmp, per_rank = sys.argv[3], int(sys.argv[4])
print("\nrep  processes  elapsed_s  per process: island model wall_s / in MPI fabric_s (share), messages, bytes")
for l in launches:
    mine = [e for e in ends if e["rep"] == l["rep"] and e["processes"] == l["processes"]]
    parts = ", ".join(
        f"p{e['process']}: {e['wall_s']:.2f} / {e['fabric_s']:.4f} ({100 * e['fabric_s'] / e['wall_s']:.2f}%), {e['messages']} msg, {e['bytes']} B"
        for e in sorted(mine, key=lambda e: e["process"]))
    print(f"{l['rep']:>3}  {l['processes']:>9}  {l['elapsed_s']:>9.2f}  {parts}")
def med(np, key):
    return statistics.median(l[key] for l in launches if l["processes"] == np)
def med_wall(np):
    return statistics.median(max(e["wall_s"] for e in ends if e["rep"] == r and e["processes"] == np)
                             for r in sorted({e["rep"] for e in ends}))
t1, t2 = med(1, "elapsed_s"), med(2, "elapsed_s")
w1, w2 = med_wall(1), med_wall(2)
share = statistics.median(e["fabric_s"] / e["wall_s"] for e in ends if e["processes"] == 2)
worst = max(e["fabric_s"] / e["wall_s"] for e in ends if e["processes"] == 2)
msgs = [e for e in ends if e["processes"] == 2]
print(f"\nmedian whole launch: T1 {t1:.2f} s, T2 {t2:.2f} s, efficiency T1/T2 {100 * t1 / t2:.1f}%")
print(f"median island model (slowest process): {w1:.2f} s, {w2:.2f} s, efficiency {100 * w1 / w2:.1f}%")
print(f"MPI share of the island model's wall time with 2 processes: median {100 * share:.2f}%, worst {100 * worst:.2f}%")
print(f"per process with 2: {msgs[0]['messages']} batch messages, {msgs[0]['bytes']} bytes "
      f"({msgs[0]['bytes'] / max(msgs[0]['messages'], 1):.0f} B per batch)")

# Load imbalance: each process's compute per generation (the sum of its
# islands' total_ms in timings.csv) in the 2-process launches; the
# processes' spread, as a coefficient of variation, from their differences.
def per_process(rep):
    times = []
    for p in range(2):
        cols = [[float(r["total_ms"]) for r in csv.DictReader(open(f"{tmp}/rep{rep}-np2/islands/island-{i}/timings.csv"))]
                for i in range(p * per_rank, (p + 1) * per_rank)]
        times.append([sum(t) for t in zip(*cols)])
    return times
diffs, means = [], []
for rep in sorted({l["rep"] for l in launches}):
    t0, t1 = per_process(rep)
    diffs += [a - b for a, b in zip(t0, t1)]
    means += [(a + b) / 2 for a, b in zip(t0, t1)]
t_gen = statistics.mean(means) / 1e3
cov = statistics.pstdev(diffs) / math.sqrt(2) / statistics.mean(means)
rng = random.Random(0)
def expected_max(p, n=20000):
    return statistics.mean(max(rng.gauss(0, 1) for _ in range(p)) for _ in range(n))
print(f"\nper process and generation: compute {1e3 * t_gen:.0f} ms, spread (CoV) {100 * cov:.2f}%")
print("projection to P processes (one per node), per generation, every agreement waiting for the slowest:")
print("  T = t_gen (1 + cov E[max of P]) + 2 ceil(log2 P) a + ((a + b / B) + (P - 1) a) / 3")
for label, a, bw in [("InfiniBand (a = 2 us, B = 10 GB/s)", 2e-6, 10e9), ("10 GbE TCP (a = 30 us, B = 1.2 GB/s)", 30e-6, 1.2e9)]:
    for b, what in [(msgs[0]["bytes"] / max(msgs[0]["messages"], 1), "these migrants"), (2 * 2 * 4 * 9610, "2 Lamarckian MLP 64-128-10 migrants")]:
        for p in [2, 64]:
            imbalance = cov * expected_max(p)
            comm = 2 * math.ceil(math.log2(p)) * a + ((a + b / bw) + (p - 1) * a) / 3
            eff = t_gen / (t_gen * (1 + imbalance) + comm)
            print(f"  {label}, {what} ({b:.0f} B/batch), P = {p}: imbalance {100 * imbalance:.2f}%, messages {1e6 * comm:.0f} us/gen, efficiency {100 * eff:.1f}%")
EOF

echo
echo "message cost (mpirun -np 2 target/release/examples/message_cost):"
mpirun --oversubscribe -np 2 target/release/examples/message_cost
