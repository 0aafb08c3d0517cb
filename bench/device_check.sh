#!/usr/bin/env bash
# One accelerator session's measurements, in one call (the device machine is lent by the minute):
# throughput at population 1,024 (VSML 8x8 and 28x28), then README's default command, timed.
# Runs under the machine's own Python and JAX; packages it lacks travel as wheels in .whl/ (bench/README.md).
# Usage: OUT=dir bash bench/device_check.sh
#   writes $OUT/throughput_gpu.json and $OUT/default_gpu_metrics.jsonl; exits non-zero if any step failed.
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
OUT=$(realpath "$OUT")
cd "$(dirname "$0")/.."
rc=0
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || rc=$?
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import jax, flax, optax, chex; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, 'chex', chex.__version__, jax.devices())" || rc=$?
python3 bench/throughput.py --quick --population 1024 --out "$OUT/throughput_gpu.json" || rc=$?
run=$(mktemp -d)/default  # a fresh run directory: a warm machine may still hold an earlier one
start=$(date +%s)
if python3 launch/meta_train.py --run-dir "$run" --no-progress; then
  echo "default command: $(( $(date +%s) - start )) s"
  cp "$run/metrics.jsonl" "$OUT/default_gpu_metrics.jsonl"
else
  rc=1
fi
exit $rc
