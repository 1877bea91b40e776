#!/usr/bin/env bash
# Run here, on a machine with the network: the wheels a GPU machine without Keras (JAX with
# CUDA, no TensorFlow, no network) needs to run benchmarks/gpu/run.sh, and MNIST, into .whl/
# (git-ignored; about 14 MB). The GPU image has NumPy, pandas, SciPy, seaborn, pytest and
# pytest-benchmark; Keras and two of its dependencies are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${REGBENCH_DATA_DIR:?set REGBENCH_DATA_DIR to the folder with mnist.npz}"
rm -rf .whl && mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "keras==3.15.1" "namex==0.1.0" "optree==0.20.0"
python3 -m pip wheel --quiet --no-deps -w .whl .
cp "$REGBENCH_DATA_DIR/mnist.npz" .whl/
ls -l .whl
