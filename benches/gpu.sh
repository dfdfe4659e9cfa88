#!/usr/bin/env bash
# Lineage's lifetime learning on an NVIDIA GPU, in one run, against the CPU
# and against JAX on the same GPU. Written for a machine with a GPU, a driver
# that runs CUDA 13 (580 or later) unless nvcc is already on PATH, network
# access to crates.io and PyPI, python3, a C compiler and cargo.
#
#  1. Build: `cargo build --release --locked --features cuda --bin lineage`
#     into target/cuda (the CPU build in target/release is left alone). With
#     no nvcc on PATH, NVIDIA's CUDA 13.0 wheels are installed into
#     .ci/.cuda-venv first, as CI does (.ci/cuda-toolkit.sh); their libraries
#     then go on LD_LIBRARY_PATH. CUDA_COMPUTE_CAP is read from nvidia-smi.
#  2. Check, CUDA against the CPU: `lineage bench learn` (fixed seed: the
#     same data and birth weights on both devices) for the MLP with SGD and
#     AdamW, the RNN, the GRU and the transformer, at $CHECK_POPULATION
#     organisms x $CHECK_STEPS steps, on --device cpu and --device cuda; the
#     mean final training losses must agree within $TOL relative. Then one
#     generation of a learning scenario (16 MLP organisms, 100 SGD steps) with
#     `lineage run --device cpu` and `--device cuda`: every organism's birth
#     and final held-out loss in organisms.csv must agree within $TOL
#     relative. (The CPU runs MLPs, RNNs and transformers on the hand-written
#     fast path and the GRU and LSTM on candle; CUDA runs every family on the
#     population-batched path, `path` "batched".)
#  3. Speed, for every model family in $SPEED_MODELS (MLP, leaky RNN, GRU,
#     LSTM, transformer): `lineage bench learn --model M --batch 64 --steps
#     $STEPS --json` at P in $POPULATIONS, on --device cuda with `--path
#     batched` and on --device cpu with `--path auto` (all cores: the fast
#     path or candle), each run stopped after $RUN_TIMEOUT seconds.
#  4. JAX: benches/peers/learn_jax.py --platform cuda (jax.jit(jax.vmap(step)),
#     the peer of learn_vs_peers.sh) on the same workloads and GPU, with
#     $JAX_PYTHON, else python3 if its JAX already sees the GPU, else
#     benches/.venv-gpu when `pip install "jax[cuda12]"` into it succeeds;
#     otherwise the results say why JAX is missing and the run goes on.
#  5. Writes one JSON file ($OUT, default runs/gpu-<UTC time>.json; the path
#     is printed at the end): the machine (GPU, driver, CUDA, nvcc, cores),
#     the commit, the build's time, the check's pairs and verdict, and every
#     speed measurement as the programs printed it (organism_steps_per_s,
#     gflops, seconds, path, final_train_loss), with failures and timeouts and
#     their last error line. A markdown table goes to stdout.
#
# Time: on a 16-core H200 machine, the build from scratch about 5-10 minutes
# (candle's CUDA kernels are most of it; 12-25 minutes on 2 cores), the CUDA
# wheels and jax[cuda12] a few minutes to download (about 1.2 GB and 3 GB),
# the check a minute or two, the speed runs up to 3 x (2 + 1) x $RUN_TIMEOUT s
# but usually a few minutes.
#
# A GPU machine with no network (the H200 this workplace lends has nvcc
# 13.0, driver 580 and JAX for CUDA 13, but no cargo and no registries):
# build here (`source .ci/cuda-toolkit.sh && cargo build --release --locked
# --features cuda --bin lineage`: CUDA 13.0, as that driver runs), strip and
# gzip the binary into a folder git ignores (150 MB -> 55 MB stripped -> 15 MB
# gzipped, within the 64 MiB a device call carries), carry it, gunzip it
# there and run `LINEAGE=that/lineage bash benches/gpu.sh`.
# The binary's CUDA libraries (cublas, cublasLt, curand, cudart 13) are then
# looked for in /usr/local/cuda and in python3's NVIDIA wheels.
#
# Usage: bash benches/gpu.sh [--no-jax] [--allow-no-gpu] [--cpu]
#   --no-jax        skip step 4
#   --cpu           the CPU fallback, for a machine without a GPU (CI runs it,
#                   tests/gpu_script.rs, so that the script cannot rot): needs
#                   LINEAGE (any build); the check runs the CPU against itself,
#                   the speed runs `--path batched` and `--path auto` on the
#                   CPU, and JAX runs on the CPU (JAX_PYTHON, else python3)
#   --allow-no-gpu  run without nvidia-smi (the plumbing test: builds against
#                   the wheels' stub driver, every CUDA run fails with
#                   "cannot open CUDA device 0", and the JSON says so; exit 1)
# Environment:
#   LINEAGE           a CUDA build of lineage to use instead of building one
#   LINEAGE_CUDA_TARGET  the build's target folder (default target/cuda)
#   JAX_PYTHON        a python with JAX for the GPU, instead of benches/.venv-gpu
#   POPULATIONS       speed-run population sizes (default "64 1024 16384")
#   SPEED_MODELS      the speed runs' models (default: one per family,
#                     "mlp:64-128-10 rnn:3-64-3:t8 gru:3-64-3:t8 lstm:3-64-3:t8
#                     transformer:49-48-32:l2:h4:ff96:t17")
#   STEPS             timed steps per speed run (default 50)
#   RUN_TIMEOUT       seconds before a speed run is stopped (default 300)
#   CHECK_POPULATION  organisms per check run (default 16)
#   CHECK_STEPS       steps per check run (default 50)
#   TOL               relative tolerance of the check (default 1e-3)
#   CHECK_DEVICE      the device checked against the CPU (default cuda;
#                     cpu tests the check itself: it must pass exactly)
#   OUT               the JSON file to write
#   LINEAGE_CUDA_TOOLKIT  the cuda-toolkit wheel version (default 13.0.2)
# Exit status: 0 when the build, the check and every Lineage CUDA speed run
# succeeded; 1 otherwise (the JSON is written either way).
set -euo pipefail
cd "$(dirname "$0")/.."

jax_ok=1
allow_no_gpu=0
cpu_only=0
for arg in "$@"; do
  case "$arg" in
    --no-jax) jax_ok=0 ;;
    --allow-no-gpu) allow_no_gpu=1 ;;
    --cpu) cpu_only=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set/!p}' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

read -r -a populations <<<"${POPULATIONS:-64 1024 16384}"
read -r -a speed_models <<<"${SPEED_MODELS:-mlp:64-128-10 rnn:3-64-3:t8 gru:3-64-3:t8 lstm:3-64-3:t8 transformer:49-48-32:l2:h4:ff96:t17}"
steps=${STEPS:-50}
run_timeout=${RUN_TIMEOUT:-300}
check_population=${CHECK_POPULATION:-16}
check_steps=${CHECK_STEPS:-50}
tol=${TOL:-1e-3}
check_device=${CHECK_DEVICE:-cuda}
jax_platform=cuda
if [ "$cpu_only" = 1 ]; then
  [ -n "${LINEAGE:-}" ] || { echo "gpu.sh --cpu needs LINEAGE, a build of lineage" >&2; exit 2; }
  check_device=cpu
  jax_platform=cpu
fi
out=${OUT:-runs/gpu-$(date -u +%Y%m%dT%H%M%SZ).json}
threads=$(nproc)
command -v python3 >/dev/null || { echo "gpu.sh needs python3" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/steps" "$(dirname "$out")"

# The last line of a log that names an error, else its last line.
last_error() { { grep -i 'error' "$1" || cat "$1"; } | grep -v '^ *at \|^ *[0-9]*: ' | tail -1; }

# One step of the run: its output, error, exit code and seconds go to
# $tmp/steps/NAME.*, read back by the report at the end. Never fails.
step() {  # NAME TIMEOUT COMMAND...
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s%N)
  set +e
  timeout "$limit" "$@" >"$tmp/steps/$name.out" 2>"$tmp/steps/$name.err"
  rc=$?
  set -e
  echo "$rc" >"$tmp/steps/$name.rc"
  echo "$(( ($(date +%s%N) - start) / 1000000 ))" >"$tmp/steps/$name.ms"
  if [ "$rc" = 0 ]; then
    echo "   $name: ok" >&2
  else
    echo "   $name: failed (exit $rc): $(last_error "$tmp/steps/$name.err")" >&2
  fi
  return 0
}

# ---- the machine ---------------------------------------------------------
gpu=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader)
  gpu=${gpu%%$'\n'*}  # the first GPU: the one `--device cuda` (ordinal 0) and JAX use
  driver_cuda=$(nvidia-smi | grep -o 'CUDA Version: [0-9.]*' | cut -d' ' -f3 || true)
  echo "GPU: $gpu; the driver runs CUDA ${driver_cuda:-?}" >&2
  if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
    CUDA_COMPUTE_CAP=$(echo "$gpu" | cut -d, -f3 | tr -d ' .')
    export CUDA_COMPUTE_CAP
  fi
elif [ "$cpu_only" = 1 ]; then
  echo "no GPU: the CPU fallback (--cpu)" >&2
elif [ "$allow_no_gpu" = 1 ]; then
  echo "no nvidia-smi: testing the plumbing only (--allow-no-gpu); every CUDA run will fail" >&2
else
  echo "gpu.sh needs an NVIDIA GPU (no nvidia-smi on PATH); --allow-no-gpu tests the plumbing without one" >&2
  exit 1
fi
{
  echo "gpu=$gpu"
  echo "driver_cuda=${driver_cuda:-}"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "cores=$threads"
  if commit=$(git rev-parse HEAD 2>/dev/null); then
    git diff --quiet HEAD 2>/dev/null || commit="$commit+changes"
  else
    commit=unknown
  fi
  echo "commit=$commit"
} >"$tmp/machine"

# ---- 1. build ------------------------------------------------------------
# The wheels' toolkit when there is no nvcc: to build, or, for a given
# binary, for the CUDA libraries it links to.
# (ldd's output goes through a variable: `ldd | grep -q` fails under
# pipefail when grep stops reading early.)
missing() { case "$(ldd "$1" 2>&1)" in *"not found"*) return 0 ;; *) return 1 ;; esac; }
# A given binary whose CUDA libraries are not on the loader's path: look in
# a system toolkit and in python3's NVIDIA wheels (PyTorch's and JAX's).
cuda_lib_dirs() {
  echo /usr/local/cuda/lib64
  echo /usr/local/cuda/targets/x86_64-linux/lib
  python3 - <<'PY' 2>/dev/null || true
import glob, site
for p in site.getsitepackages():
    for d in sorted(glob.glob(p + "/nvidia/cu1[3-9]/lib")) + sorted(glob.glob(p + "/nvidia/*/lib")):
        print(d)
PY
}
if [ -n "${LINEAGE:-}" ] && missing "$LINEAGE"; then
  while read -r dir; do
    if [ -d "$dir" ] && missing "$LINEAGE"; then
      export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$dir"
    fi
  done < <(cuda_lib_dirs)
fi
if [ "$cpu_only" = 0 ] && ! command -v nvcc >/dev/null 2>&1 && { [ -z "${LINEAGE:-}" ] || missing "$LINEAGE"; }; then
  if [ -n "${driver_cuda:-}" ] && [ "${driver_cuda%%.*}" -lt 13 ]; then
    echo "the driver runs CUDA $driver_cuda, and pip's nvcc is CUDA 13 (the CUDA 12 wheels have no nvcc):" >&2
    echo "put a CUDA 12 toolkit's nvcc on PATH (cudarc knows 11.4-13.4), or use a driver from 580 on" >&2
    exit 1
  fi
  # shellcheck source=../.ci/cuda-toolkit.sh
  source .ci/cuda-toolkit.sh
  export LD_LIBRARY_PATH="$LINEAGE_CUDA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
echo "nvcc=$(nvcc --version 2>/dev/null | grep release || echo none)" >>"$tmp/machine"
if [ -n "${LINEAGE:-}" ]; then
  bin=$LINEAGE
  echo "build=given: $bin" >>"$tmp/machine"
else
  echo "compute_cap=${CUDA_COMPUTE_CAP:-}" >>"$tmp/machine"
  target_dir=${LINEAGE_CUDA_TARGET:-target/cuda}
  echo "== building Lineage (release, --features cuda) into $target_dir" >&2
  step build 7200 cargo build --release --locked --features cuda --bin lineage --target-dir "$target_dir"
  bin=$target_dir/release/lineage
  if [ "$(cat "$tmp/steps/build.rc")" != 0 ]; then
    tail -30 "$tmp/steps/build.err" >&2
    bin=""  # not a stale binary from an earlier build
  fi
fi
# Without a driver (--allow-no-gpu) the binary still needs a libcuda.so.1
# to start: the wheels' stub, on this run's library path only.
if [ -z "$gpu" ] && [ -n "${CUDA_ROOT:-}" ] && [ -e "$CUDA_ROOT/lib/stubs/libcuda.so" ]; then
  mkdir -p "$tmp/stub"
  ln -s "$CUDA_ROOT/lib/stubs/libcuda.so" "$tmp/stub/libcuda.so.1"
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$tmp/stub"
fi
if [ -n "$bin" ] && [ -x "$bin" ] && missing "$bin"; then
  echo "$bin cannot find these libraries:" >&2
  ldd "$bin" | grep 'not found' >&2
fi

lineage_ran=0
if [ -n "$bin" ] && [ -x "$bin" ]; then
  lineage_ran=1
  # ---- 2. check: CUDA against the CPU ------------------------------------
  echo "== check: $check_device against the CPU (tolerance $tol relative)" >&2
  for row in "mlp:64-128-10 sgd 64" "mlp:64-128-10 adamw 64" "rnn:3-64-3:t8 sgd 32" \
             "gru:3-64-3:t8 sgd 32" "lstm:3-64-3:t8 sgd 32" \
             "transformer:49-48-32:l2:h4:ff96:t17 adamw 64"; do
    read -r model optimizer batch <<<"$row"
    for side in cpu dev; do
      device=cpu; [ "$side" = dev ] && device=$check_device
      step "check~$model~$optimizer~$side" "$run_timeout" "$bin" bench learn --model "$model" \
        --optimizer "$optimizer" --batch "$batch" --population "$check_population" \
        --steps "$check_steps" --threads "$threads" --device "$device" --json
    done
  done
  cat >"$tmp/check.toml" <<'TOML'
name = "gpu-check"
seed = 3
generations = 1
population = 16
[genome]
genes = [{ name = "lr", min = 0.01, max = 0.1, log = true }]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
[lifetime]
budget = 512
steps = 100
batch = 64
environment = { kind = "gaussian_clusters", classes = 10, dim = 64, spread = 1.0, heldout = 256, seed = 1 }
model = { kind = "mlp", hidden = [128], activation = "relu" }
optimizer = { method = "sgd", lr = 0.05, momentum = 0.9 }
TOML
  for side in cpu dev; do
    device=cpu; [ "$side" = dev ] && device=$check_device
    step "scenario~$side" "$run_timeout" "$bin" run "$tmp/check.toml" --device "$device" \
      --out "$tmp/run-$side" --quiet --threads "$threads"
  done

  # ---- 3. speed ----------------------------------------------------------
  # The batched path on the device against the CPU's default path, per
  # family (on --cpu: the batched path against the default, both on the CPU).
  if [ "$cpu_only" = 1 ]; then runs="cpu:batched cpu:auto"; else runs="cuda:batched cpu:auto"; fi
  for model in "${speed_models[@]}"; do
    echo "== speed: $model SGD, batch 64, $steps steps, P in ${populations[*]}" >&2
    for p in "${populations[@]}"; do
      for run in $runs; do
        device=${run%%:*} path=${run#*:}
        step "bench~lineage~$device~$p~$model~$path" "$run_timeout" "$bin" bench learn \
          --model "$model" --optimizer sgd --batch 64 --population "$p" --steps "$steps" \
          --threads "$threads" --device "$device" --path "$path" --json
      done
    done
  done
fi

# ---- 4. JAX on the same GPU ----------------------------------------------
jax_missing=""
if [ "$jax_ok" = 1 ]; then
  venv=benches/.venv-gpu
  if [ -n "${JAX_PYTHON:-}" ]; then
    py=$JAX_PYTHON
  elif [ "$jax_platform" = cpu ] && python3 -c 'import jax' >/dev/null 2>&1; then
    py=python3
  elif python3 -c 'import jax; jax.devices("cuda")' >/dev/null 2>&1; then
    py=python3  # an image with JAX for its GPU already (no network needed)
  else
    py=$venv/bin/python
    [ -x "$py" ] || python3 -m venv "$venv"
  fi
  if ! "$py" -c 'import jax' 2>/dev/null; then
    echo "== installing jax[cuda12] into $venv" >&2
    if ! "$py" -m pip install --quiet --disable-pip-version-check "jax[cuda12]" 2>"$tmp/jax-install.err"; then
      jax_missing="pip install jax[cuda12] failed: $(tail -1 "$tmp/jax-install.err")"
    fi
  fi
  if [ -z "$jax_missing" ] && ! "$py" -c "import jax; jax.devices('$jax_platform')" >/dev/null 2>"$tmp/jax-devices.err"; then
    jax_missing="JAX sees no $jax_platform device: $(last_error "$tmp/jax-devices.err")"
  fi
  if [ -z "$jax_missing" ]; then
    echo "== JAX jit(vmap) on the $jax_platform" >&2
    for model in "${speed_models[@]}"; do
      for p in "${populations[@]}"; do
        step "bench~jax~$jax_platform~$p~$model~jit-vmap" "$run_timeout" "$py" \
          benches/peers/learn_jax.py --platform "$jax_platform" --model "$model" --optimizer sgd \
          --batch 64 --population "$p" --steps "$steps"
      done
    done
  fi
else
  jax_missing="skipped (--no-jax)"
fi

# ---- 5. the report -------------------------------------------------------
python3 - "$tmp" "$out" "$tol" "$jax_missing" "$lineage_ran" "$check_device" "$cpu_only" <<'EOF'
import csv, json, math, os, sys
from datetime import datetime, timezone

tmp, out, tol, jax_missing = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
lineage_ran, check_device, cpu_only = sys.argv[5] == "1", sys.argv[6], sys.argv[7] == "1"
steps_dir = os.path.join(tmp, "steps")

def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default

def step(name):
    """What one step did: status, seconds, its last JSON line, its last error line."""
    base = os.path.join(steps_dir, name)
    if not os.path.exists(base + ".rc"):
        return None
    rc = int(read(base + ".rc").strip() or 1)
    result = None
    for line in read(base + ".out").splitlines():
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
    err = [l for l in read(base + ".err").splitlines()
           if l.strip() and not l.lstrip().startswith("at ") and not l.lstrip().split(":")[0].isdigit()]
    err = [l for l in err if "error" in l.lower()] or err
    s = {"status": "ok" if rc == 0 else "timeout" if rc in (124, 137) else "failed",
         "exit": rc, "wall_s": int(read(base + ".ms", "0").strip() or 0) / 1000}
    if result is not None:
        s["result"] = result
    if rc != 0:
        s["error"] = err[-1] if err else ""
    return s

def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)

machine = dict(l.split("=", 1) for l in read(os.path.join(tmp, "machine")).splitlines() if "=" in l)
report = {
    "schema": "lineage-gpu-bench/1",
    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    "machine": machine,
    "build": step("build"),
    "check": {"device": check_device, "tolerance_relative": tol, "bench": [], "scenario": None,
              "passed": False},
    "speed": [],
    "jax": {"available": not jax_missing, "why_not": jax_missing or None},
}
failures = []
if report["build"] and report["build"]["status"] != "ok":
    failures.append("build")
if not lineage_ran:
    failures.append("no lineage binary")

# The check: bench pairs.
names = sorted(os.listdir(steps_dir))
pairs = {}
for n in names:
    if n.startswith("check~") and n.endswith(".rc"):
        _, model, opt, side = n[:-3].split("~")
        pairs.setdefault((model, opt), {})[side] = step(n[:-3])
check_ok = lineage_ran
for (model, opt), runs in pairs.items():
    cpu, dev = runs.get("cpu"), runs.get("dev")
    entry = {"model": model, "optimizer": opt, "cpu": cpu, check_device: dev}
    try:
        a = cpu["result"]["final_train_loss"]
        b = dev["result"]["final_train_loss"]
        entry["relative_difference"] = rel(a, b)
        entry["agrees"] = entry["relative_difference"] <= tol and math.isfinite(a) and math.isfinite(b)
    except (TypeError, KeyError):
        entry["agrees"] = False
    check_ok &= entry["agrees"]
    report["check"]["bench"].append(entry)

# The check: one generation of a scenario, organism by organism.
sc = {"cpu": step("scenario~cpu"), check_device: step("scenario~dev")}
if sc["cpu"] or sc[check_device]:
    def rows(device):
        text = read(os.path.join(tmp, f"run-{device}", "organisms.csv"))
        return {r["id"]: r for r in csv.DictReader(text.splitlines())} if text else {}
    cpu_rows, cuda_rows = rows("cpu"), rows("dev")
    worst, compared, ok = 0.0, 0, bool(cpu_rows) and cpu_rows.keys() == cuda_rows.keys()
    for k in cpu_rows if ok else []:
        for col in ("birth_heldout", "final_heldout"):
            try:
                d = rel(float(cpu_rows[k][col]), float(cuda_rows[k][col]))
            except (KeyError, ValueError):
                ok = False
                continue
            worst, compared = max(worst, d), compared + 1
        ok &= cpu_rows[k].get("lifetime") == cuda_rows[k].get("lifetime")
    sc.update({"organisms": len(cpu_rows), "values_compared": compared,
               "largest_relative_difference": worst, "agrees": ok and compared > 0 and worst <= tol})
    check_ok &= sc["agrees"]
    report["check"]["scenario"] = sc
else:
    check_ok = False
report["check"]["passed"] = bool(check_ok)
if not check_ok:
    failures.append("check")

# Speed.
for n in names:
    if n.startswith("bench~") and n.endswith(".rc"):
        _, framework, device, p, model, path = n[:-3].split("~")
        s = step(n[:-3])
        report["speed"].append({"model": model, "framework": framework, "device": device,
                                "path": path, "population": int(p), **s})
        if framework == "lineage" and s["status"] != "ok" and (device == "cuda" or cpu_only):
            failures.append(f"lineage {model} {device} {path} P={p}")
report["speed"].sort(key=lambda r: (r["model"], r["population"], r["framework"], r["device"], r["path"]))
report["failures"] = failures

with open(out, "w") as f:
    json.dump(report, f, indent=1)
    f.write("\n")

print("\ncheck (%s against the CPU, tolerance %g relative): %s" % (check_device, tol, "passed" if check_ok else "FAILED"))
for e in report["check"]["bench"]:
    d = e.get("relative_difference")
    print(f"  {e['model']} {e['optimizer']}: " + (f"{d:.2e}" if d is not None else "no result"))
if report["check"]["scenario"]:
    s = report["check"]["scenario"]
    d = s.get("largest_relative_difference")
    print(f"  scenario, {s.get('organisms', 0)} organisms: " + (f"{d:.2e}" if s.get("values_compared") else "no result"))
print("\nSGD, batch 64, organism-steps/s (GFLOP/s):\n")
print("| model | population | framework | device | organism-steps/s | GFLOP/s | path | status |")
print("|---|---|---|---|---|---|---|---|")
for r in report["speed"]:
    res = r.get("result") or {}
    rate = f"{res['organism_steps_per_s']:,.0f}" if "organism_steps_per_s" in res else "-"
    gf = f"{res['gflops']:.1f}" if "gflops" in res else "-"
    path = res.get("path", res.get("variant", r["path"]))
    print(f"| {r['model']} | {r['population']} | {r['framework']} | {r['device']} | {rate} | {gf} | {path} | {r['status']} |")
if jax_missing:
    print(f"\njax: {jax_missing}")
print(f"\nresults: {out}")
sys.exit(1 if failures else 0)
EOF
