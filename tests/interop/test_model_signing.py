"""Interop with the OpenSSF reference implementation, PyPI `model-signing`.

`llmpm sign` then `llmpm export` writes the model's files (manifest.json and
<media type>/sha256-<hex>); `model-signing verify key` checks llmpm's bundle
over them, and a bundle `model-signing sign key` makes over the same files
verifies with `llmpm verify --signatures --bundle`. Keys: P-256 (the only
family model-signing 1.1 takes; llmpm's Ed25519 bundles are llmpm-only).
"""
import os
import shutil
import subprocess
import sys

from conftest import BIN, need


def llmpm(daemon, tmp_path, *args, ok=True):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LLMPM_HOST": daemon["url"],
        "LLMPM_NO_AUTOSTART": "1",
        "LLMPM_CONFIG": str(tmp_path / "none.yaml"),
        "NO_COLOR": "1",
    }
    (tmp_path / "none.yaml").write_text("")
    r = subprocess.run([str(BIN / "llmpm"), *args], env=env, cwd=tmp_path, capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, f"llmpm {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def model_signing(*args):
    return subprocess.run([sys.executable, "-m", "model_signing", *args], capture_output=True, text=True)


def signed_model(daemon, tmp_path):
    (tmp_path / "Modelfile").write_text(f"FROM {daemon['gguf']}\nSYSTEM You are terse.\n")
    llmpm(daemon, tmp_path, "create", "m", "-f", "Modelfile")
    llmpm(daemon, tmp_path, "keygen", "--out", "k")
    llmpm(daemon, tmp_path, "sign", "m", "--key", "k.key", "--bundle", "llmpm.sig")
    llmpm(daemon, tmp_path, "export", "m", "exp")


def test_model_signing_verifies_what_llmpm_signs(daemon, tmp_path):
    need("model_signing")
    signed_model(daemon, tmp_path)
    names = sorted(str(p.relative_to(tmp_path / "exp")) for p in (tmp_path / "exp").rglob("*") if p.is_file())
    assert "manifest.json" in names
    assert any(n.startswith("application/vnd.ollama.image.model/sha256-") for n in names), names
    r = model_signing("verify", "key", str(tmp_path / "exp"), "--signature", str(tmp_path / "llmpm.sig"),
                      "--public_key", str(tmp_path / "k.pub"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verification succeeded" in r.stdout
    # The check bites: one file changed, and model-signing refuses.
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "exp", bad)
    sysfile = next((bad / "application" / "vnd.ollama.image.system").iterdir())
    sysfile.write_text("You are evil.")
    r = model_signing("verify", "key", str(bad), "--signature", str(tmp_path / "llmpm.sig"),
                      "--public_key", str(tmp_path / "k.pub"))
    assert r.returncode != 0 and "mismatch" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr


def test_llmpm_verifies_what_model_signing_signs(daemon, tmp_path):
    need("model_signing")
    signed_model(daemon, tmp_path)
    r = model_signing("sign", "key", str(tmp_path / "exp"), "--private_key", str(tmp_path / "k.key"),
                      "--signature", str(tmp_path / "py.sig"))
    assert r.returncode == 0, r.stdout + r.stderr
    r = llmpm(daemon, tmp_path, "verify", "--signatures", "m", "--bundle", "py.sig", "--key", "k.pub")
    assert "signed by key" in r.stdout, r.stdout
    # model-signing over a directory with one more file: llmpm names it and refuses.
    extra = tmp_path / "extra"
    shutil.copytree(tmp_path / "exp", extra)
    (extra / "README.md").write_text("not part of the model")
    r = model_signing("sign", "key", str(extra), "--private_key", str(tmp_path / "k.key"),
                      "--signature", str(tmp_path / "extra.sig"))
    assert r.returncode == 0, r.stdout + r.stderr
    r = llmpm(daemon, tmp_path, "verify", "--signatures", "m", "--bundle", "extra.sig", "--key", "k.pub", ok=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "`README.md` is signed but not in the model" in r.stdout, r.stdout


def test_a_key_from_python_cryptography_signs_with_llmpm(daemon, tmp_path):
    need("model_signing")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "py.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    (tmp_path / "py.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "Modelfile").write_text(f"FROM {daemon['gguf']}\n")
    llmpm(daemon, tmp_path, "create", "m", "-f", "Modelfile")
    llmpm(daemon, tmp_path, "sign", "m", "--key", "py.key", "--bundle", "m.sig")
    llmpm(daemon, tmp_path, "export", "m", "exp")
    r = model_signing("verify", "key", str(tmp_path / "exp"), "--signature", str(tmp_path / "m.sig"),
                      "--public_key", str(tmp_path / "py.pub"))
    assert r.returncode == 0, r.stdout + r.stderr
