"""The official `ollama` and `openai` Python clients stream a chat from llmpmd, unchanged.

Uses the real Qwen2.5-Coder-0.5B-Instruct GGUF that tests/fetch-models.sh
assembles (.ci/run runs it): without it these tests skip, or fail under
LLMPM_TEST_STRICT=1.
"""
import pytest

from conftest import create_qwen, need

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def qwen(daemon):
    return create_qwen(daemon, 512)


def test_ollama_client_streams_a_chat(qwen):
    ollama = need("ollama")
    client = ollama.Client(host=qwen["url"])
    chunks = list(client.chat(model="qwen", messages=QUESTION, stream=True,
                              options={"temperature": 0, "num_predict": 32}))
    assert len(chunks) > 2, "streamed in pieces"
    text = "".join(c.message.content for c in chunks)
    assert "Paris" in text, text
    last = chunks[-1]
    assert last.done and last.done_reason == "stop"
    assert last.eval_count > 0 and last.prompt_eval_count > 0
    assert all(c.message.role == "assistant" for c in chunks)


def test_openai_client_streams_a_chat(qwen):
    openai = need("openai")
    client = openai.OpenAI(base_url=qwen["url"] + "/v1", api_key="llmpm")
    assert "qwen:latest" in [m.id for m in client.models.list()]
    stream = client.chat.completions.create(model="qwen", messages=QUESTION, stream=True,
                                            temperature=0, max_tokens=32)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text, text
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == ["stop"]

    # Not streamed: one message, usage counted; JSON mode gives JSON.
    r = client.chat.completions.create(
        model="qwen", temperature=0, max_tokens=48,
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": 'Capital of France as JSON with the key "capital".'}])
    import json
    assert "Paris" in json.loads(r.choices[0].message.content)["capital"]
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0

    # An unknown model is an OpenAI-shaped error the client raises.
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=QUESTION)
