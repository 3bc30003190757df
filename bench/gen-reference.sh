#!/usr/bin/env bash
# Regenerates tests/fixtures/llamacpp_greedy.json: greedy token ids that
# llama.cpp (the reference implementation) produces for deterministic tiny
# Llama-3-shaped GGUFs, which tests/tests/reference.rs compares ours against.
# The GGUFs are never committed: the test regenerates them from the same
# generator parameters, recorded in the fixture.
#
# usage: bench/gen-reference.sh    (builds llama.cpp first if needed)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
probe="target/llama.cpp/bin/llmpm-greedy"
[[ -x "$probe" ]] || bench/build-llamacpp.sh
cargo build --quiet -p llmpm-tests --bin llmpm-gen-gguf
gen="target/debug/llmpm-gen-gguf"

# Dims: big enough for GQA (8 query / 4 kv heads), several layers and a
# vocabulary with real choices; multiples of 32 for Q8_0 blocks.
# Seed 4 is well conditioned: llama.cpp's top-2 logit margin stays above
# 0.015 at every step for both types, well above the Q8_0 activation-rounding
# noise (~0.005) that makes two correct implementations differ on near ties.
layers=4 embd=256 heads=8 kv_heads=4 ff=512 vocab=512 ctx=2048 seed=4
prompt="507,1,2,3,100,200,300,400,17,42,99,250"   # BOS + fixed ids: no tokenizer involved
n_predict=32
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cases=()
for ftype in q8_0 q4_0 f16; do
    "$gen" --out "$work/$ftype.gguf" --ftype "$ftype" --layers $layers --embd $embd \
        --heads $heads --kv-heads $kv_heads --ff $ff --vocab $vocab --ctx $ctx --seed $seed
    ids="$("$probe" "$work/$ftype.gguf" $n_predict "$prompt" 2 2>/dev/null)"
    cases+=("{\"ftype\":\"$ftype\",\"result\":$ids}")
done

python3 - "$layers" "$embd" "$heads" "$kv_heads" "$ff" "$vocab" "$ctx" "$seed" "${cases[@]}" <<'PY' > "$work/fixture.json"
import json, sys
layers, embd, heads, kv, ff, vocab, ctx, seed = map(int, sys.argv[1:9])
out = {
    "_about": "Greedy token ids, and each step's top-4 (id, logit), from llama.cpp (vendored in the llama-cpp-python 0.3.36 sdist, "
              "CPU, no weight repacking, F32 KV cache, no flash attention) for tiny GGUFs written by "
              "`llmpm-gen-gguf` with `gen` below. Regenerate: bench/gen-reference.sh",
    "gen": {"layers": layers, "embd": embd, "heads": heads, "kv_heads": kv, "ff": ff,
            "vocab": vocab, "ctx": ctx, "seed": seed},
    "cases": [],
}
for c in sys.argv[9:]:
    c = json.loads(c)
    out["cases"].append({"ftype": c["ftype"], "prompt": c["result"]["prompt"],
                         "expected": c["result"]["expected"], "top": c["result"]["top"]})
# One line per case keeps the id lists readable in a diff.
cases = out.pop("cases")
text = json.dumps(out, indent=1)[:-2]
text += ',\n "cases": [\n' + ",\n".join("  " + json.dumps(c) for c in cases) + "\n ]\n}"
print(text)
PY
mv "$work/fixture.json" tests/fixtures/llamacpp_greedy.json
# The other architectures' cases (bench/gen-reference-archs.py), made again
# against the same llama.cpp.
python3 bench/gen-reference-archs.py
echo "wrote tests/fixtures/llamacpp_greedy.json" >&2
