"""llmpmd's store read over `/v2/` by the `oras` Python SDK (PyPI `oras`), an
independent OCI client: the manifest as stored, every blob pulled with its
digest matching, tags listed; behind an API key, through the Bearer token
realm with the key as a Basic password."""
import hashlib
import json
import os
import urllib.error
import urllib.request

import pytest

from conftest import need

KEY = "interop-key"


def api(daemon, path, data, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    req = urllib.request.Request(daemon["url"] + path, data=data, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def create(daemon, name, key=None):
    """`name` from the tiny GGUF with a SYSTEM layer, over the plain API."""
    data = daemon["gguf"].read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    api(daemon, f"/api/blobs/{digest}", data, key)
    body = {"model": name, "files": {"tiny.gguf": digest}, "system": "You are terse.", "stream": False}
    api(daemon, "/api/create", json.dumps(body).encode(), key)


def stored(daemon, digest):
    return (daemon["home"] / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def pull_everything(client, host, target, tmp_path):
    """Pulls the manifest and every blob of `target` with oras; returns the manifest's digest."""
    resp = client.do_request(
        f"http://{host}/v2/library/m/manifests/latest",
        "GET",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert resp.status_code == 200, resp.text
    digest = resp.headers["Docker-Content-Digest"]
    assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == digest
    manifest = client.get_manifest(target)
    assert manifest == json.loads(resp.content)
    # Layers through oras' own pull (files named by digest: no titles),
    # the config through its blob download.
    files = client.pull(target=target, outdir=str(tmp_path / "pulled"))
    assert len(files) == len(manifest["layers"])
    for layer, path in zip(manifest["layers"], files):
        assert sha256(path) == layer["digest"]
        assert os.path.getsize(path) == layer["size"]
    config = client.download_blob(target, manifest["config"]["digest"], str(tmp_path / "config"))
    assert sha256(config) == manifest["config"]["digest"]
    return digest, resp.content


def test_oras_pulls_every_blob_with_matching_digests(daemon, tmp_path):
    need("oras")
    from oras.client import OrasClient

    create(daemon, "m")
    host = daemon["url"].removeprefix("http://")
    client = OrasClient(hostname=host, insecure=True)
    target = f"{host}/library/m:latest"
    digest, raw = pull_everything(client, host, target, tmp_path)
    assert raw == stored(daemon, digest), "the manifest byte for byte"
    assert client.get_tags(target) == ["latest"]


@pytest.mark.parametrize("daemon", [{"LLMPM_API_KEY": KEY}], indirect=True)
def test_oras_behind_the_api_key(daemon, tmp_path):
    need("oras")
    from oras.client import OrasClient

    create(daemon, "m", key=KEY)
    host = daemon["url"].removeprefix("http://")
    target = f"{host}/library/m:latest"
    # Without the key: the challenge oras answers below. (Not asked of oras
    # itself: it retries a refused token for two minutes before giving up.)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{host}/v2/library/m/manifests/latest", timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith('Bearer realm="http://')
    client = OrasClient(hostname=host, insecure=True)
    client.auth.set_basic_auth("anyone", KEY)
    digest, raw = pull_everything(client, host, target, tmp_path)
    assert raw == stored(daemon, digest)
