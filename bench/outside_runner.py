#!/usr/bin/env python3
"""Time a warm request spends outside the runner: the client's wall time of a
one-token /api/generate (and a three-message /api/chat) minus the runner's
prompt_eval_duration + eval_duration, as the median of N requests after three
warm-ups. Each build given is run against the same GGUF in turn, in one run,
so two builds compare side by side on a noisy machine.

Usage: python3 bench/outside_runner.py --model target/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
           [--n 20] BINDIR [BINDIR ...]
BINDIR holds llmpmd and llmpm (e.g. target/release, or another checkout's).
No timing is asserted anywhere.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.sock_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.sock_path)


def post(sock, path, body):
    c = UnixConn(sock)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"{path}: HTTP {r.status}: {data[:200]!r}")
    return json.loads(data)


def measure(bindir, model, n):
    with tempfile.TemporaryDirectory(prefix="llmpm-outside") as d:
        home = os.path.join(d, "home")
        os.makedirs(home)
        sock = os.path.join(home, "llmpm.sock")
        cfg = os.path.join(d, "config.yaml")
        open(cfg, "w").close()
        env = {"PATH": os.environ["PATH"], "LLMPM_HOME": home, "LLMPM_SOCKET": sock,
               "LLMPM_CONFIG": cfg, "LLMPM_LOG": "warn", "LLMPM_HOST": "none",
               "LLMPM_NO_AUTOSTART": "1", "NO_COLOR": "1"}
        shutil.copy(model, os.path.join(d, "m.gguf"))
        open(os.path.join(d, "Modelfile"), "w").write("FROM ./m.gguf\nPARAMETER num_ctx 512\n")
        log = open(os.path.join(d, "log"), "w")
        daemon = subprocess.Popen([os.path.join(bindir, "llmpmd")], env=env, stdout=log,
                                  stderr=log, stdin=subprocess.DEVNULL)
        try:
            for _ in range(500):
                try:
                    c = UnixConn(sock)
                    c.request("GET", "/")
                    c.getresponse().read()
                    c.close()
                    break
                except OSError:
                    time.sleep(0.02)
            subprocess.run([os.path.join(bindir, "llmpm"), "create", "m", "-f", "Modelfile"],
                           env=env, cwd=d, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            opts = {"num_predict": 1, "temperature": 0}
            reqs = {
                "generate": ("/api/generate", {"model": "m", "prompt": "Hello there",
                                               "stream": False, "options": opts}),
                "chat3": ("/api/chat", {"model": "m", "stream": False, "options": opts,
                                        "messages": [
                                            {"role": "user", "content": "Hi"},
                                            {"role": "assistant", "content": "Hello"},
                                            {"role": "user", "content": "How are you?"}]}),
            }
            out = {}
            for name, (path, body) in reqs.items():
                for _ in range(3):
                    post(sock, path, body)
                outside, walls = [], []
                for _ in range(n):
                    t = time.perf_counter()
                    j = post(sock, path, body)
                    wall = time.perf_counter() - t
                    inside = (j["prompt_eval_duration"] + j["eval_duration"]) / 1e9
                    outside.append((wall - inside) * 1e3)
                    walls.append(wall * 1e3)
                out[name] = (statistics.median(outside), statistics.median(walls))
            return out
        finally:
            daemon.terminate()
            daemon.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("bindirs", nargs="+")
    args = ap.parse_args()
    print(f"model {os.path.basename(args.model)}; median of {args.n} warm one-token requests")
    print(f"{'build':40} {'request':9} {'outside ms':>10} {'wall ms':>9}")
    for b in map(os.path.abspath, args.bindirs):
        for name, (outside, wall) in measure(b, args.model, args.n).items():
            print(f"{b[-40:]:40} {name:9} {outside:10.2f} {wall:9.2f}", flush=True)


if __name__ == "__main__":
    main()
