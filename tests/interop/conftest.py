"""Interop fixtures: a real llmpmd on a temp home and a free loopback port.

Needs the `ollama` Python client (installed by .ci/run). On a bare machine the
tests skip and say why; with LLMPM_TEST_STRICT=1 (CI) a missing client fails.
"""
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LLMPM_BIN_DIR", ROOT / "target" / "debug"))
STRICT = os.environ.get("LLMPM_TEST_STRICT") == "1"


def need(module):
    try:
        return __import__(module)
    except ImportError:
        if STRICT:
            pytest.fail(f"LLMPM_TEST_STRICT=1 but the Python package `{module}` is missing")
        pytest.skip(f"Python package `{module}` not installed (CI installs it)")


QWEN = ROOT / "target" / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def create_qwen(daemon, num_ctx):
    """The real Qwen2.5-Coder-0.5B-Instruct (from tests/fetch-models.sh)
    created in `daemon` as `qwen` with `num_ctx`; skips without it (fails
    under LLMPM_TEST_STRICT=1)."""
    if not QWEN.is_file():
        msg = f"{QWEN} missing: run tests/fetch-models.sh"
        if STRICT:
            pytest.fail("LLMPM_TEST_STRICT=1 but " + msg)
        pytest.skip(msg)
    ollama = need("ollama")
    client = ollama.Client(host=daemon["url"])
    digest = client.create_blob(QWEN)
    client.create(model="qwen", files={QWEN.name: digest}, parameters={"num_ctx": num_ctx}, stream=False)
    return daemon


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def daemon(request):
    """A started llmpmd. Indirect parameters (a dict) add to its environment."""
    extra_env = getattr(request, "param", None) or {}
    for b in ("llmpmd", "llmpm-gen-gguf"):
        if not (BIN / b).exists():
            pytest.fail(f"{BIN / b} missing: run `cargo build --workspace --bins` first")
    with tempfile.TemporaryDirectory(prefix="llmpm-interop") as tmp:
        tmp = Path(tmp)
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "LLMPM_HOME": str(tmp / "home"),
            "LLMPM_HOST": f"127.0.0.1:{port}",
            "LLMPM_CONFIG": str(tmp / "empty.yaml"),
            **extra_env,
        }
        (tmp / "empty.yaml").write_text("")
        log = open(tmp / "llmpmd.log", "wb")
        proc = subprocess.Popen([str(BIN / "llmpmd")], env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=1) as r:
                    if r.status == 200:
                        break
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, and guarded by LLMPM_API_KEY
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.close()
                raise RuntimeError("llmpmd did not start:\n" + (tmp / "llmpmd.log").read_text())
            time.sleep(0.05)
        gguf = tmp / "tiny.gguf"
        subprocess.run([str(BIN / "llmpm-gen-gguf"), "--out", str(gguf)], check=True)
        try:
            yield {"url": url, "gguf": gguf, "home": tmp / "home"}
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            log.close()
