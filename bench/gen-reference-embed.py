#!/usr/bin/env python3
"""Regenerates tests/fixtures/llamacpp_embed.json: the embeddings llama.cpp
gives tiny BERT-family GGUFs (written by `llmpm-gen-gguf` with the parameters
recorded in the fixture, a WordPiece vocabulary) for sentences that
llama.cpp's own tokenizer turns into ids, all in one batch of
sequences of different lengths, pooled as each model says and L2-normalised
(llama-embedding's default). tests/tests/reference.rs compares ours.

It also writes tests/fixtures/llamacpp_rerank.json: a tiny BERT reranker
(pooling_type 4, rank: the `cls`/`cls.output` classification head) scoring
query/document pairs that llama.cpp lays out itself as llama-server's
`/rerank` does (embed.cpp's --rank mode); tests/tests/reference_embed.rs
compares our pairs and scores.

usage: bench/gen-reference-embed.py   (LLAMA_CPP_DIR: default target/llama.cpp; LLMPM_FIXTURES_DIR;
its bin/llmpm-embed is bench/llamacpp/embed.cpp, built by bench/build-llamacpp.sh)
"""
import json
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA = os.environ.get("LLAMA_CPP_DIR", os.path.join(ROOT, "target/llama.cpp"))
PROBE = os.path.join(LLAMA, "bin/llmpm-embed")
GEN = os.path.join(ROOT, "target/debug/llmpm-gen-gguf")
# LLMPM_FIXTURES_DIR: where the fixtures are written (bench/check-fixtures.sh).
FIXTURES = os.environ.get("LLMPM_FIXTURES_DIR", os.path.join(ROOT, "tests/fixtures"))
OUT = os.path.join(FIXTURES, "llamacpp_embed.json")
RERANK_OUT = os.path.join(FIXTURES, "llamacpp_rerank.json")

# all-minilm's and nomic-embed-text's ratios (head 32, ff 4 x embd), small;
# a WordPiece vocabulary of a few thousand pieces (bert-base-uncased's layout).
SHAPE = {"layers": 2, "embd": 128, "heads": 4, "ff": 512, "vocab": 3000, "seed": 1}
MODELS = [
    {"arch": "bert", "gen": dict(SHAPE, ctx=512, pooling=1)},
    {"arch": "bert", "gen": dict(SHAPE, ctx=512, pooling=2)},
    {"arch": "nomic-bert", "gen": dict(SHAPE, ctx=2048, pooling=1)},
]
# Sentences of different lengths, run as one batch (8: llama.cpp 0.3.36
# asserts at context creation when the sequence count does not divide its
# 256-padded context); llama.cpp tokenizes
# them (bench/llamacpp/tokenize.cpp: [CLS] ... [SEP]) and the fixture keeps
# its ids, which tests/tests/reference_embed.rs checks our tokenizer against.
TEXTS = [
    "hello",
    "Hello, World! How are you today?",
    "A llama is an animal that lives in the hills and eats grass.",
    "Why is the sky blue? Because of Rayleigh scattering of sunlight.",
    "CAPS LOCK and MiXeD case",
    "don't stop: it's 3rd-rate code, isn't it?",
    "an unknownword€ and an emoji 🙂",
    "Embedding models read documents; search finds them by vector similarity, "
    "and the retrieval of texts with embeddings is fast. Café naïve résumé. "
    "中文分词 and 日本語 text, e-mail, U.S.A., $100 — all in one longer sentence "
    "that the quick brown fox jumps over while the lazy dog sleeps.",
]
TOKENIZE = os.path.join(LLAMA, "bin/llmpm-tokenize")


def llama_ids(path):
    stdin = "".join(t.encode("utf-8").hex() + "\n" for t in TEXTS)
    r = subprocess.run([TOKENIZE, path], input=stdin, capture_output=True, text=True, check=True)
    return [[int(x) for x in line.split("\t")[0].split(",")] for line in r.stdout.splitlines()]


def main():
    out = {"_about": "Embeddings from llama.cpp (llama-cpp-python 0.3.36's, CPU, bench/llamacpp/embed.cpp: one batch, "
                     "a sequence per sentence, the model's pooling, L2-normalised) for tiny GGUFs of `gen`; `texts` "
                     "tokenized by llama.cpp's WordPiece into `sentences`. Regenerate: bench/gen-reference-embed.py",
           "texts": TEXTS, "sentences": None, "models": []}
    with tempfile.TemporaryDirectory() as work:
        for m in MODELS:
            cases = []
            for ftype in ["f32", "f16"]:
                path = os.path.join(work, "m.gguf")
                args = [GEN, "--out", path, "--arch", m["arch"], "--ftype", ftype]
                for k, v in m["gen"].items():
                    args += [f"--{k}", str(v)]
                subprocess.run(args, check=True)
                sentences = llama_ids(path)
                assert out["sentences"] in (None, sentences), "one vocabulary for all models"
                out["sentences"] = sentences
                ids = ";".join(",".join(map(str, s)) for s in sentences)
                r = subprocess.run([PROBE, path, ids, "2"], capture_output=True, text=True, check=True)
                cases.append({"ftype": ftype, "embeddings": json.loads(r.stdout)})
            out["models"].append(dict(m, cases=cases))
    with open(OUT, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {OUT}")
    rerank()


# A query and documents, token ids without [CLS]/[SEP] (llama.cpp adds
# them), in the WordPiece vocabulary's piece range (104 up).
QUERY = [150, 160, 171]
DOCUMENTS = [
    [141, 190, 200],
    [150, 160],
    [104 + 7 * i for i in range(12)],
    [(31 * i) % 190 + 105 for i in range(40)],
]


def rerank():
    gen = dict(SHAPE, ctx=512, pooling=4)
    out = {"_about": "Reranker scores from llama.cpp (llama-cpp-python 0.3.36's, CPU, bench/llamacpp/embed.cpp "
                     "--rank: pairs laid out as llama-server's format_prompt_rerank, one batch, rank pooling, "
                     "the head's logits unnormalised) for a tiny `bert` GGUF of `gen`. "
                     "Regenerate: bench/gen-reference-embed.py",
           "query": QUERY, "documents": DOCUMENTS, "arch": "bert", "gen": gen, "cases": []}
    with tempfile.TemporaryDirectory() as work:
        for ftype in ["f32", "f16"]:
            path = os.path.join(work, "m.gguf")
            args = [GEN, "--out", path, "--arch", "bert", "--ftype", ftype]
            for k, v in gen.items():
                args += [f"--{k}", str(v)]
            subprocess.run(args, check=True)
            ids = ";".join(",".join(map(str, s)) for s in [QUERY] + DOCUMENTS)
            r = subprocess.run([PROBE, path, "--rank", ids, "2"], capture_output=True, text=True, check=True)
            cases = json.loads(r.stdout)
            out["cases"].append({"ftype": ftype, "pairs": cases["pairs"], "scores": cases["scores"]})
    with open(RERANK_OUT, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {RERANK_OUT}")


if __name__ == "__main__":
    main()
