"""The official `ollama` Python client's `embed()` on a generated BERT model
(a WordPiece vocabulary, as all-minilm's GGUF has): normalised vectors of the
model's hidden size, input tokenized as uncased WordPiece; `chat` on it is a
clear 400."""
import math
import subprocess

import pytest

from conftest import BIN, need


def test_embed_and_chat_on_a_bert_model(daemon):
    ollama = need("ollama")
    client = ollama.Client(host=daemon["url"])
    gguf = daemon["home"].parent / "bert.gguf"
    subprocess.run(
        [str(BIN / "llmpm-gen-gguf"), "--out", str(gguf), "--arch", "bert", "--embd", "64",
         "--heads", "2", "--kv-heads", "2", "--layers", "2", "--ff", "256", "--vocab", "3000",
         "--ctx", "512"],
        check=True,
    )
    digest = client.create_blob(gguf)
    assert list(client.create(model="minilm", files={"bert.gguf": digest}, stream=True))[-1].status == "success"

    out = client.embed(model="minilm", input=["hello world", "the cat sat on the mat", "a"])
    assert len(out.embeddings) == 3
    for e in out.embeddings:
        assert len(e) == 64
        assert abs(math.sqrt(sum(x * x for x in e)) - 1.0) < 1e-3
    assert out.embeddings[0] != out.embeddings[1]
    # WordPiece as llama.cpp: [CLS] hello world [SEP], uncased, accents
    # stripped, so these are the same input.
    one = client.embed(model="minilm", input="hello world")
    assert one.prompt_eval_count == 4
    same = client.embed(model="minilm", input=["HELLO  World", "héllo wörld"])
    for e in same.embeddings:
        assert max(abs(a - b) for a, b in zip(e, one.embeddings[0])) < 1e-6
    assert "embedding" in client.show("minilm").capabilities

    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="minilm", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 400
    assert '"minilm" does not support chat' in err.value.error
