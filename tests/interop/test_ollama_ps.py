"""The official `ollama` Python client against llmpmd's scheduler: load with
keep_alive, `ps` parsed by the client's own types, unload, and the 503 shape."""
import datetime

from conftest import need


def test_keep_alive_and_ps_with_official_client(daemon):
    ollama = need("ollama")
    client = ollama.Client(host=daemon["url"])
    digest = client.create_blob(daemon["gguf"])
    assert client.create(model="tiny", files={"tiny.gguf": digest}, stream=False).status == "success"

    assert client.ps().models == []

    # An empty prompt loads; the client sends keep_alive as a duration string.
    r = client.generate(model="tiny", prompt="", keep_alive="10m")
    assert r.done_reason == "load"
    models = client.ps().models
    assert [m.model for m in models] == ["tiny:latest"]
    m = models[0]
    assert m.size > 0 and m.size_vram == 0
    assert m.details.family == "llama"
    assert m.context_length > 0
    left = m.expires_at - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(minutes=9) < left <= datetime.timedelta(minutes=10)

    # Negative: forever, reported centuries ahead (the client parses it).
    client.generate(model="tiny", prompt="Hi", keep_alive=-1, options={"num_predict": 2})
    m = client.ps().models[0]
    assert m.expires_at.year > 2200

    # keep_alive 0 with no prompt unloads (what `ollama stop` sends).
    r = client.generate(model="tiny", prompt="", keep_alive=0)
    assert r.done_reason == "unload"
    assert client.ps().models == []
