#!/usr/bin/env python3
"""Multi-turn chat latency: time to first token of each turn of an 8-turn
chat (a ~1,000-token system prompt, ~100-token user turns, 64-token
answers) against llmpmd and against llama.cpp's llama-server (its prompt
cache on, as by default), one after the other in one run, same GGUF, same
threads; and a second scenario: 4 clients at once with the same system
prompt and different questions (num_parallel 4 / -np 4), reporting the
prompt tokens each side evaluated in total (the rest came from a cache).

Usage: python3 bench/chat_turns.py [--model PATH]... [--threads 2]
                                   [--turns 8] [--skip-parallel]

Models: the 1B-shaped Q4_K_M file of bench/runner_speed.py (generated into
target/bench-models/) and, when present, the real Qwen2.5-Coder-0.5B of
tests/fetch-models.sh; or the --model paths given. llama-server comes from
bench/build-llamacpp.sh --bench (LLAMA_CPP_DIR). Both sides speak
/v1/chat/completions, streamed, greedy; each side's conversation carries
its own answers, as a client's would. No timing is asserted: the ratios
are the result (machines are shared and noisy).
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner_speed import LLAMA, REL, ROOT, UnixHTTPConnection, model_file  # noqa: E402

WORDS = ("river stone lantern copper meadow signal harbor quiet ember cedar orbit "
         "velvet canyon timber prism marble falcon glacier thistle beacon").split()


def system_prompt():
    """About 1,000 tokens of rules."""
    rules = [f"Rule {i}: when the user asks about {WORDS[i % 20]} or {WORDS[(i * 7) % 20]}, "
             f"answer in plain words and mention the {WORDS[(i * 3) % 20]} first."
             for i in range(45)]
    return "You are a careful assistant.\n" + "\n".join(rules)


def user_turn(k, tag=""):
    """About 100 tokens."""
    words = " ".join(WORDS[(k * 5 + i) % 20] for i in range(60))
    return f"Question {tag}{k}: tell me how these relate: {words}. Keep it short."


class Side:
    """One server: post a streamed chat and time its first token."""

    def connection(self):
        raise NotImplementedError

    def chat(self, messages, max_tokens):
        body = {"model": self.model, "messages": messages, "stream": True, "temperature": 0,
                "max_tokens": max_tokens, "stream_options": {"include_usage": True}}
        c = self.connection()
        t0 = time.time()
        c.request("POST", "/v1/chat/completions", json.dumps(body),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"{self.name}: {r.status} {r.read()[:300]!r}")
        first, text, usage, timings = None, [], None, None
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
            for ch in chunk.get("choices", []):
                piece = (ch.get("delta") or {}).get("content") or ""
                if piece and first is None:
                    first = time.time() - t0
                text.append(piece)
        c.close()
        return first, "".join(text), evaluated(usage, timings)


def evaluated(usage, timings):
    """Prompt tokens evaluated (not taken from a cache), as the server says."""
    if timings and "prompt_n" in timings:
        return timings["prompt_n"]
    if usage:
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        return usage.get("prompt_tokens", 0) - cached
    return None


class Llmpmd(Side):
    name = "llmpm"

    def __init__(self, tmp, path, threads, parallel, num_ctx):
        self.tmp = Path(tmp)
        self.sock = str(self.tmp / "llmpm.sock")
        (self.tmp / "empty.yaml").write_text("")
        env = dict(os.environ, LLMPM_HOME=str(self.tmp / "home"), LLMPM_SOCKET=self.sock,
                   LLMPM_CONFIG=str(self.tmp / "empty.yaml"), LLMPM_LOG="warn",
                   LLMPM_NO_AUTOSTART="1", LLMPM_NUM_PARALLEL=str(parallel))
        env.pop("LLMPM_HOST", None)
        self.log = open(self.tmp / "llmpmd.log", "wb")
        self.proc = subprocess.Popen([str(REL / "llmpmd")], env=dict(env, LLMPM_HOST="none"),
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("llmpmd did not start")
            time.sleep(0.05)
        mf = self.tmp / "Modelfile"
        mf.write_text(f"FROM {path}\nPARAMETER num_ctx {num_ctx}\nPARAMETER num_thread {threads}\n")
        self.model = "bench-chat"
        subprocess.run([str(REL / "llmpm"), "create", self.model, "-f", str(mf)], env=env,
                       check=True, stdout=subprocess.DEVNULL)

    def connection(self):
        return UnixHTTPConnection(self.sock)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class LlamaServer(Side):
    name = "llama-server"

    def __init__(self, tmp, path, threads, parallel, num_ctx):
        exe = LLAMA / "llama-server"
        if not exe.exists():
            raise SystemExit(f"{exe} is missing: run bench/build-llamacpp.sh --bench")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.model = "bench-chat"
        self.log = open(Path(tmp) / "llama-server.log", "wb")
        # -c is shared by the slots: each gets num_ctx.
        self.proc = subprocess.Popen(
            [str(exe), "-m", str(path), "-c", str(num_ctx * parallel), "-np", str(parallel),
             "-t", str(threads), "-tb", str(threads), "--port", str(self.port),
             "--host", "127.0.0.1", "-b", "512", "-ub", "512", "--jinja"],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 120
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("llama-server did not start")
            time.sleep(0.2)

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def conversation(side, turns, answer_tokens):
    """Plays the chat; returns (TTFT, evaluated prompt tokens) per turn."""
    messages = [{"role": "system", "content": system_prompt()}]
    out = []
    for k in range(turns):
        messages.append({"role": "user", "content": user_turn(k)})
        first, text, n = side.chat(messages, answer_tokens)
        messages.append({"role": "assistant", "content": text})
        out.append((first, n))
    return out


def parallel_clients(side, clients, answer_tokens):
    """`clients` chats at once, same system prompt; returns (TTFTs, evaluated, wall)."""
    results = [None] * clients

    def one(i):
        msgs = [{"role": "system", "content": system_prompt()},
                {"role": "user", "content": user_turn(i, tag="p")}]
        results[i] = side.chat(msgs, answer_tokens)

    t0 = time.time()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.time() - t0
    ns = [r[2] for r in results]
    return [r[0] for r in results], (sum(ns) if None not in ns else None), wall


def with_side(cls, path, threads, parallel, num_ctx, fn):
    with tempfile.TemporaryDirectory(prefix="llmpm-chat-bench") as tmp:
        side = cls(tmp, path, threads, parallel, num_ctx)
        try:
            # Load the model first: the turns measure prompts, not loading.
            side.chat([{"role": "user", "content": "hi"}], 1)
            return fn(side)
        finally:
            side.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", help="GGUF paths (default: 1B Q4_K_M + Qwen)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--answer", type=int, default=64)
    ap.add_argument("--num-ctx", type=int, default=8192)
    ap.add_argument("--skip-parallel", action="store_true")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "llmpmd", "-p", "llmpm",
                    "--bins"], cwd=ROOT, check=True)
    paths = [Path(p).resolve() for p in args.model or []]
    if not paths:
        paths = [model_file("q4_k_m")]
        qwen = ROOT / "target" / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        if qwen.exists():
            paths.append(qwen)
    for path in paths:
        print(f"\n== {path.name}: {args.turns} turns, {args.answer}-token answers, "
              f"{args.threads} threads, num_ctx {args.num_ctx}", flush=True)
        rows = {}
        for cls in (Llmpmd, LlamaServer):
            rows[cls.name] = with_side(cls, path, args.threads, 1, args.num_ctx,
                                       lambda s: conversation(s, args.turns, args.answer))
        ours, ref = rows["llmpm"], rows["llama-server"]
        print(f"{'turn':>4} {'llmpm TTFT s':>13} {'evaluated':>9} {'llama-server s':>15} "
              f"{'evaluated':>9} {'ratio':>6}")
        for k, ((a, na), (b, nb)) in enumerate(zip(ours, ref), 1):
            print(f"{k:>4} {a:13.3f} {str(na):>9} {b:15.3f} {str(nb):>9} {a / b:6.2f}")
        print(f"turn {args.turns} / llama-server's: {ours[-1][0] / ref[-1][0]:.2f}; "
              f"turn {args.turns} / our turn 2: {ours[-1][0] / ours[1][0]:.2f}")
        if args.skip_parallel:
            continue
        print(f"-- 4 clients at once, one system prompt (num_parallel 4)", flush=True)
        for cls in (Llmpmd, LlamaServer):
            ttfts, n, wall = with_side(cls, path, args.threads, 4, args.num_ctx,
                                       lambda s: parallel_clients(s, 4, args.answer))
            print(f"{cls.name:>13}: prompt tokens evaluated {n}, TTFT "
                  f"{', '.join(f'{t:.2f}' for t in ttfts)} s, all done in {wall:.2f} s")


if __name__ == "__main__":
    main()
