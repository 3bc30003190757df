#!/usr/bin/env python3
"""Memory per token of context with each KV cache type: runners of the real
Qwen2.5-Coder-0.5B (or --model) for LLMPM_KV_CACHE_TYPE f16, q8_0 and q4_0,
each at two context sizes (--small, --large num_ctx), one after the other.
Each answers the same prompt of --tokens tokens; its resident memory (VmRSS)
is read after that. What differs between the two runs of one type is only
the context the cache holds room for, so

    (RSS at --large - RSS at --small) / (--large - --small)

is the memory one token of context costs, activations and weights cancelling.

Usage: python3 bench/kv_memory.py [--model PATH] [--tokens 1024]
                                  [--small 2048] [--large 8192] [--threads 2]
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


def measure(kv, path, num_ctx, tokens, threads):
    """The runner's RSS (KiB) after a prompt of `tokens` at `num_ctx`."""
    os.environ["LLMPM_KV_CACHE_TYPE"] = kv
    with tempfile.TemporaryDirectory(prefix="llmpm-kv-bench") as tmp:
        llm = Llmpm(tmp)
        try:
            llm.create("m", path, num_ctx=num_ctx)
            opts = {"temperature": 0, "num_thread": threads, "num_predict": 1}
            # " the" is one token in most vocabularies.
            _, last = llm.generate({"model": "m", "prompt": "the" + " the" * (tokens - 1),
                                    "raw": True, "options": opts})
            time.sleep(0.5)
            kib = runner_memory_kib("VmRSS", llm.proc.pid)
            if kib is None:
                raise RuntimeError("no runner process")
            return kib, last["prompt_eval_count"]
        finally:
            llm.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "target" / "models"
                                           / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--small", type=int, default=2048)
    ap.add_argument("--large", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "llmpmd", "-p", "llmpm"],
                   cwd=ROOT, check=True)
    path = Path(args.model).resolve()
    rows = {}
    for kv in ("f16", "q8_0", "q4_0"):
        small, n = measure(kv, path, args.small, args.tokens, args.threads)
        large, _ = measure(kv, path, args.large, args.tokens, args.threads)
        rows[kv] = (large - small) / (args.large - args.small)
        print(f"{kv:>5}: RSS after {n} prompt tokens {small / 1024:.1f} MiB at num_ctx "
              f"{args.small}, {large / 1024:.1f} MiB at {args.large}: "
              f"{rows[kv]:.2f} KiB per token of context", flush=True)
    for kv in ("q8_0", "q4_0"):
        print(f"{kv} / f16 per token: {rows[kv] / rows['f16']:.3f}")


if __name__ == "__main__":
    main()
