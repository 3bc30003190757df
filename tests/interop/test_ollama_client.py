"""The official `ollama` Python client against llmpmd, unchanged: list, show, copy, delete, create."""
import pytest

from conftest import need


def test_model_management_with_official_client(daemon):
    ollama = need("ollama")
    client = ollama.Client(host=daemon["url"])

    assert client.list().models == []

    digest = client.create_blob(daemon["gguf"])
    assert digest.startswith("sha256:")
    progress = list(
        client.create(
            model="tiny",
            files={"tiny.gguf": digest},
            system="You are terse.",
            template="{{ .Prompt }}",
            parameters={"temperature": 0.3, "stop": ["</s>", "<|eot_id|>"]},
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
            license="MIT",
            stream=True,
        )
    )
    statuses = [p.status for p in progress]
    assert statuses[-1] == "success"
    assert "writing manifest" in statuses
    assert any(s.startswith("using existing layer") for s in statuses)
    assert any(s.startswith("creating new layer") for s in statuses)

    models = client.list().models
    assert [m.model for m in models] == ["tiny:latest"]
    m = models[0]
    assert m.size > 0 and len(m.digest) == 64
    assert m.details.family == "llama"
    assert m.details.format == "gguf"
    assert m.details.quantization_level == "F32"
    assert m.modified_at is not None

    shown = client.show("tiny")
    # The client's ShowResponse has no `system` field; it travels in the Modelfile.
    assert "SYSTEM You are terse." in shown.modelfile
    assert shown.template == "{{ .Prompt }}"
    assert shown.license == "MIT"
    assert "temperature" in shown.parameters
    assert shown.details.family == "llama"
    assert shown.modelinfo["general.architecture"] == "llama"
    assert "FROM " in shown.modelfile

    client.copy("tiny", "tiny-copy:v2")
    names = sorted(m.model for m in client.list().models)
    assert names == ["tiny-copy:v2", "tiny:latest"]

    # create from an existing model
    res = client.create(model="child", from_="tiny", system="child system", stream=False)
    assert res.status == "success"
    assert "SYSTEM child system" in client.show("child").modelfile

    client.delete("tiny")
    names = sorted(m.model for m in client.list().models)
    assert names == ["child:latest", "tiny-copy:v2"]

    with pytest.raises(ollama.ResponseError) as e:
        client.show("tiny")
    assert e.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as e:
        client.delete("nope")
    assert e.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as e:
        client.create(model="Bad/Name/x/y/z", from_="child", stream=False)
    assert e.value.status_code == 400
