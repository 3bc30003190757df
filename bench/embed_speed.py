#!/usr/bin/env python3
"""Embedding throughput: llmpm's /api/embed against llama.cpp on the same
GGUF, in one run, same thread count: sentences per second for one batch of
sentences of different lengths (default 32, as a retrieval indexer sends).

Usage: python3 bench/embed_speed.py [--threads 2] [--rounds 5] [--batch 32]
                                    [--model FILE.gguf]

The default model is nomic-embed-text's shape (nomic-bert: hidden 768, 12
layers, 12 heads, feed-forward 3072, vocabulary 30522, F16) with random
weights and a WordPiece vocabulary, written by `llmpm-gen-gguf` into
target/bench-models/ (never committed).

llama.cpp: bench/llamacpp/embed.cpp (`llmpm-embed`, built by
bench/build-llamacpp.sh) runs the batch as llama-embedding does (every
sentence its own sequence in one llama_decode), on ids from llama.cpp's own
tokenizer (`llmpm-tokenize`); timed: llama_decode alone (model load and
tokenization excluded). llmpm: the client's clock around one /api/embed
request with every sentence (HTTP, tokenization, JSON included), the model
loaded by a first request. Each side: the best of --rounds runs (the
machine's other load only ever slows a run down), and the median.
Also printed: the smallest cosine similarity between the two sides'
embeddings (same input ids, so it checks the comparison is like for like).
No timing is asserted anywhere; the ratio is llmpm / llama.cpp (higher is
better).

Environment: CARGO_TARGET_DIR (llmpm's release binaries, default target/),
LLAMA_CPP_DIR (default target/llama.cpp), LLMPM_BENCH_MODELS (default
target/bench-models).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner_speed import LLAMA, MODELS, REL, ROOT, Llmpm, UnixHTTPConnection, run  # noqa: E402

WORDS = ("the quick brown fox jumps over lazy dog a llama is an animal that lives in hills and "
         "eats grass search finds documents by vector similarity retrieval of texts with embeddings "
         "is fast language models read every sentence of the book before school starts").split()
# Words per sentence, cycled: short queries to paragraph-sized chunks.
LENGTHS = [6, 12, 24, 48, 96, 10, 32, 64]


def sentences(n):
    out = []
    for i in range(n):
        k = LENGTHS[i % len(LENGTHS)]
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(k)]
        out.append(" ".join(words).capitalize() + ".")
    return out


def model_file():
    MODELS.mkdir(parents=True, exist_ok=True)
    path = MODELS / "nomic-embed-text-shape-f16.gguf"
    if not path.exists():
        gen = REL / "llmpm-gen-gguf"
        if not gen.exists():
            gen = ROOT / "target" / "debug" / "llmpm-gen-gguf"
        tmp = path.with_suffix(".tmp")
        print(f"== generating {path.name}", flush=True)
        run([str(gen), "--out", str(tmp), "--arch", "nomic-bert", "--layers", "12", "--embd", "768",
             "--heads", "12", "--kv-heads", "12", "--ff", "3072", "--vocab", "30522",
             "--ctx", "2048", "--pooling", "1", "--ftype", "f16"])
        tmp.rename(path)
    return path


def llama_side(path, texts, threads, rounds):
    stdin = "".join(t.encode("utf-8").hex() + "\n" for t in texts)
    r = run([str(LLAMA / "llmpm-tokenize"), str(path)], input=stdin, capture_output=True, text=True)
    ids = [[int(x) for x in line.split("\t")[0].split(",")] for line in r.stdout.splitlines()]
    arg = ";".join(",".join(map(str, s)) for s in ids)
    r = run([str(LLAMA / "llmpm-embed"), str(path), arg, str(threads)], capture_output=True,
            text=True, env=dict(os.environ, LLMPM_EMBED_ROUNDS=str(rounds)))
    line = [l for l in r.stderr.splitlines() if l.startswith("decode_ms ")][-1]
    ms = [float(x) for x in line.split()[1].split(",")]
    return {"tokens": sum(map(len, ids)), "secs": [m / 1000 for m in ms],
            "embeddings": json.loads(r.stdout)}


def llmpm_side(path, texts, threads, rounds):
    with tempfile.TemporaryDirectory() as tmp:
        llm = Llmpm(tmp)
        try:
            llm.create("embed", path, num_ctx=2048)

            def embed():
                c = UnixHTTPConnection(llm.sock)
                t0 = time.time()
                c.request("POST", "/api/embed", json.dumps(
                    {"model": "embed", "input": texts, "options": {"num_thread": threads}}),
                    {"Content-Type": "application/json"})
                r = c.getresponse()
                body = r.read()
                secs = time.time() - t0
                c.close()
                if r.status != 200:
                    raise RuntimeError(f"/api/embed: {r.status} {body[:300]!r}")
                return secs, json.loads(body)

            embed()  # load
            runs = [embed() for _ in range(rounds)]
        finally:
            llm.close()
    last = runs[-1][1]
    return {"tokens": last["prompt_eval_count"], "secs": [s for s, _ in runs],
            "embeddings": last["embeddings"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--model", default="")
    a = ap.parse_args()
    for b in (REL / "llmpmd", REL / "llmpm", LLAMA / "llmpm-embed", LLAMA / "llmpm-tokenize"):
        if not b.exists():
            sys.exit(f"missing {b}: cargo build --release -p llmpmd -p llmpm; bench/build-llamacpp.sh")
    path = Path(a.model) if a.model else model_file()
    texts = sentences(a.batch)
    print(f"# {path.name}, {a.batch} sentences, {a.threads} threads, best of {a.rounds}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    ref = llama_side(path, texts, a.threads, a.rounds)
    ours = llmpm_side(path, texts, a.threads, a.rounds)
    cos = min(sum(x * y for x, y in zip(u, v)) for u, v in zip(ours["embeddings"], ref["embeddings"]))
    print(f"{'side':10} {'tokens':>7} {'best s':>8} {'median s':>9} {'sent/s':>8} {'tok/s':>8}")
    rate = {}
    for name, side in (("llama.cpp", ref), ("llmpm", ours)):
        best = min(side["secs"])
        rate[name] = a.batch / best
        print(f"{name:10} {side['tokens']:>7} {best:>8.3f} {statistics.median(side['secs']):>9.3f} "
              f"{a.batch / best:>8.1f} {side['tokens'] / best:>8.0f}")
    print(f"ratio llmpm/llama.cpp sentences/s: {rate['llmpm'] / rate['llama.cpp']:.2f}x; "
          f"smallest cosine between the sides' embeddings: {cos:.6f}")


if __name__ == "__main__":
    main()
