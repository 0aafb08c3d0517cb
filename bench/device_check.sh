#!/usr/bin/env bash
# One accelerator session's measurements, in one call (the device machine is lent by the minute):
# throughput at population 1,024 (VSML 8x8 and 28x28), then README's default command, timed.
# Runs under the machine's own Python and JAX; packages it lacks travel as wheels in .whl/ (bench/README.md).
# Usage: OUT=dir bash bench/device_check.sh      (results: $OUT/throughput_gpu.json, $OUT/log)
set -uo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import jax, flax, optax, chex, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, 'chex', chex.__version__, jax.devices())"
python3 bench/throughput.py --quick --population 1024 --out "$OUT/throughput_gpu.json"
start=$(date +%s)
python3 launch/meta_train.py --run-dir /tmp/default_gpu --no-progress | tail -4
echo "default command: $(( $(date +%s) - start )) s"
cp /tmp/default_gpu/metrics.jsonl "$OUT/default_gpu_metrics.jsonl" 2>/dev/null
