#!/usr/bin/env python3
"""Memory per token of context with each KV cache type: a runner of the real
Qwen2.5-Coder-0.5B (or --model) at num_ctx 8192 for LLMPM_KV_CACHE_TYPE f16,
q8_0 and q4_0, one after the other; its resident memory after loading and
after a prompt of --tokens tokens, and the growth per token. The cache
reserves num_ctx tokens but touches memory only as tokens arrive, so the
growth over the prompt is the cache's real size per token (plus the same
activations for every type).

Usage: python3 bench/kv_memory.py [--model PATH] [--tokens 4096] [--threads 2]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner_speed import ROOT, Llmpm, runner_memory_kib  # noqa: E402


def runner_rss_kib():
    kib = runner_memory_kib("VmRSS")
    if kib is None:
        raise RuntimeError("no runner process")
    return kib


def measure(kv, path, tokens, threads):
    os.environ["LLMPM_KV_CACHE_TYPE"] = kv
    with tempfile.TemporaryDirectory(prefix="llmpm-kv-bench") as tmp:
        llm = Llmpm(tmp)
        try:
            llm.create("m", path, num_ctx=8192)
            opts = {"temperature": 0, "num_thread": threads, "num_predict": 1}
            llm.generate({"model": "m", "prompt": "hi", "raw": True, "options": opts})
            time.sleep(0.5)
            before = runner_rss_kib()
            # " the" is one token in most vocabularies.
            _, last = llm.generate({"model": "m", "prompt": "the" + " the" * (tokens - 1),
                                    "raw": True, "options": opts})
            after = runner_rss_kib()
            return before, after, last["prompt_eval_count"]
        finally:
            llm.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "target" / "models"
                                           / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "llmpmd", "-p", "llmpm"],
                   cwd=ROOT, check=True)
    rows = {}
    for kv in ("f16", "q8_0", "q4_0"):
        before, after, n = measure(kv, Path(args.model).resolve(), args.tokens, args.threads)
        rows[kv] = (after - before) / n
        print(f"{kv:>5}: RSS {before / 1024:.1f} MiB loaded, {after / 1024:.1f} MiB after "
              f"{n} tokens: {rows[kv]:.2f} KiB per token", flush=True)
    for kv in ("q8_0", "q4_0"):
        print(f"{kv} / f16 per token: {rows[kv] / rows['f16']:.3f}")


if __name__ == "__main__":
    main()
