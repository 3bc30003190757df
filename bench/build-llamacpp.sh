#!/usr/bin/env bash
# Build llama.cpp locally (never committed) as the reference implementation:
# the library, our greedy-decoding, embedding and tokenizer probes
# (bench/llamacpp/greedy.cpp, embed.cpp, tokenize.cpp) and, with --bench, llama-bench,
# llama-batched-bench (bench/parallel_decode.py), llama-server
# (bench/chat_turns.py) and llama-quantize (which makes the K-quant bench
# files). The source is the llama.cpp vendored in the PyPI sdist of
# llama-cpp-python, because PyPI is a registry every machine of this project
# reaches.
#
# usage: bench/build-llamacpp.sh [--bench]
# output: target/llama.cpp/bin/{llmpm-greedy,llmpm-embed,llmpm-tokenize,llama-bench,llama-batched-bench,llama-server,llama-quantize}
#   (LLAMA_CPP_DIR instead of target/llama.cpp: another checkout's build is
#   reused, and only what it lacks is built)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${LLAMA_CPP_DIR:-$root/target/llama.cpp}"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
jobs="${JOBS:-$(nproc)}"
want_bench=0
[[ "${1:-}" == "--bench" ]] && want_bench=1

mkdir -p "$out/src" "$out/bin"
if ! command -v cmake >/dev/null || ! python3 -c 'import scikit_build_core' 2>/dev/null; then
    python3 -m pip install --quiet scikit-build-core cmake ninja
fi

src="$out/src/llama_cpp_python-$version/vendor/llama.cpp"
if [[ ! -f "$src/CMakeLists.txt" ]]; then
    (cd "$out/src" && python3 -m pip download --quiet --no-deps --no-binary :all: \
        --no-build-isolation "llama-cpp-python==$version" \
        && tar xzf "llama_cpp_python-$version.tar.gz")
fi

# -march=native turns on AMX where the CPU has it, but a kernel (or sandbox)
# that has not granted the AMX tile state kills the process with SIGILL on the
# first tile instruction; explicit -mno-amx-* win over -march in GCC and Clang.
amx_off=()
if grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
    amx_off=(-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$src" -B "$out/build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DGGML_OPENMP=OFF \
    "-DCMAKE_C_FLAGS=${amx_off[*]}" "-DCMAKE_CXX_FLAGS=${amx_off[*]}" >/dev/null

targets=(llama)
[[ $want_bench == 1 ]] && targets+=(llama-bench llama-batched-bench llama-server llama-quantize)
cmake --build "$out/build" -j "$jobs" --target "${targets[@]}"

# Our probe links the static libraries directly: no CMake project of our own.
libs=$(find "$out/build" -name 'libllama.a' -o -name 'libggml*.a' | sort -r)
c++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" \
    "$root/bench/llamacpp/greedy.cpp" -o "$out/bin/llmpm-greedy" \
    -Wl,--start-group $libs -Wl,--end-group -lpthread -ldl -lm
# The embedding probe (bench/gen-reference-embed.py, embedding throughput).
c++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" \
    "$root/bench/llamacpp/embed.cpp" -o "$out/bin/llmpm-embed" \
    -Wl,--start-group $libs -Wl,--end-group -lpthread -ldl -lm
# The tokenizer probe (bench/gen-reference-wpm.py).
c++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" \
    "$root/bench/llamacpp/tokenize.cpp" -o "$out/bin/llmpm-tokenize" \
    -Wl,--start-group $libs -Wl,--end-group -lpthread -ldl -lm
if [[ $want_bench == 1 ]]; then
    for tool in llama-bench llama-batched-bench llama-server llama-quantize; do
        cp "$(find "$out/build" -name "$tool" -type f | head -1)" "$out/bin/$tool"
    done
fi
echo "built: $(ls "$out/bin")" >&2
