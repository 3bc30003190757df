"""The official `ollama` Python client against llmpmd's scheduler: load with
keep_alive, `ps` parsed by the client's own types, unload, and the 503 shape."""
import concurrent.futures
import datetime

import pytest

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


@pytest.mark.parametrize("daemon", [{"LLMPM_MAX_QUEUE": "1"}], indirect=True)
def test_past_max_queue_the_official_client_gets_503(daemon):
    """One request generating, one waiting (max_queue 1): the next is refused
    at once with Ollama's 503 shape, which the client raises as ResponseError."""
    ollama = need("ollama")
    client = ollama.Client(host=daemon["url"])
    digest = client.create_blob(daemon["gguf"])
    client.create(model="tiny", files={"tiny.gguf": digest}, parameters={"num_ctx": 2048}, stream=False)

    busy = client.generate(model="tiny", prompt="Once upon a time", stream=True,
                           options={"temperature": 0, "num_predict": 1500})
    assert next(busy).done is False  # the runner is serving it

    def short():
        try:
            return ollama.Client(host=daemon["url"]).generate(
                model="tiny", prompt="Hi", options={"temperature": 0, "num_predict": 2})
        except ollama.ResponseError as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(short), pool.submit(short)]
        done, _ = concurrent.futures.wait(waiting, return_when=concurrent.futures.FIRST_COMPLETED)
        refused = done.pop().result()
        assert isinstance(refused, ollama.ResponseError), refused
        assert refused.status_code == 503
        assert refused.error == "server busy, please try again.  maximum pending requests exceeded"
        busy.close()  # the client leaves: the waiting request gets the model
        answered = [f.result() for f in waiting if f.result() is not refused]
        assert len(answered) == 1 and answered[0].done is True
