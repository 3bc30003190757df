#!/usr/bin/env python3
"""Memory per token of context with each KV cache type: runners of the real
Qwen2.5-Coder-0.5B (or --model) for LLMPM_KV_CACHE_TYPE f16, q8_0 and q4_0,
all at one context size (--ctx num_ctx), each given a short and a long
context (--short, --long tokens), one runner after the other: the long one
is reached --short new tokens a request (the prompt cache keeps the rest),
so every request evaluates as many tokens and the activations' peak is the
same in both runs. The runner's resident memory (VmRSS) is read after the
last request. The cache's pages become resident as tokens arrive (the room
for num_ctx is reserved, not resident), so what differs between the two
runs of one type is the tokens the cache holds:

    (RSS after --long - RSS after --short) / (--long - --short)

is the memory one token held in the context costs, weights and activations
cancelling. RSS here is the anonymous part (RssAnon): the caches and the
activations, not the pages of the mapped model file, which come and go with
the page cache. The runner keeps the memory a pass frees for the next
(kernels' `keep_freed_memory`), and how much of the activations' heap a run
leaves resident varies with how its buffers fell (seen: 50 MiB in one run of
three): each point is measured --repeat times, the least is taken, and all
are printed.

Usage: python3 bench/kv_memory.py [--model PATH] [--ctx 8192] [--repeat 3]
                                  [--short 512] [--long 7680] [--threads 2]
"""
import argparse
import os
import subprocess
import tempfile
import time
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner_speed import ROOT, Llmpm, runner_memory_kib  # noqa: E402


def measure(kv, path, num_ctx, tokens, step, threads):
    """The runner's RSS (KiB) once its context holds `tokens` prompt tokens,
    given `step` new tokens a request (the prompt cache keeps the rest), and
    the tokens the last request's prompt held."""
    os.environ["LLMPM_KV_CACHE_TYPE"] = kv
    with tempfile.TemporaryDirectory(prefix="llmpm-kv-bench") as tmp:
        llm = Llmpm(tmp)
        try:
            llm.create("m", path, num_ctx=num_ctx)
            opts = {"temperature": 0, "num_thread": threads, "num_predict": 1}
            for n in range(step, tokens + 1, step):
                # " the" is one token in most vocabularies.
                _, last = llm.generate({"model": "m", "prompt": "the" + " the" * (n - 1),
                                        "raw": True, "options": opts})
            time.sleep(0.5)
            kib = runner_memory_kib("RssAnon", llm.proc.pid)
            if kib is None:
                raise RuntimeError("no runner process")
            return kib, last["prompt_eval_count"]
        finally:
            llm.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "target" / "models"
                                           / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--short", type=int, default=512)
    ap.add_argument("--long", type=int, default=7680)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "llmpmd", "-p", "llmpm"],
                   cwd=ROOT, check=True)
    path = Path(args.model).resolve()
    rows = {}
    for kv in ("f16", "q8_0", "q4_0"):
        shorts = [measure(kv, path, args.ctx, args.short, args.short, args.threads)
                  for _ in range(args.repeat)]
        longs = [measure(kv, path, args.ctx, args.long, args.short, args.threads)
                 for _ in range(args.repeat)]
        (short, n_short), (long, n_long) = min(shorts), min(longs)
        rows[kv] = (long - short) / (n_long - n_short)
        mib = lambda runs: ", ".join(f"{k / 1024:.1f}" for k, _ in runs)  # noqa: E731
        print(f"{kv:>5}: num_ctx {args.ctx}, RssAnon after {n_short} prompt tokens "
              f"[{mib(shorts)}] MiB, after {n_long} [{mib(longs)}] MiB: "
              f"{rows[kv]:.2f} KiB per token held", flush=True)
    for kv in ("q8_0", "q4_0"):
        print(f"{kv} / f16 per token: {rows[kv] / rows['f16']:.3f}")


if __name__ == "__main__":
    main()
