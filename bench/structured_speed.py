#!/usr/bin/env python3
"""What a JSON schema costs: decode tokens/s of the same chat request on the
real Qwen2.5-Coder-0.5B-Instruct with and without `format` (a schema), and
their ratio (issue 15 asks for at least 0.9).

Usage: python3 bench/structured_speed.py [--model PATH] [--rounds 5]
                                          [--tokens 256] [--bin-dir DIR]

The model defaults to target/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
(tests/fetch-models.sh). llmpmd's release binary is built first (cargo does
nothing when it is current); --bin-dir runs another instead (a debug build,
for a quick look). One daemon serves both sides; rounds
alternate the two requests after a warm-up of each, and each side's figure
is the median over rounds of eval_count / eval_duration (decode only: the
prompt is timed apart). Greedy, so that every round of a side decodes the
same tokens. The prompt asks for the JSON the schema describes, so that both
sides write text of the same kind and length. No timing is asserted.
"""
import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner_speed import ROOT, UnixHTTPConnection  # noqa: E402

QWEN = ROOT / "target" / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

SCHEMA = {
    "type": "object",
    "properties": {
        "books": {
            "type": "array", "minItems": 5, "maxItems": 5,
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "author": {"type": "string"},
                    "year": {"type": "integer", "minimum": 1000, "maximum": 2030},
                    "genre": {"enum": ["fiction", "science", "history", "poetry", "other"]},
                },
                "required": ["title", "author", "year", "genre"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["books"],
    "additionalProperties": False,
}
ASK = ("List 5 famous books as JSON: an object with the key \"books\", an array of "
       "objects with the keys \"title\", \"author\", \"year\" (a number) and \"genre\" "
       "(fiction, science, history, poetry or other). Only the JSON, no code fence.")


class Daemon:
    def __init__(self, tmp, bins):
        self.tmp = Path(tmp)
        self.bins = bins
        self.sock = str(self.tmp / "llmpm.sock")
        (self.tmp / "empty.yaml").write_text("")
        self.env = dict(os.environ, LLMPM_HOME=str(self.tmp / "home"), LLMPM_SOCKET=self.sock,
                        LLMPM_CONFIG=str(self.tmp / "empty.yaml"), LLMPM_LOG="warn",
                        LLMPM_NO_AUTOSTART="1")
        self.env.pop("LLMPM_HOST", None)
        self.log = open(self.tmp / "llmpmd.log", "wb")
        self.proc = subprocess.Popen([str(bins / "llmpmd")], env=dict(self.env, LLMPM_HOST="none"),
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("llmpmd did not start: " + (self.tmp / "llmpmd.log").read_text())
            time.sleep(0.05)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()

    def call(self, method, path, body=None, headers=None):
        c = UnixHTTPConnection(self.sock)
        c.request(method, path, body, headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status not in (200, 201):
            raise RuntimeError(f"{path}: {r.status} {data[:300]!r}")
        return data

    def create(self, name, path):
        """Uploads the GGUF and creates `name` from it (the API's `files` form)."""
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = "sha256:" + h.hexdigest()
        with open(path, "rb") as f:
            self.call("POST", f"/api/blobs/{digest}", f,
                      {"Content-Length": str(path.stat().st_size)})
        self.call("POST", "/api/create", json.dumps(
            {"model": name, "files": {path.name: digest}, "parameters": {"num_ctx": 1024},
             "stream": False}), {"Content-Type": "application/json"})

    def chat(self, body):
        return json.loads(self.call("POST", "/api/chat", json.dumps(body),
                                    {"Content-Type": "application/json"}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(QWEN))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--bin-dir", help="llmpmd from here instead of a release build")
    args = ap.parse_args()
    model = Path(args.model).resolve()
    if not model.is_file():
        sys.exit(f"{model} missing: run tests/fetch-models.sh")
    if args.bin_dir:
        bins = Path(args.bin_dir).resolve()
    else:
        print("== building llmpm (release)", flush=True)
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "llmpmd", "--bins"],
                       cwd=ROOT, check=True)
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        bins = target / "release"

    with tempfile.TemporaryDirectory(prefix="llmpm-structured-bench") as tmp:
        d = Daemon(tmp, bins)
        try:
            d.create("qwen", model)
            opts = {"temperature": 0, "num_predict": args.tokens}
            base = {"model": "qwen", "stream": False, "options": opts,
                    "messages": [{"role": "user", "content": ASK}]}
            sides = {"without schema": base, "with schema": dict(base, format=SCHEMA)}
            speeds = {k: [] for k in sides}
            counts = {}
            first = {}
            for k, body in sides.items():  # warm-up: load, and compile the vocabulary
                first[k] = d.chat(body)["total_duration"] / 1e9
            totals = {k: [] for k in sides}
            for _ in range(args.rounds):
                for k, body in sides.items():
                    r = d.chat(body)
                    speeds[k].append(r["eval_count"] / (r["eval_duration"] / 1e9))
                    totals[k].append(r["total_duration"] / 1e9)
                    counts[k] = r["eval_count"]
                    if k == "with schema" and r["done_reason"] == "stop":
                        json.loads(r["message"]["content"])  # it holds
        finally:
            d.close()

    print(f"\nmodel: {model.name}; binaries: {bins}; {args.rounds} rounds, greedy, "
          f"num_predict {args.tokens}")
    med = {k: statistics.median(v) for k, v in speeds.items()}
    for k in sides:
        spread = ", ".join(f"{s:.1f}" for s in speeds[k])
        print(f"  {k:15} decode {med[k]:7.2f} tokens/s (median; rounds {spread}; "
              f"{counts[k]} tokens)")
    print(f"  ratio with/without: {med['with schema'] / med['without schema']:.3f}")
    w = "with schema"
    print(f"  first request with a schema: {first[w]:.2f} s in all (it compiles the vocabulary "
          f"for the engine), later ones {statistics.median(totals[w]):.2f} s")


if __name__ == "__main__":
    main()
