#!/usr/bin/env bash
# One-shot check of issue 18 on a GPU machine that has PyTorch and JAX but no
# TensorFlow and no network: installs the carried wheels, checks what
# imports, runs benchmarks/gpu_step.py, then the backend-neutral tests with
# KERAS_BACKEND=jax and =torch; about 6 minutes in all, everything logged.
#
#   bash benchmarks/device_check.sh            # from the repository root
#
# Environment (all optional):
#   WHEELS=.whl          folder of the carried wheels: keras, namex, optree and
#                        this project's own (docs/reports/performance.md says how to
#                        download and build them)
#   RESULTS=$OUT         where device_check.log and gpu_step.json go
#                        (default $OUT if set, else /tmp/device-check-results)
#   PYTHON=python3       the interpreter that has PyTorch and JAX
#   BUDGET=345           seconds for the whole check; each stage gets its cap
#                        or what is left, whichever is less
#   DEVICE_CHECK_SMOKE=1 tiny settings and a short test subset: checks the
#                        script itself, on a CPU too
#
# Exit status: 0 when every stage ran and passed, 2 when something needed is
# missing (nothing is run then), 1 otherwise. The log says which stage.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
WHEELS=${WHEELS:-.whl}
RESULTS=${RESULTS:-${OUT:-/tmp/device-check-results}}
PYTHON=${PYTHON:-python3}
BUDGET=${BUDGET:-345}
SMOKE=${DEVICE_CHECK_SMOKE:-0}
SITE=$(mktemp -d /tmp/device-check-site.XXXXXX)
WORK=$(mktemp -d /tmp/device-check-work.XXXXXX)
trap 'rm -rf "$SITE" "$WORK"' EXIT
mkdir -p "$RESULTS"
LOG=$RESULTS/device_check.log
exec > >(tee "$LOG") 2>&1
START=$SECONDS
FAILED=()

stage() { echo; echo "== $1 (at $((SECONDS - START)) s)"; }
# Seconds a stage may take: its cap, or what is left of the budget.
cap() { local left=$((BUDGET - (SECONDS - START))); ((left < $1)) && echo "$left" || echo "$1"; }
run_capped() {  # NAME CAP COMMAND...: SIGINT at the cap, so pytest prints its summary
  local name=$1 seconds; seconds=$(cap "$2"); shift 2
  if ((seconds < 10)); then echo "skipped: out of time"; FAILED+=("$name (no time)"); return; fi
  echo "\$ $* (at most ${seconds} s)"
  timeout --signal=INT --kill-after=15 "$seconds" "$@"
  local status=$?
  ((status == 124)) && echo "!! $name: stopped at its ${seconds} s cap"
  ((status != 0)) && FAILED+=("$name (exit $status)")
  return 0
}

stage "machine"
echo "repository: $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" --version

stage "install the carried wheels into $SITE"
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if ((${#wheels[@]} == 0)); then
  echo "no wheels in $WHEELS: docs/reports/performance.md (GPU check) says how to download and build them"
  exit 2
fi
printf '  %s\n' "${wheels[@]##*/}"
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "${wheels[@]}" || { echo "pip could not install the wheels"; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=3 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1

# Everything runs from a copy of the tests and benchmarks: in the repository
# models/ is not keras_dropact.models (the wheel maps it there), and the
# source tree would shadow the installed package.
cp -r "$REPO/tests" "$REPO/benchmarks" "$REPO/pyproject.toml" "$WORK/"
cd "$WORK"
export PYTHONPATH=$SITE:$WORK/benchmarks  # benchmarks/: the pytest plugin jax_compile_report.

stage "what imports"
# Keras' own dependencies (keras' METADATA: absl-py, numpy, rich, namex, h5py,
# optree, ml-dtypes, packaging), the two backends, pytest, and this project.
KERAS_BACKEND=jax "$PYTHON" - <<'EOF' || exit 2
import importlib
needed = ["numpy", "absl", "rich", "namex", "h5py", "optree", "ml_dtypes", "packaging",
          "keras", "jax", "torch", "pytest", "keras_dropact", "keras_dropact.models"]
missing = []
for name in needed:
    try:
        module = importlib.import_module(name)
        print(f"  {name:22s} {getattr(module, '__version__', '')}  {getattr(module, '__file__', '')}")
    except Exception as error:  # noqa: BLE001 - reported, then exit 2
        missing.append(name)
        print(f"  {name:22s} MISSING: {error}")
try:
    import tensorflow  # noqa: F401
    print("  tensorflow             present")
except ImportError:
    print("  tensorflow             absent: TensorFlow-only tests skip")
if missing:
    print(f"missing: {', '.join(missing)}; carry their wheels (docs/reports/performance.md, GPU check)")
    raise SystemExit(1)
import jax, torch
print(f"  jax devices: {jax.devices()}; torch cuda: {torch.cuda.is_available()}")
EOF

TESTS=(tests/test_layers.py tests/test_random.py tests/test_theory.py tests/test_callbacks.py
       tests/test_models.py tests/test_benchmarks.py)
SELECT="not test_models or portable"
if [[ $SMOKE == 1 ]]; then
  GPU_STEP=(--smoke --models resnet-8 --precisions float32 --samplers bits)
  TESTS=(tests/test_layers.py tests/test_random.py)
  SELECT="keep_rate or gradient or device or trained_with_one"
else
  # ResNet-110 and WRN-28-10 with ReLU and the "bits" sampler (the one
  # "auto" picks on a GPU), float32 then bf16; "bytes" has its figures in
  # docs/reports/performance.md already (before issue 18) and compiles for minutes.
  GPU_STEP=(--models resnet-110 wrn-28-10 --samplers bits --steps 10 --rounds 3)
fi

stage "gpu_step.py, KERAS_BACKEND=jax"
run_capped gpu_step 190 env KERAS_BACKEND=jax "$PYTHON" benchmarks/gpu_step.py \
  "${GPU_STEP[@]}" --json "$RESULTS/gpu_step.json"

for backend in jax torch; do
  stage "backend-neutral tests, KERAS_BACKEND=$backend"
  limit=$([[ $backend == jax ]] && echo 80 || echo 60)
  run_capped "tests ($backend)" "$limit" env KERAS_BACKEND=$backend "$PYTHON" -m pytest -v \
    -p no:cacheprovider -p jax_compile_report --durations=15 "${TESTS[@]}" -k "$SELECT"
done

stage "summary"
echo "took $((SECONDS - START)) s of a $BUDGET s budget; log: $LOG"
if ((${#FAILED[@]})); then
  echo "FAILED: ${FAILED[*]}"
  exit 1
fi
echo "all stages passed"
