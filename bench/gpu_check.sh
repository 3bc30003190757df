#!/usr/bin/env bash
# The GPU check of issue 20, on a machine with an NVIDIA GPU and its driver.
# Builds nothing: it takes the release binaries built with the toolkit from
# PyPI (bench/cuda-toolkit.sh) and llama.cpp built with CUDA from the same
# source as bench/build-llamacpp.sh, then
#   1. greedy parity: the fixtures of tests/fixtures/llamacpp_greedy.json
#      (regenerated with llmpm-gen-gguf) decoded by the runner on the GPU and
#      on the CPU; tokens must equal llama.cpp's for at least 16 steps, or
#      the first divergence come where the top two logits are < 1e-3 apart;
#   2. speed: pp512 and tg128 of the 1B-shaped Q4_K_M, Q4_0 and Q8_0 files,
#      llmpm through its API against llama-bench -ngl 99, with ratios;
#   3. VRAM: the runner's GPU memory (nvidia-smi) against the scheduler's
#      estimate (/api/ps size).
# About 5 minutes on one H100 once the files exist (their generation: ~1 min).
#
# Build first (on any machine; copy target/cuda/release over):
#   eval "$(bench/cuda-toolkit.sh)"      # CUDA_COMPUTE_CAP=80 for an A100
#   CARGO_TARGET_DIR=target/cuda cargo build --release -p llmpmd --features cuda
#   CARGO_TARGET_DIR=target/cuda cargo build --release -p llmpm -p llmpm-tests --bins
#   (the last builds llmpm and llmpm-gen-gguf; it relinks no llmpmd binary)
# and llama.cpp with CUDA: bench/build-llamacpp.sh's cmake line plus
#   -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90, targets llama-bench and
#   llama-quantize, into $LLAMA_CPP_CUDA_DIR/bin.
#
# usage: bench/gpu_check.sh [--no-gpu]
#   --no-gpu: check the script itself where there is no GPU: parity of the
#   CUDA build's CPU fallback, no llama.cpp, no VRAM.
# environment: LLMPM_CUDA_BIN_DIR (default target/cuda/release: llmpmd
#   built with --features cuda), LLMPM_BIN_DIR (default the same: llmpm and
#   llmpm-gen-gguf, from any build), LLAMA_CPP_CUDA_DIR (default
#   target/llama.cpp-cuda), LLMPM_BENCH_MODELS (default target/bench-models;
#   a Q4_K_M file missing there is made with llama-quantize), and the CUDA
#   runtime libraries (libcublas.so.13, libcublasLt.so.13, libnvrtc.so.13,
#   libcurand.so.10) on the library path: `bench/cuda-toolkit.sh --runtime`
#   installs them and says where.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

no_gpu=0
case "${1:-}" in
  "") ;;
  --no-gpu) no_gpu=1 ;;
  *) echo "usage: $0 [--no-gpu]" >&2; exit 2 ;;
esac

bin="${LLMPM_CUDA_BIN_DIR:-$root/target/cuda/release}"
tools="${LLMPM_BIN_DIR:-$bin}"
llama="${LLAMA_CPP_CUDA_DIR:-$root/target/llama.cpp-cuda}"
missing=()
[ -x "$bin/llmpmd" ] || missing+=("$bin/llmpmd")
for b in llmpm llmpm-gen-gguf; do
  [ -x "$tools/$b" ] || missing+=("$tools/$b")
done
if [ "$no_gpu" = 0 ]; then
  for b in llama-bench llama-quantize; do
    [ -x "$llama/bin/$b" ] || missing+=("$llama/bin/$b")
  done
  command -v nvidia-smi >/dev/null || missing+=(nvidia-smi)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'gpu_check: missing (this script builds nothing; see its header):\n' >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi

# The runtime libraries: where bench/cuda-toolkit.sh --runtime put them, if
# the system has none.
wheels="$root/target/cuda-toolkit/py/nvidia/cu13/lib"
if ! /sbin/ldconfig -p 2>/dev/null | grep 'libcublas\.so\.13 ' >/dev/null && [ -d "$wheels" ]; then
  export LD_LIBRARY_PATH="$wheels${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

if [ "$no_gpu" = 0 ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
args=(--bin "$bin" --tools "$tools" --llama "$llama")
[ "$no_gpu" = 0 ] || args+=(--no-gpu)
exec timeout 900 python3 bench/gpu_check.py "${args[@]}"
