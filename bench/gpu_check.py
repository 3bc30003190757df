#!/usr/bin/env python3
"""The steps of bench/gpu_check.sh (read its header): greedy parity on the
GPU, speed against llama.cpp CUDA, VRAM against the scheduler's estimate.

Usage: gpu_check.py --bin DIR --tools DIR --llama DIR [--no-gpu]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "llamacpp_greedy.json"
# Parity: tokens identical for this many steps, or a divergence explained
# by the top two logits being closer than GAP (issue 20).
MIN_SAME = 16
GAP = 1e-3
SPEED_FTYPES = ("q4_k_m", "q4_0", "q8_0")


def runner_generate(bin_dir, model, prompt, n, gpu, log):
    """Greedy ids and each step's top-2 logprobs from `llmpmd runner` on
    `model`, with the GPU visible or not; the runner's log lines go to `log`."""
    env = dict(os.environ, LLMPM_KV_CACHE_TYPE="f32", LLMPM_LOG="info", NO_COLOR="1")
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory(prefix="llmpm-gpu-check") as tmp:
        sock = str(Path(tmp) / "runner.sock")
        proc = subprocess.Popen([str(bin_dir / "llmpmd"), "runner", "--model", str(model),
                                 "--socket", sock, "--num-ctx", "2048"],
                                env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.time() + 120
            while not os.path.exists(sock):
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the runner did not start on {model}")
                time.sleep(0.05)
            time.sleep(0.1)
            req = {"op": "completion", "prompt": "", "add_bos": False, "num_predict": n,
                   "num_keep": 0, "shift": False, "context": prompt, "return_context": True,
                   "logprobs": 2,
                   "sampler": {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0,
                               "repeat_penalty": 1.0, "repeat_last_n": 0,
                               "presence_penalty": 0.0, "frequency_penalty": 0.0,
                               "seed": None}}
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
            s.close()
        finally:
            proc.kill()
            proc.wait()
    steps, ids = [], None
    for line in buf.splitlines():
        msg = json.loads(line)
        if "error" in msg:
            raise RuntimeError(f"runner: {msg['error']}")
        for lp in msg.get("logprobs", []):
            top = [t["logprob"] for t in lp.get("top_logprobs", [])]
            steps.append(top[0] - top[1] if len(top) >= 2 else float("inf"))
        if msg.get("done"):
            ids = msg.get("context", [])[len(prompt):]
    if ids is None:
        raise RuntimeError("the runner's answer had no last line")
    return ids, steps


def agree(name, got, want, gaps):
    """Prints and returns whether `got` meets the parity rule against `want`."""
    n = min(len(got), len(want))
    first = next((i for i in range(n) if got[i] != want[i]), None)
    if first is None:
        ok = n >= min(MIN_SAME, len(want))
        print(f"  {name}: {n} tokens identical" + ("" if ok else f" (fewer than {MIN_SAME})"))
        return ok
    gap = gaps[first] if first < len(gaps) else float("inf")
    ok = first >= MIN_SAME or gap < GAP
    print(f"  {name}: first divergence at step {first} (ours {got[first]}, theirs "
          f"{want[first]}), top-2 logit gap there {gap:.2e}: {'explained' if ok else 'FAIL'}")
    return ok


def parity(bin_dir, tools, gpu, logdir):
    fx = json.loads(FIXTURE.read_text())
    g = fx["gen"]
    ok = True
    print("== greedy parity (tests/fixtures/llamacpp_greedy.json)"
          + ("" if gpu else "; --no-gpu: the 'gpu' side is the cuda build's CPU fallback"),
          flush=True)
    with tempfile.TemporaryDirectory(prefix="llmpm-gpu-fixtures") as tmp:
        for case in fx["cases"]:
            ftype = case["ftype"]
            model = Path(tmp) / f"{ftype}.gguf"
            subprocess.run([str(tools / "llmpm-gen-gguf"), "--out", str(model),
                            "--ftype", ftype, "--layers", str(g["layers"]),
                            "--embd", str(g["embd"]), "--heads", str(g["heads"]),
                            "--kv-heads", str(g["kv_heads"]), "--ff", str(g["ff"]),
                            "--vocab", str(g["vocab"]), "--ctx", str(g["ctx"]),
                            # each case has its own seed (picked for clear
                            # margins); `gen`'s is the fallback of older fixtures
                            "--seed", str(case.get("seed", g["seed"]))], check=True)
            want = case["expected"]
            print(f" {ftype}:", flush=True)
            runs = {}
            for side in ("gpu", "cpu"):
                log_path = logdir / f"runner-{ftype}-{side}.log"
                with open(log_path, "wb") as log:
                    runs[side] = runner_generate(bin_dir, model, case["prompt"], len(want),
                                                 side == "gpu", log)
                text = log_path.read_text(errors="replace")
                on_gpu = "runner device: CUDA GPU 0" in text
                if side == "gpu" and gpu and not on_gpu:
                    print(f"  FAIL: the runner did not use the GPU (log {log_path})")
                    ok = False
                if side == "cpu" and on_gpu:
                    print(f"  FAIL: the runner used a GPU with none visible (log {log_path})")
                    ok = False
            ok &= agree("gpu vs llama.cpp", runs["gpu"][0], want, runs["gpu"][1])
            ok &= agree("cpu vs llama.cpp", runs["cpu"][0], want, runs["cpu"][1])
            ok &= agree("gpu vs cpu", runs["gpu"][0], runs["cpu"][0], runs["gpu"][1])
    return ok


def llama_bench_cuda(llama, path):
    r = subprocess.run([str(llama / "bin" / "llama-bench"), "-m", str(path), "-ngl", "99",
                        "-p", "512", "-n", "128", "-r", "2", "-o", "json"],
                       capture_output=True, text=True, check=True)
    pp = tg = None
    for row in json.loads(r.stdout):
        if row["n_prompt"] == 512 and row["n_gen"] == 0:
            pp = row["avg_ts"]
        elif row["n_gen"] == 128 and row["n_prompt"] == 0:
            tg = row["avg_ts"]
    return pp, tg


def runner_vram_mib():
    """GPU memory of the model runner (nvidia-smi), in MiB."""
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                          "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        pid, mib = (x.strip() for x in line.split(","))
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(cmd) > 1 and cmd[0].endswith(b"llmpmd") and cmd[1] == b"runner":
            return float(mib)
    return None


def speed(bin_dir, tools, llama):
    # runner_speed.py's llmpm side and model files, pointed at these builds.
    os.environ["CARGO_TARGET_DIR"] = str(bin_dir.parent)
    os.environ["LLAMA_CPP_DIR"] = str(llama)
    sys.path.insert(0, str(ROOT / "bench"))
    import runner_speed as rs  # noqa: E402 (after the environment it reads)
    # llmpm and llmpm-gen-gguf may come from another build than llmpmd's:
    # runner_speed.py finds all three in one folder.
    rel = Path(tempfile.mkdtemp(prefix="llmpm-gpu-bins"))
    (rel / "llmpmd").symlink_to(bin_dir / "llmpmd")
    for b in ("llmpm", "llmpm-gen-gguf"):
        (rel / b).symlink_to(tools / b)
    rs.REL = rel
    print("== speed: llmpm (GPU, through the API) / llama.cpp CUDA (llama-bench -ngl 99)")
    print(f"{'file':8} {'metric':8} {'llmpm':>10} {'llama.cpp':>10} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="llmpm-gpu-bench") as tmp:
        llm = rs.Llmpm(tmp)
        try:
            for i, ftype in enumerate(SPEED_FTYPES):
                path = rs.model_file(ftype)
                pp, tg = llama_bench_cuda(llama, path)
                name = f"gpu-{i}"
                llm.create(name, path)
                ours = rs.llmpm_bench(llm, name, os.cpu_count(), 2)
                for key, theirs in (("pp512", pp), ("tg128", tg)):
                    print(f"{ftype:8} {key:8} {ours[key]:10.1f} {theirs:10.1f} "
                          f"{ours[key] / theirs:7.2f}", flush=True)
                vram = runner_vram_mib()
                c = rs.UnixHTTPConnection(llm.sock)
                c.request("GET", "/api/ps")
                ps = json.loads(c.getresponse().read())["models"]
                c.close()
                est = ps[0]["size"] / 2**20 if ps else None
                shown = ps[0]["size_vram"] / 2**20 if ps else None
                print(f"{ftype:8} vram     runner {vram} MiB; scheduler estimate "
                      f"{est:.0f} MiB; /api/ps size_vram {shown:.0f} MiB", flush=True)
                llm.generate({"model": name, "prompt": "", "keep_alive": 0})
        finally:
            llm.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", type=Path, required=True)
    ap.add_argument("--tools", type=Path, required=True)
    ap.add_argument("--llama", type=Path, required=True)
    ap.add_argument("--no-gpu", action="store_true")
    args = ap.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="llmpm-gpu-logs") as logs:
        ok = parity(args.bin.resolve(), args.tools.resolve(), not args.no_gpu, Path(logs))
        if not ok:
            for f in sorted(Path(logs).iterdir()):
                print(f"-- {f.name}\n{f.read_text(errors='replace')[-3000:]}")
    if not args.no_gpu:
        speed(args.bin.resolve(), args.tools.resolve(), args.llama.resolve())
    print(f"== gpu_check: parity {'ok' if ok else 'FAILED'}; {time.time() - started:.0f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
