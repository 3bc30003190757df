#!/usr/bin/env python3
"""Idle RSS of llmpmd and latency of /api/tags over the unix socket with N models.

Usage: cargo build --release --workspace --bins && python3 bench/api_latency.py [--models 100] [--requests 500]

Starts a real llmpmd on a temp home (TCP off), creates N models from one tiny
GGUF with distinct system prompts (so each has its own manifest), then times
GET /api/tags over a fresh unix-socket connection per request. No timing is
asserted anywhere; this prints figures for the closing notes.
"""
import argparse
import hashlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        self.sock = s


def call(sock, method, path, body=None):
    c = UnixHTTPConnection(sock)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--bin", default=None, help="directory with llmpmd (default target/release, else target/debug)")
    a = ap.parse_args()
    bindir = Path(a.bin) if a.bin else (ROOT / "target/release" if (ROOT / "target/release/llmpmd").exists() else ROOT / "target/debug")
    with tempfile.TemporaryDirectory(prefix="llmpm-bench") as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        env = {"PATH": os.environ.get("PATH", ""), "LLMPM_HOME": str(home), "LLMPM_HOST": "none",
               "LLMPM_CONFIG": str(tmp / "empty.yaml"), "LLMPM_LOG": "warn"}
        (tmp / "empty.yaml").write_text("")
        proc = subprocess.Popen([str(bindir / "llmpmd")], env=env)
        sock = str(home / "llmpm.sock")
        deadline = time.time() + 20
        while True:
            try:
                if call(sock, "GET", "/")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("llmpmd did not start")
            time.sleep(0.05)
        try:
            time.sleep(1.0)
            idle = rss_kib(proc.pid)
            gguf = tmp / "tiny.gguf"
            subprocess.run([str(bindir / "llmpm-gen-gguf"), "--out", str(gguf)], check=True)
            data = gguf.read_bytes()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            st, _ = call(sock, "POST", f"/api/blobs/{digest}", data)
            assert st in (200, 201), st
            t0 = time.perf_counter()
            for i in range(a.models):
                body = json.dumps({"model": f"bench/m{i}:v1", "files": {"tiny.gguf": digest},
                                   "system": f"system prompt {i}", "stream": False})
                st, out = call(sock, "POST", "/api/create", body)
                assert st == 200, out
            create_s = time.perf_counter() - t0
            for _ in range(20):  # warm up
                call(sock, "GET", "/api/tags")
            lat = []
            for _ in range(a.requests):
                t = time.perf_counter()
                st, out = call(sock, "GET", "/api/tags")
                lat.append((time.perf_counter() - t) * 1000)
                assert st == 200
            n = len(json.loads(out)["models"])
            lat.sort()
            q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
            after = rss_kib(proc.pid)
            print(f"binaries: {bindir}")
            print(f"idle RSS after start: {idle / 1024:.1f} MiB")
            print(f"created {a.models} models in {create_s:.2f} s ({create_s / a.models * 1000:.1f} ms each)")
            print(f"/api/tags over unix socket, {n} models, {a.requests} requests: "
                  f"p50 {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms, p99 {q(0.99):.2f} ms, mean {statistics.mean(lat):.2f} ms")
            print(f"RSS after the run: {after / 1024:.1f} MiB")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
