#!/usr/bin/env bash
# One run on a GPU machine with JAX and CUDA, without TensorFlow or Keras and with no network,
# from the wheels of benchmarks/gpu/prepare.sh in .whl/. It writes into $OUT (default
# results/gpu/):
#   jax-gpu.json      the step-benchmark grid on the GPU: tutorial MLP, wide MLP and
#                     CIFAR-shaped CNN steps on generated tensors, every technique, batch
#                     32/128/512 (pytest-benchmark JSON; `regbench bench-report` merges it
#                     with the CPU rows)
#   tutorial.jsonl    the MNIST tutorial study, 2 seeds x 2 epochs, stacked on the GPU (rows)
#   log.txt           everything printed
# About 6 minutes on an H200. A dry run on a CPU: `DEVICE=cpu CASES="mnist_mlp- and b128"
# SUBSET=2000` (the CPU cases of one problem and batch size, the study on 2,000 images).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-results/gpu}"
DEVICE="${DEVICE:-gpu}"
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
if ! python3 -c "import keras" 2>/dev/null; then
  python3 -m pip install --quiet --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=jax REGBENCH_DATA_DIR="$PWD/.whl" PYTHONUNBUFFERED=1
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
began=$SECONDS
timeout 330 python3 -m pytest benchmarks/test_step_time.py -p no:cacheprovider -q \
  -k "$DEVICE- ${CASES:+and ($CASES)}" --benchmark-json="$OUT/jax-$DEVICE.json" \
  --benchmark-columns=median,iqr,rounds --benchmark-sort=fullname
echo "step grid: $((SECONDS - began)) s"
began=$SECONDS
timeout 150 python3 -m regbench.cli run ablations/mnist_tutorial.toml --seeds 2 --epochs 2 \
  --pack-size 16 ${SUBSET:+--train-subset "$SUBSET"} --store "$OUT/tutorial.jsonl"
echo "stacked tutorial study: $((SECONDS - began)) s"
