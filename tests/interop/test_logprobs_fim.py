"""The official `openai` and `ollama` Python clients parse llmpmd's
log-probabilities (chat, streamed and not; legacy completions) and send a
fill-in-the-middle `suffix`, on the tiny generated model."""
from conftest import need

FIM_TEMPLATE = "{{ if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{ else }}{{ .Prompt }}{{ end }}"


def tiny(daemon, template=None):
    ollama = need("ollama")
    client = ollama.Client(host=daemon["url"])
    digest = client.create_blob(daemon["gguf"])
    client.create(model="tiny", files={"tiny.gguf": digest}, template=template,
                  parameters={"num_ctx": 256}, stream=False)
    return client


def test_openai_client_parses_logprobs(daemon):
    tiny(daemon)
    openai = need("openai")
    client = openai.OpenAI(base_url=daemon["url"] + "/v1", api_key="llmpm")
    msgs = [{"role": "user", "content": "Hi"}]
    r = client.chat.completions.create(model="tiny", messages=msgs, temperature=0, max_tokens=8,
                                       logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens > 0
    for t in content:
        assert t.logprob <= 0 and isinstance(t.token, str)
        assert len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token  # greedy takes the best
        assert [a.logprob for a in t.top_logprobs] == sorted((a.logprob for a in t.top_logprobs), reverse=True)
    streamed = [c for c in client.chat.completions.create(
        model="tiny", messages=msgs, temperature=0, max_tokens=8, logprobs=True, top_logprobs=3, stream=True)
        if c.choices and c.choices[0].logprobs]
    assert [t.token for c in streamed for t in c.choices[0].logprobs.content] == [t.token for t in content]

    c = client.completions.create(model="tiny", prompt="Hello", temperature=0, max_tokens=8, logprobs=2)
    lp = c.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset) == len(lp.top_logprobs)
    assert lp.text_offset[0] == 0
    assert all(len(d) <= 3 for d in lp.top_logprobs)

    try:
        client.chat.completions.create(model="tiny", messages=msgs, logprobs=True, top_logprobs=99)
        raise AssertionError("top_logprobs 99 accepted")
    except openai.BadRequestError as e:
        assert "top_logprobs" in str(e)


def test_ollama_client_logprobs_and_suffix(daemon):
    client = tiny(daemon, template=FIM_TEMPLATE)
    r = client.generate(model="tiny", prompt="def f(x):\n    ", suffix="\n    return y\n",
                        options={"temperature": 0, "num_predict": 6}, logprobs=True, top_logprobs=2)
    assert r.done
    assert len(r.logprobs) == r.eval_count
    assert all(len(l.top_logprobs) == 2 for l in r.logprobs)
    # The suffix reached the prompt: the same request sent raw gives the same answer.
    raw = client.generate(model="tiny", prompt="<PRE> def f(x):\n     <SUF>\n    return y\n <MID>", raw=True,
                          options={"temperature": 0, "num_predict": 6})
    assert raw.response == r.response and raw.prompt_eval_count == r.prompt_eval_count
    assert "insert" in client.show("tiny").capabilities
