#!/usr/bin/env python3
"""Parallel requests on one model: aggregate decode tokens/s with 1, 2, 4
and 8 concurrent clients (the daemon's num_parallel set to match), and the
time to first token of a cold load against a warm model.

Usage: python3 bench/parallel_decode.py [--ftype q4_0] [--model PATH]
                                         [--clients 1,2,4,8] [--tokens 64]

The model is the 1B-shaped file of bench/runner_speed.py (generated into
target/bench-models/, never committed) unless --model names a GGUF. Each
client count gets a fresh daemon (num_parallel is a daemon setting,
LLMPM_NUM_PARALLEL). Every client streams a greedy generation of --tokens
tokens from its own short prompt. The aggregate counts the streamed pieces
(one per token) of all clients in the window where every client is
decoding (from the last client's first piece to the first client's last),
divided by the window's length: the steady state, without the staggered
starts and prompts. No timing is asserted; the figure that matters is the
ratio of each aggregate to the one-client figure, measured in the same run.

When llama.cpp's `llama-batched-bench` has been built (bench/build-llamacpp.sh
--bench), its aggregate decode speed for the same parallel counts is printed
beside ours as the reference.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner_speed import LLAMA, Llmpm, UnixHTTPConnection, ensure_built, model_file  # noqa: E402


def stream(sock, body):
    """Streams /api/generate; returns (arrival time of each piece, last line)."""
    c = UnixHTTPConnection(sock)
    c.request("POST", "/api/generate", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"/api/generate: {r.status} {r.read()[:300]!r}")
    pieces = []
    last = None
    for line in r:
        if not line.strip():
            continue
        last = json.loads(line)
        if last.get("response"):
            pieces.append(time.time())
    c.close()
    return pieces, last


def with_daemon(parallel, fn):
    os.environ["LLMPM_NUM_PARALLEL"] = str(parallel)
    with tempfile.TemporaryDirectory(prefix="llmpm-parallel-bench") as tmp:
        llm = Llmpm(tmp)
        try:
            return fn(llm)
        finally:
            llm.close()


def aggregate(llm, name, clients, tokens, threads):
    opts = {"temperature": 0, "num_predict": tokens, "num_thread": threads}
    # Warm the model first, so that the figure is decoding only.
    llm.generate({"model": name, "prompt": "", "options": opts})
    results = [None] * clients

    def client(i):
        results[i] = stream(llm.sock, {"model": name, "raw": True,
                                       "prompt": f"Story {i}: once upon a time",
                                       "options": opts})

    ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    start = max(p[0] for p, _ in results)
    end = min(p[-1] for p, _ in results)
    n = sum(sum(1 for t in p if start < t <= end) for p, _ in results)
    return n / (end - start), n


def ttft(llm, name, threads):
    body = {"model": name, "raw": True, "prompt": "Once upon a time",
            "options": {"temperature": 0, "num_predict": 1, "num_thread": threads}}
    t0 = time.time()
    pieces, last = stream(llm.sock, body)
    cold = pieces[0] - t0
    load = last.get("load_duration", 0) / 1e9
    t0 = time.time()
    pieces, _ = stream(llm.sock, body)
    return cold, pieces[0] - t0, load


def batched_bench(path, clients, tokens, threads):
    exe = LLAMA / "llama-batched-bench"
    if not exe.exists():
        return None
    npl = ",".join(str(c) for c in clients)
    out = subprocess.run([str(exe), "-m", str(path), "-c", str(max(clients) * (tokens + 16)),
                          "-b", "512", "-ub", "512", "-npp", "8", "-ntg", str(tokens),
                          "-npl", npl, "-t", str(threads), "--output-format", "jsonl"],
                         capture_output=True, text=True, check=True).stdout
    speeds = {}
    for line in out.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            speeds[row["pl"]] = row["speed_tg"]
    return speeds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ftype", default="q4_0")
    ap.add_argument("--model", help="a GGUF to use instead of the generated 1B-shaped one")
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    ensure_built()
    path = Path(args.model).resolve() if args.model else model_file(args.ftype)
    clients = [int(c) for c in args.clients.split(",")]
    name = "bench-parallel"

    def setup(llm):
        llm.create(name, path)

    rows = []
    for c in clients:
        def run_one(llm, c=c):
            setup(llm)
            return aggregate(llm, name, c, args.tokens, args.threads)
        speed, n = with_daemon(c, run_one)
        rows.append((c, speed, n))
        print(f"  {c} clients: {speed:.2f} tokens/s aggregate ({n} tokens in the window)",
              flush=True)

    def run_ttft(llm):
        setup(llm)
        return ttft(llm, name, args.threads)
    cold, warm, load = with_daemon(1, run_ttft)
    ref = batched_bench(path, clients, args.tokens, args.threads)

    print(f"\nmodel: {path.name}; threads: {args.threads}; {args.tokens} tokens per client")
    print(f"{'clients':>7} {'llmpm t/s':>10} {'× 1 client':>10} {'llama.cpp t/s':>14} {'ratio':>6}")
    base = rows[0][1]
    for c, speed, _ in rows:
        r = ref.get(c) if ref else None
        print(f"{c:>7} {speed:10.2f} {speed / base:10.2f} "
              f"{(f'{r:.2f}' if r else '-'):>14} {(f'{speed / r:.2f}' if r else '-'):>6}")
    print(f"\ntime to first token: cold {cold:.2f} s (load {load:.2f} s), warm {warm:.3f} s, "
          f"cold / warm {cold / warm:.1f}×")


if __name__ == "__main__":
    main()
