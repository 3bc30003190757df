#!/usr/bin/env python3
"""Runner speed: llmpm (through its API, streaming) against llama.cpp's
`llama-bench` on the same GGUF files, in one run, same thread count.

Usage: python3 bench/runner_speed.py [--ftypes q4_0,q8_0,q4_k_m] [--models a.gguf,...]
                                     [--threads N] [--rounds 2] [--depth 0]

--depth N measures pp512 and tg128 after N tokens already in the context
(llama-bench -d N; llmpm: a prompt of N tokens evaluated first, which the
prompt cache keeps, so each measured request evaluates only its own 512
prompt tokens or 128 generated ones at that depth).

--models adds GGUF files as they are (a real model, e.g. the Gemma 3 270M
file tests/fetch-models.sh puts in target/models/); `--ftypes ''` benches
only those.

The files are Llama-3.2-1B-shaped (hidden 2048, 16 layers, vocabulary 128256,
GQA 32/8) with deterministic random weights, written by `llmpm-gen-gguf
--preset 1b` into target/bench-models/ (never committed). The types it does
not write (q4_k_m, Ollama's default, and any other `llama-quantize` type) are
quantized by llama.cpp's `llama-quantize` from its f16 file. llama.cpp is
built by bench/build-llamacpp.sh into target/llama.cpp if missing; llmpm's
release binaries are built if missing.

Where things are (environment): CARGO_TARGET_DIR (llmpm's release binaries
in its release/, default target/), LLAMA_CPP_DIR (default target/llama.cpp,
e.g. another checkout's build), LLMPM_BENCH_MODELS (default
target/bench-models).

Reported per file, each side measured the same way where it can be:
  pp512   prompt processing tokens/s (512-token prompt)
  tg128   decode tokens/s (128 tokens)
  ttft    time to first token of a warm model, 512-token prompt (llmpm: the
          client's clock to the first streamed piece; llama.cpp: pp512 time
          plus one decode step, from llama-bench's own figures)
  load    in-process load of a file already in the page cache. llmpm: the
          runner's load_duration of a cold request after an unload; llama.cpp:
          `llmpm-greedy`'s model load and context creation, with llama.cpp's
          default weight repacking (the configuration llama-bench measured)
  cold    time to the first token of a cold start, process start included.
          llmpm: the client's clock for a one-token request after an unload;
          llama.cpp: wall time of the `llmpm-greedy` process evaluating one
          token (repacking as above)
Printed beside them, not compared: llmpm's load right after `create` (the
blob freshly written) and llama.cpp's load without repacking (mapping
only).
  rss     peak RSS of the process that held the model through the pp512 and
          tg128 runs (llmpm: the runner; llama.cpp: llama-bench itself)
No timing is asserted anywhere; ratios are llmpm / llama.cpp (higher is
better for tokens/s, lower for time and memory).
"""
import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
REL = TARGET / "release"
LLAMA_DIR = Path(os.environ.get("LLAMA_CPP_DIR", ROOT / "target" / "llama.cpp"))
LLAMA = LLAMA_DIR / "bin"
MODELS = Path(os.environ.get("LLMPM_BENCH_MODELS", ROOT / "target" / "bench-models"))
# What llmpm-gen-gguf writes itself; other types go through llama-quantize.
GEN_FTYPES = ("f32", "f16", "q8_0", "q4_0")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=600):
        super().__init__("localhost", timeout=timeout)
        self.sock_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.sock_path)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_built():
    if not all((REL / b).exists() for b in ("llmpmd", "llmpm")):
        print("== building llmpm (release)", flush=True)
        run(["cargo", "build", "--release", "--quiet", "-p", "llmpmd", "-p", "llmpm", "--bins"],
            cwd=ROOT)
    greedy = LLAMA / "llmpm-greedy"
    stale = greedy.exists() and greedy.stat().st_mtime < (
        ROOT / "bench" / "llamacpp" / "greedy.cpp").stat().st_mtime
    if stale or not all((LLAMA / b).exists() for b in ("llama-bench", "llama-quantize",
                                                        "llmpm-greedy")):
        print("== building llama.cpp", flush=True)
        run([str(ROOT / "bench" / "build-llamacpp.sh"), "--bench"],
            env=dict(os.environ, LLAMA_CPP_DIR=str(LLAMA_DIR)))


def model_file(ftype):
    MODELS.mkdir(parents=True, exist_ok=True)
    path = MODELS / f"llama-1b-shape-{ftype}.gguf"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        if ftype in GEN_FTYPES:
            # The generator only when a file must be made (it is a test crate's binary).
            if not (REL / "llmpm-gen-gguf").exists():
                run(["cargo", "build", "--release", "--quiet", "-p", "llmpm-tests", "--bins"],
                    cwd=ROOT)
            print(f"== generating {path.name}", flush=True)
            run([str(REL / "llmpm-gen-gguf"), "--out", str(tmp), "--preset", "1b",
                 "--ftype", ftype])
        else:
            src = model_file("f16")
            print(f"== quantizing {src.name} to {ftype}", flush=True)
            run([str(LLAMA / "llama-quantize"), str(src), str(tmp), ftype.upper()],
                stdout=subprocess.DEVNULL)
        tmp.rename(path)
    return path


def llama_bench(path, threads, rounds, depth=0):
    r = run(["/usr/bin/time", "-f", "%M", str(LLAMA / "llama-bench"), "-m", str(path),
             "-p", "512", "-n", "128", "-t", str(threads), "-r", str(rounds), "-o", "json",
             "-d", str(depth)],
            capture_output=True, text=True)
    out = r.stdout
    rss_kib = int(r.stderr.strip().splitlines()[-1])
    pp = tg = None
    for row in json.loads(out):
        if row["n_prompt"] == 512 and row["n_gen"] == 0:
            pp = row["avg_ts"]
        elif row["n_gen"] == 128 and row["n_prompt"] == 0:
            tg = row["avg_ts"]
    # Load: one token with the same library, repacking as llama-bench did;
    # the best of three (the file is in the page cache for each).
    def greedy(repack):
        t0 = time.time()
        r = subprocess.run([str(LLAMA / "llmpm-greedy"), str(path), "1", "1", str(threads)],
                           capture_output=True, text=True, check=True,
                           env=dict(os.environ, LLMPM_GREEDY_REPACK=repack))
        wall = time.time() - t0
        ms = float(re.search(r"load_ms ([0-9.]+)", r.stderr).group(1))
        return ms / 1000, wall
    runs = [greedy("1") for _ in range(3)]
    load, cold = min(r[0] for r in runs), min(r[1] for r in runs)
    load_mmap = min(greedy("0")[0] for _ in range(3))
    return {"pp512": pp, "tg128": tg, "ttft": 512 / pp + 1 / tg, "load": load, "cold": cold,
            "load_mmap": load_mmap, "rss_mib": rss_kib / 1024}


class Llmpm:
    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.sock = str(self.tmp / "llmpm.sock")
        (self.tmp / "empty.yaml").write_text("")
        self.env = dict(os.environ, LLMPM_HOME=str(self.tmp / "home"), LLMPM_SOCKET=self.sock,
                        LLMPM_CONFIG=str(self.tmp / "empty.yaml"), LLMPM_LOG="warn",
                        LLMPM_NO_AUTOSTART="1")
        self.env.pop("LLMPM_HOST", None)
        self.log = open(self.tmp / "llmpmd.log", "wb")
        # The daemon on the unix socket only; the CLI finds it there.
        self.proc = subprocess.Popen([str(REL / "llmpmd")], env=dict(self.env, LLMPM_HOST="none"),
                                     stdout=self.log,
                                     stderr=self.log)
        deadline = time.time() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("llmpmd did not start: " + (self.tmp / "llmpmd.log").read_text())
            time.sleep(0.05)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()

    def create(self, name, path, num_ctx=1024):
        mf = self.tmp / f"{name}.Modelfile"
        mf.write_text(f"FROM {path}\nPARAMETER num_ctx {num_ctx}\n")
        run([str(REL / "llmpm"), "create", name, "-f", str(mf)], env=self.env,
            stdout=subprocess.DEVNULL)

    def generate(self, body):
        """Streams /api/generate; returns (seconds to first piece, last line)."""
        c = UnixHTTPConnection(self.sock)
        t0 = time.time()
        c.request("POST", "/api/generate", json.dumps(body),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"/api/generate: {r.status} {r.read()[:300]!r}")
        first = None
        last = None
        for line in r:
            if not line.strip():
                continue
            last = json.loads(line)
            if first is None and (last.get("response") or last.get("done")):
                first = time.time() - t0
        c.close()
        return first, last

    def runner_rss_mib(self):
        """Peak RSS (VmHWM) of the running model runner."""
        kib = runner_memory_kib("VmHWM", self.proc.pid)
        return kib / 1024 if kib is not None else None


def runner_memory_kib(field, daemon_pid):
    """A memory field of the model runner's /proc status (VmHWM, VmRSS), in
    KiB: the runner child of `daemon_pid` (other daemons' runners, such as a
    test suite's, may be running beside it)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if len(cmd) > 1 and cmd[0].endswith(b"llmpmd") and cmd[1] == b"runner":
                status = Path(f"/proc/{pid}/status").read_text()
                if int(re.search(r"PPid:\s+(\d+)", status).group(1)) != daemon_pid:
                    continue
                return int(re.search(field + r":\s+(\d+)", status).group(1))
        except (OSError, AttributeError):
            continue
    return None


def llmpm_bench(llm, name, threads, rounds, depth=0):
    opts = {"temperature": 0, "num_thread": threads}
    # The first load after create (the blob just written), empty prompt.
    _, last = llm.generate({"model": name, "prompt": "", "options": opts})
    load_first = last.get("load_duration", 0) / 1e9
    # Then cold starts with the file in the page cache, as llama.cpp's:
    # unload, one token; the best of three.
    load = cold = None
    for _ in range(3):
        llm.generate({"model": name, "prompt": "", "keep_alive": 0})
        first, last = llm.generate({"model": name, "prompt": "Once", "raw": True,
                                    "options": dict(opts, num_predict=1)})
        secs = last.get("load_duration", 0) / 1e9
        load = secs if load is None else min(load, secs)
        cold = first if cold is None else min(cold, first)
    pp = []
    ttft = []
    # " the" is one token in the generated vocabulary (and most others).
    # A context `depth` tokens deep first: the prompt cache keeps it, and
    # each request below shares it and evaluates only what follows.
    base = "the" + " the" * (depth - 1) if depth else ""
    if depth:
        llm.generate({"model": name, "prompt": base, "raw": True,
                      "options": dict(opts, num_predict=1)})
    evaluated = lambda last: last["prompt_eval_count"] - last.get("prompt_cache_count", 0)
    for r in range(rounds):
        # Each round's prompt differs from the last after the base (a digit
        # is one byte token), so it is evaluated, not found in the cache:
        # with BOS, 512 tokens.
        prompt = base + f" {r % 10}" + " the" * 509
        first, last = llm.generate({"model": name, "prompt": prompt, "raw": True,
                                    "options": dict(opts, num_predict=1)})
        pp.append(evaluated(last) / (last["prompt_eval_duration"] / 1e9))
        ttft.append(first)
    n_prompt = evaluated(last)
    tg = []
    for r in range(rounds):
        _, last = llm.generate({"model": name, "prompt": base + f" {r % 10} Once", "raw": True,
                                "options": dict(opts, num_predict=128)})
        tg.append(last["eval_count"] / (last["eval_duration"] / 1e9))
    return {"pp512": sum(pp) / len(pp), "tg128": sum(tg) / len(tg), "ttft": min(ttft),
            "load": load, "cold": cold, "load_first": load_first,
            "rss_mib": llm.runner_rss_mib(), "n_prompt": n_prompt,
            "n_gen": last["eval_count"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ftypes", default="q4_0,q8_0")
    ap.add_argument("--models", default="", help="more GGUF files, comma-separated")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--depth", type=int, default=0, help="tokens already in the context")
    args = ap.parse_args()
    ensure_built()
    rows = []
    with tempfile.TemporaryDirectory(prefix="llmpm-runner-bench") as tmp:
        llm = Llmpm(tmp)
        try:
            files = [(f, model_file(f)) for f in args.ftypes.split(",") if f]
            files += [(Path(m).stem, Path(m).resolve()) for m in args.models.split(",") if m]
            for i, (ftype, path) in enumerate(files):
                print(f"== {path.name}: llama.cpp", flush=True)
                ref = llama_bench(path, args.threads, args.rounds, args.depth)
                print(f"== {path.name}: llmpm", flush=True)
                name = f"bench-{i}"
                llm.create(name, path, num_ctx=max(1024, args.depth + 1024))
                ours = llmpm_bench(llm, name, args.threads, args.rounds, args.depth)
                # Unload before the next file, so memory figures stay apart.
                llm.generate({"model": name, "prompt": "", "keep_alive": 0})
                if not rows:
                    print(f"\nthreads: {args.threads}; depth {args.depth}; "
                          f"llmpm prompt tokens {ours['n_prompt']}, "
                          f"decode tokens {ours['n_gen']}")
                    print(f"{'file':8} {'metric':12} {'llmpm':>10} {'llama.cpp':>10} {'ratio':>7}")
                rows.append((ftype, ours, ref))
                print_rows(ftype, ours, ref)
        finally:
            llm.close()


def print_rows(ftype, ours, ref):
    for key, unit in (("pp512", "t/s"), ("tg128", "t/s"), ("ttft", "s"), ("load", "s"),
                      ("cold", "s"), ("rss_mib", "MiB")):
        a, b = ours[key], ref[key]
        ratio = f"{a / b:.2f}" if a and b else "-"
        fa = f"{a:.2f}" if a is not None else "-"
        print(f"{ftype:8} {key + ' ' + unit:12} {fa:>10} {b:10.2f} {ratio:>7}", flush=True)
    print(f"{ftype:8} (llmpm load right after create {ours['load_first']:.2f} s; "
          f"llama.cpp load without repacking {ref['load_mmap']:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
