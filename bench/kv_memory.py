#!/usr/bin/env python3
"""Memory per token of context with each KV cache type: a runner of the real
Qwen2.5-Coder-0.5B (or --model) at num_ctx 8192 for LLMPM_KV_CACHE_TYPE f16,
q8_0 and q4_0, one after the other; its resident memory after loading and
after a prompt of --tokens tokens, and the growth per token. The cache
reserves num_ctx tokens but touches memory only as tokens arrive, so the
growth is the cache's real size per token. Two things keep activations out
of the figure: the slope is taken between a first prompt of --warm tokens
and a longer one that extends it through the prompt cache (the prompt's
chunks allocate the same scratch both times), and glibc is told to map
every allocation over 128 KiB on its own and give it back when freed
(MALLOC_MMAP_THRESHOLD_), so freed scratch leaves RSS and only live memory
(weights and cache) stays.

Usage: python3 bench/kv_memory.py [--model PATH] [--tokens 4096] [--warm 1024] [--threads 2]
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


def measure(kv, path, tokens, warm, threads):
    os.environ["LLMPM_KV_CACHE_TYPE"] = kv
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    os.environ["MALLOC_TRIM_THRESHOLD_"] = "0"
    with tempfile.TemporaryDirectory(prefix="llmpm-kv-bench") as tmp:
        llm = Llmpm(tmp)
        try:
            llm.create("m", path, num_ctx=8192)
            opts = {"temperature": 0, "num_thread": threads, "num_predict": 1}
            # " the" is one token in most vocabularies.
            _, first = llm.generate({"model": "m", "prompt": "the" + " the" * (warm - 1),
                                     "raw": True, "options": opts})
            time.sleep(0.5)
            before = runner_rss_kib()
            _, last = llm.generate({"model": "m", "prompt": "the" + " the" * (tokens - 1),
                                    "raw": True, "options": opts})
            time.sleep(0.5)
            after = runner_rss_kib()
            cached = last.get("prompt_cache_count", 0)
            if cached < first["prompt_eval_count"] - 1:
                raise RuntimeError(f"the longer prompt reused only {cached} cached tokens")
            # The first answer's token is in the cache too.
            return before, after, last["prompt_eval_count"] - first["prompt_eval_count"]
        finally:
            llm.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "target" / "models"
                                           / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--warm", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "llmpmd", "-p", "llmpm"],
                   cwd=ROOT, check=True)
    rows = {}
    for kv in ("f16", "q8_0", "q4_0"):
        before, after, n = measure(kv, Path(args.model).resolve(), args.tokens, args.warm,
                                   args.threads)
        rows[kv] = (after - before) / n
        print(f"{kv:>5}: RSS {before / 1024:.1f} MiB after {args.warm} tokens, "
              f"{after / 1024:.1f} MiB after {n} more: {rows[kv]:.2f} KiB per token", flush=True)
    for kv in ("q8_0", "q4_0"):
        print(f"{kv} / f16 per token: {rows[kv] / rows['f16']:.3f}")


if __name__ == "__main__":
    main()
