#!/usr/bin/env bash
# Re-checks the committed llama.cpp fixtures (tests/fixtures/llamacpp_*.json)
# against llama.cpp itself, so a fixture cannot drift from its reference.
#
# tests/fixtures/CHECKED holds the sha256 of every input of the fixtures
# (generator scripts, llama.cpp probes and build script, the tiny-model
# writer, the model fetcher) and of the fixtures themselves, as of their last
# successful check. When they all match, this is a no-op (CI runs it every
# time). Otherwise it builds llama.cpp (bench/build-llamacpp.sh, cached in
# LLAMA_CPP_DIR, default target/llama.cpp; the probes are always rebuilt),
# regenerates every fixture into a temporary directory with the generators and
# compares them with the committed ones: structure, generator parameters,
# prompts and token ids exactly, numbers to 1e-4 (the 6 decimals the probes
# print, with room for the last digit). llama.cpp's greedy ids and logits
# (`expected`, `top` in llamacpp_greedy.json and llamacpp_real.json) depend
# on the CPU's SIMD kernels, so there only their shape is compared, and the
# reference tests run against the regenerated fixtures instead: llmpm must
# agree with this machine's llama.cpp within the tests' tolerances. A
# difference or a failing test fails. No difference but a stale stamp fails
# too, printing the stamp to commit (or run with --write).
#
# usage: bench/check-fixtures.sh [--force] [--write]
#   --force: check even when the stamp matches (a scheduled run)
#   --write: after a successful check, write tests/fixtures/CHECKED
# llama.cpp's results depend on the CPU's SIMD kernels: the real models'
# logits moved by up to 0.44 between two machines, and a tiny gpt-oss's
# greedy ids parted on a 0.005 margin between an AVX2 and an AVX-512 CPU.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
force=0 write=0
for a in "$@"; do
    case "$a" in
        --force) force=1 ;;
        --write) write=1 ;;
        *) echo "usage: $0 [--force] [--write]" >&2; exit 2 ;;
    esac
done
stamp_file=tests/fixtures/CHECKED

# The inputs and the fixtures, one sha256sum line each, sorted by path.
stamp() {
    {
        ls bench/gen-reference.sh bench/gen-reference-archs.py bench/gen-reference-embed.py \
            bench/gen-reference-real.sh bench/gen-reference-wpm.py bench/build-llamacpp.sh bench/check-fixtures.sh \
            tests/fetch-models.sh tests/src/bin/llmpm-gen-gguf.rs
        find bench/llamacpp gguf/src/tiny gguf/src/writer -type f ! -name tests.rs
        ls gguf/src/tiny.rs gguf/src/writer.rs tests/fixtures/llamacpp_*.json
    } | LC_ALL=C sort | xargs sha256sum
}

current="$(stamp)"
if [[ $force == 0 && -f $stamp_file ]] && [[ "$current" == "$(cat "$stamp_file")" ]]; then
    echo "fixtures: unchanged since their last check against llama.cpp ($stamp_file)"
    exit 0
fi
if [[ $force == 0 ]]; then
    echo "fixtures: these inputs changed since the last check ($stamp_file):"
    diff <(cat "$stamp_file" 2>/dev/null || true) <(echo "$current") | sed -n 's/^> /  /p' || true
fi

start=$SECONDS
bench/build-llamacpp.sh >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp tests/fixtures/llamacpp_*.json "$work/"
export LLMPM_FIXTURES_DIR="$work"
bench/gen-reference.sh >&2          # llamacpp_greedy.json, with the archs' cases
python3 bench/gen-reference-embed.py >&2   # llamacpp_embed.json, llamacpp_rerank.json
python3 bench/gen-reference-wpm.py >&2     # llamacpp_wpm_tokens.json
bench/gen-reference-real.sh >&2     # llamacpp_real.json (fetches the real models)

failed=0
for f in tests/fixtures/llamacpp_*.json; do
    if ! python3 - "$f" "$work/$(basename "$f")" <<'PY'; then
import json, sys

# What llama.cpp computes with the CPU's SIMD kernels: shapes only.
LOOSE = {"expected", "top"} if sys.argv[1].rsplit("/", 1)[-1] in (
    "llamacpp_greedy.json", "llamacpp_real.json") else set()

def diff(a, b, path, loose=False):
    """The first difference between a and b as text, or None; under a LOOSE
    key, numbers (ids and logits) are not compared, only the shapes."""
    loose = loose or path.rsplit(".", 1)[-1] in LOOSE
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
        return None if a == b else f"{path}: {a!r} committed, {b!r} regenerated"
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if loose:
            return None
        if isinstance(a, int) and isinstance(b, int):
            return None if a == b else f"{path}: {a} committed, {b} regenerated"
        return None if abs(a - b) <= 1e-4 else f"{path}: {a} committed, {b} regenerated"
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items committed, {len(b)} regenerated"
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, f"{path}[{i}]", loose)
            if d:
                return d
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} committed, {sorted(b)} regenerated"
        for k in a:
            d = diff(a[k], b[k], f"{path}.{k}", loose)
            if d:
                return d
        return None
    return f"{path}: {type(a).__name__} committed, {type(b).__name__} regenerated"

with open(sys.argv[1]) as f:
    committed = json.load(f)
with open(sys.argv[2]) as f:
    regenerated = json.load(f)
d = diff(committed, regenerated, sys.argv[1].rsplit("/", 1)[-1])
if d:
    print(f"DRIFT {d}", file=sys.stderr)
    sys.exit(1)
print(f"ok {sys.argv[1]}: reproduced by llama.cpp" + (" (shapes of its ids and logits)" if LOOSE else ""))
PY
        failed=1
    fi
done
# The CPU-dependent parts: llmpm against this machine's llama.cpp.
if ! LLMPM_FIXTURES_DIR="$work" cargo test --quiet -p llmpm-tests --test reference \
        --test reference_embed --test real_models >&2; then
    echo "fixtures: llmpm does not agree with the regenerated fixtures (tests above)" >&2
    failed=1
fi
if [[ $failed == 1 ]]; then
    echo "fixtures: a committed fixture is not what its generator makes with llama.cpp now." >&2
    echo "  Regenerate it (bench/gen-reference*.sh / .py), review the diff, then run" >&2
    echo "  bench/check-fixtures.sh --write and commit tests/fixtures/CHECKED. CPU: $(grep -o -w 'avx512[a-z]*\|avx2\|amx_[a-z0-9]*' /proc/cpuinfo 2>/dev/null | sort -u | tr '\n' ' ')" >&2
    exit 1
fi
echo "fixtures: all reproduced by llama.cpp in $((SECONDS - start)) s"
if [[ $write == 1 ]]; then
    echo "$current" > "$stamp_file"
    echo "wrote $stamp_file: commit it"
    exit 0
fi
if [[ -f $stamp_file ]] && [[ "$current" == "$(cat "$stamp_file")" ]]; then
    exit 0
fi
echo "fixtures: $stamp_file is out of date (the fixtures reproduce). Commit this as $stamp_file" >&2
echo "  (or run bench/check-fixtures.sh --write):" >&2
echo "$current" >&2
exit 1
