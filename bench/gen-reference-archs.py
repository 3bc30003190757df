#!/usr/bin/env python3
"""Regenerates the `archs` part of tests/fixtures/llamacpp_greedy.json: greedy
token ids (and each step's top-4 logits) that llama.cpp produces for tiny
GGUFs of the architectures beyond Llama (qwen3, qwen3moe, phi3, gpt-oss), written by
`llmpm-gen-gguf` with the parameters recorded next to them. The `cases` of
the Llama models (bench/gen-reference.sh) are left as they are.

usage: bench/gen-reference-archs.py [--seeds A-B ARCH]
  --seeds: instead, print each seed's smallest top-2 logit margin over
  ARCH's cases per type (a seed whose margins are well above the two
  implementations' differences makes a fixture that does not flip on a near
  tie: under 1e-3 for F16, spikes to ~0.02 for Q4_K_M, whose activations are
  rounded to 8 bits).
llama.cpp: LLAMA_CPP_DIR (default target/llama.cpp), built by
bench/build-llamacpp.sh; its probe reads LLMPM_GREEDY_CTX for the context size.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# LLMPM_FIXTURES_DIR: where the fixture is read and written (bench/check-fixtures.sh).
FIXTURE = os.path.join(os.environ.get("LLMPM_FIXTURES_DIR", os.path.join(ROOT, "tests/fixtures")),
                       "llamacpp_greedy.json")
LLAMA = os.environ.get("LLAMA_CPP_DIR", os.path.join(ROOT, "target/llama.cpp"))
PROBE = os.path.join(LLAMA, "bin/llmpm-greedy")
GEN = os.path.join(ROOT, "target/debug/llmpm-gen-gguf")
N_PREDICT = 32

# Shapes keep the real models' ratios at a size that runs in a test: Qwen 3's
# heads wider than embd/heads (key_length written), Phi-3's fused matrices and
# partial rotary (Phi-4-mini rotates 3/4 of each head) with longrope factors,
# Qwen 3 MoE's experts (a quarter of them used per token, as 8 of 128 is
# too few to route differently on 4 layers; one expert's ff is a Q4_K block).
# Multiples of 256 for Q4_K blocks. Random weights leave near ties in 32
# greedy steps; the seeds come from `--seeds`, their smallest margins above
# the differences measured (qwen3 seed 30: F16 0.0018, Q4_K_M 0.018; phi3
# seed 4: F16 0.0028, Q4_K_M 0.0059; qwen3moe seed 3: F16 0.0031, Q4_K_M
# 0.0031; gpt-oss seed 70 of 1-140: F16 0.0024, MXFP4 0.013, where seed 6's
# 0.0033 flipped between llama.cpp on an AVX2 and an AVX-512 CPU), and the
# teacher-forced logit check
# backs each step on the same context for both.
ARCHS = {
    "qwen3": {"seed": 30, "gen": {"layers": 4, "embd": 256, "heads": 8, "kv-heads": 4,
                                 "head-dim": 64, "ff": 512, "vocab": 512, "ctx": 2048}},
    "qwen3moe": {"seed": 3, "gen": {"layers": 4, "embd": 256, "heads": 8, "kv-heads": 4,
                                    "head-dim": 64, "ff": 256, "vocab": 512, "ctx": 2048,
                                    "experts": 16, "experts-used": 4}},
    "phi3": {"seed": 4, "gen": {"layers": 4, "embd": 256, "heads": 8, "kv-heads": 4,
                                "rope-dim": 24, "ff": 512, "vocab": 512, "ctx": 16384,
                                "orig-ctx": 4096}},
    # gpt-oss-20b's ratios: heads wider than embd/heads (64 x 8 = 512 for
    # 256), 4 query heads per kv head (8 in the real one), experts of embd's
    # size, a quarter of them used; YaRN by 32 (orig-ctx 256 of 8192) so the
    # ramp spans the rotated pairs; a window of 16, shorter than the longer
    # prompt and than every prompt plus its 32 tokens, so the
    # sliding-window layers hide keys. F16 and MXFP4_MOE (MXFP4 experts, Q8_0
    # elsewhere, as llama-quantize writes gpt-oss).
    "gpt-oss": {"seed": 70, "ftypes": ["f16", "mxfp4"],
                "gen": {"layers": 4, "embd": 256, "heads": 8, "kv-heads": 2, "head-dim": 64,
                        "ff": 256, "vocab": 512, "ctx": 8192, "orig-ctx": 256,
                        "experts": 16, "experts-used": 4, "window": 16}},
}
# Two prompts: a short one, and a longer one whose attention spans more.
PROMPTS = [
    [1, 2, 3, 100, 200, 300, 400, 17, 42, 99, 250],
    [10 * i + 3 for i in range(1, 41)],
]
FTYPES = ["f16", "q4_k_m"]
# phi3: a context past the original one, where llama.cpp uses the long factors.
LONG_CTX = {"phi3": 8192}


def generate(path, arch, gen, seed, ftype):
    args = [GEN, "--out", path, "--arch", arch, "--ftype", ftype, "--seed", str(seed)]
    for k, v in gen.items():
        args += [f"--{k}", str(v)]
    subprocess.run(args, check=True)


def probe(path, prompt, ctx=None):
    env = dict(os.environ)
    if ctx:
        env["LLMPM_GREEDY_CTX"] = str(ctx)
    out = subprocess.run([PROBE, path, str(N_PREDICT), ",".join(map(str, prompt)), "2"],
                         capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out)


def cases(arch, spec, seed, work):
    out = []
    for ftype in spec.get("ftypes", FTYPES):
        path = os.path.join(work, f"{arch}-{ftype}.gguf")
        generate(path, arch, spec["gen"], seed, ftype)
        ctxs = [None] + ([LONG_CTX[arch]] if arch in LONG_CTX else [])
        for ctx in ctxs:
            for prompt in PROMPTS:
                r = probe(path, prompt, ctx)
                case = {"ftype": ftype, "prompt": r["prompt"], "expected": r["expected"],
                        "top": r["top"]}
                if ctx:
                    case["ctx"] = ctx
                out.append(case)
    return out


def margin(cs, ftype=None):
    return min(t[0][1] - t[1][1] for c in cs if ftype in (None, c["ftype"]) for t in c["top"])


def main():
    with tempfile.TemporaryDirectory() as work:
        if len(sys.argv) == 4 and sys.argv[1] == "--seeds":
            a, b = map(int, sys.argv[2].split("-"))
            arch = sys.argv[3]
            for seed in range(a, b + 1):
                cs = cases(arch, ARCHS[arch], seed, work)
                ftypes = ARCHS[arch].get("ftypes", FTYPES)
                print(seed, *(f"{f} {margin(cs, f):.5f}" for f in ftypes), flush=True)
            return
        with open(FIXTURE) as f:
            fixture = json.load(f)
        archs = []
        for arch, spec in ARCHS.items():
            cs = cases(arch, spec, spec["seed"], work)
            print(f"{arch}: smallest top-2 margin {margin(cs):.5f}", file=sys.stderr)
            archs.append({"arch": arch, "gen": dict(spec["gen"], seed=spec["seed"]), "cases": cs})
    fixture["archs"] = archs
    # One line per case keeps the id lists readable in a diff.
    text = json.dumps({k: v for k, v in fixture.items() if k not in ("cases", "archs")}, indent=1)[:-2]
    text += ',\n "cases": [\n' + ",\n".join("  " + json.dumps(c) for c in fixture["cases"]) + "\n ]"
    text += ',\n "archs": [\n' + ",\n".join(
        '  {"arch": ' + json.dumps(a["arch"]) + ', "gen": ' + json.dumps(a["gen"]) + ', "cases": [\n'
        + ",\n".join("   " + json.dumps(c) for c in a["cases"]) + "\n  ]}" for a in archs) + "\n ]\n}"
    with open(FIXTURE, "w") as f:
        f.write(text + "\n")
    print(f"wrote {FIXTURE}", file=sys.stderr)


if __name__ == "__main__":
    main()
