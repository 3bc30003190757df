#!/usr/bin/env bash
# The CUDA toolkit from PyPI, enough to build `--features cuda` on a machine
# without a GPU or the NVIDIA driver (issue 20). Installs the pinned wheels
# into $LLMPM_CUDA_TOOLKIT (default target/cuda-toolkit), generates the
# lazy-loading link stubs for the CUDA libraries candle links
# (bench/cuda-shim.py, checked here against a fake libcuda; the static CUDA
# runtime for -lcudart), and prints the
# environment the build needs, so:
#
#   eval "$(bench/cuda-toolkit.sh)"
#   CARGO_TARGET_DIR=target/cuda cargo build --release -p llmpmd --features cuda
#
# --runtime also installs the runtime libraries (cuBLAS, NVRTC, cuRAND: about
# 1 GB) and adds them to LD_LIBRARY_PATH, for running the build on a GPU
# machine whose system has none; the build itself needs none of them.
# Progress goes to stderr; stdout is only the `export` lines.
set -euo pipefail
cd "$(dirname "$0")/.."

runtime=0
for a in "$@"; do
  case "$a" in
    --runtime) runtime=1 ;;
    *) echo "usage: $0 [--runtime]" >&2; exit 2 ;;
  esac
done

# Pinned: nvcc 13.x (the -cu12 wheel has no nvcc driver) and CCCL, whose
# nv/target header cuda_fp16.h includes; the runtime wheel brings
# cuda_runtime.h. The runtime libraries are of the same CUDA major.
BUILD_WHEELS=('nvidia-cuda-nvcc==13.5.37' 'nvidia-cuda-cccl==13.3.5.0.6' 'nvidia-cuda-runtime==13.5.37')
RUNTIME_WHEELS=('nvidia-cuda-nvrtc==13.5.37' 'nvidia-curand==10.4.4.72' 'nvidia-cublas==13.10.0.20')
PY=${PYTHON:-python3}
DIR=${LLMPM_CUDA_TOOLKIT:-$PWD/target/cuda-toolkit}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# install WHEELS... into $DIR/py unless the stamp says these pins are there.
install() {
  local stamp="$DIR/.installed-$1"; shift
  if [ "$(cat "$stamp" 2>/dev/null)" != "$*" ]; then
    echo "cuda-toolkit: installing $* into $DIR/py" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
      --upgrade --target "$DIR/py" "$@" >&2
    echo "$*" >"$stamp"
  fi
}
install build "${BUILD_WHEELS[@]}"
[ "$runtime" = 0 ] || install runtime "${RUNTIME_WHEELS[@]}"

ROOT="$DIR/py/nvidia/cu13"
[ -x "$ROOT/bin/nvcc" ] || { echo "cuda-toolkit: no nvcc at $ROOT/bin/nvcc" >&2; exit 1; }
[ -f "$ROOT/include/nv/target" ] || { echo "cuda-toolkit: no nv/target header (nvidia-cuda-cccl)" >&2; exit 1; }
release=$("$ROOT/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\),.*/\1 \2/p')
read -r major minor <<<"$release"
[ -n "${minor:-}" ] || { echo "cuda-toolkit: cannot read nvcc's release" >&2; exit 1; }

# cudarc's source: its build script's known toolkit versions, and the
# functions the stubs must define.
cudarc=$(cargo metadata --format-version 1 --features llmpmd/cuda 2>/dev/null |
  "$PY" -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))')
cudarc=$(dirname "$cudarc")

# cudarc panics on a toolkit newer than it knows ("unsupported cuda toolkit
# version", 13.5 with cudarc 0.19.10): name the newest it knows of the same
# major, which the minor-version compatibility of CUDA makes sound.
known=$(sed -n "s/.*((${major}, \([0-9]*\)), cfg!(feature = \"cuda-.*/\1/p" "$cudarc/build.rs" |
  awk -v m="$minor" '$1 <= m' | sort -n | tail -1)
[ -n "$known" ] || { echo "cuda-toolkit: cudarc knows no CUDA $major.x at or below $major.$minor" >&2; exit 1; }
cudarc_version=$(printf '%d0%d0' "$major" "$known")

# The link stubs go where cudarc's build script looks ($CUDA_ROOT/lib/stubs,
# as in NVIDIA's own toolkit), so the build needs no RUSTFLAGS.
STUBS="$ROOT/lib/stubs"
gen="$DIR/shim-src"
rm -rf "$gen" "$STUBS"
mkdir -p "$STUBS"
"$PY" bench/cuda-shim.py "$cudarc" "$gen" "$major" >&2
CC=${CC:-cc}
case "$(uname -m)" in
  x86_64) ;;
  *) echo "cuda-toolkit: the link stubs are x86-64 only" >&2; exit 1 ;;
esac
for c in "$gen"/*.c; do
  lib=$(basename "$c" .c)
  "$CC" -O2 -fPIC -c "$c" -o "$gen/$lib.c.o"
  "$CC" -c "$gen/$lib.S" -o "$gen/$lib.S.o"
  rm -f "$STUBS/lib$lib.a"
  ar rcs "$STUBS/lib$lib.a" "$gen/$lib.c.o" "$gen/$lib.S.o"
done

# candle-kernels also links -lcudart, for its kernels compiled by nvcc into
# the binary (libmoe.a): the static CUDA runtime, as nvcc links by default,
# which loads the driver itself at its first real call, so it too leaves
# no load-time dependency.
ln -sf ../libcudart_static.a "$STUBS/libcudart.a"
[ -f "$STUBS/libcudart.a" ] || { echo "cuda-toolkit: no libcudart_static.a (nvidia-cuda-runtime)" >&2; exit 1; }

# Self-check: a program linked with -lcuda against the stubs starts without
# a driver and gets CUDA_ERROR_STUB_LIBRARY (34); with a fake libcuda.so.1 on
# LD_LIBRARY_PATH its arguments and results pass through unchanged.
t="$gen/check"
mkdir -p "$t/fake"
cat >"$t/fake/fake.c" <<'EOF'
int cuInit(unsigned flags) { return (int)flags + 1000; }
int cuDeviceGetCount(int *n) { *n = 7; return 0; }
int cuMemsetD8_v2(unsigned long long p, unsigned char v, unsigned long n) { return (int)(p + v + n); }
EOF
cat >"$t/main.c" <<'EOF'
#include <stdio.h>
int cuInit(unsigned);
int cuDeviceGetCount(int *);
int cuMemsetD8_v2(unsigned long long, unsigned char, unsigned long);
int cuCtxSynchronize(void);
int main(void) {
    int n = -1;
    int a = cuInit(5), b = cuDeviceGetCount(&n), c = cuMemsetD8_v2(100, 20, 3), d = cuCtxSynchronize();
    printf("%d %d %d %d %d\n", a, b, n, c, d);
    return 0;
}
EOF
"$CC" -shared -fPIC -Wl,-soname,libcuda.so.1 "$t/fake/fake.c" -o "$t/fake/libcuda.so.1"
"$CC" -O2 "$t/main.c" -L"$STUBS" -lcuda -o "$t/main"
if readelf -d "$t/main" | grep -q 'NEEDED.*libcuda'; then
  echo "cuda-toolkit: self-check: the stub left a NEEDED libcuda" >&2; exit 1
fi
if ! /sbin/ldconfig -p 2>/dev/null | grep 'libcuda\.so\.1 ' >/dev/null; then
  got=$(env -u LD_LIBRARY_PATH "$t/main" 2>/dev/null)
  [ "$got" = "34 34 -1 34 34" ] || { echo "cuda-toolkit: self-check without a driver: got '$got'" >&2; exit 1; }
fi
got=$(LD_LIBRARY_PATH="$t/fake" "$t/main")
[ "$got" = "1005 0 7 123 34" ] || { echo "cuda-toolkit: self-check with a fake driver: got '$got'" >&2; exit 1; }
echo "cuda-toolkit: CUDA $major.$minor (cudarc told $cudarc_version), link stubs in $STUBS checked" >&2

cat <<EOF
export CUDA_ROOT='$ROOT' CUDA_PATH='$ROOT' CUDA_HOME='$ROOT'
unset CUDA_TOOLKIT_ROOT_DIR CUDNN_LIB
export PATH='$ROOT/bin':"\$PATH"
export CUDA_COMPUTE_CAP='${CUDA_COMPUTE_CAP:-90}'
export CUDARC_CUDA_VERSION='$cudarc_version'
EOF
if [ "$runtime" = 1 ]; then
  libs=""
  for d in "$DIR"/py/nvidia/*/lib; do
    [ -d "$d" ] && libs="$libs${libs:+:}$d"
  done
  echo "export LD_LIBRARY_PATH='$libs'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
fi
