"""`GET /metrics` read by `prometheus_client`'s own text parser: the
exposition parses, and the counters move as requests are made (requests by
route and status, prompt and generated tokens, the time-to-first-token
histogram, the loaded model and its memory). Uses the generated tiny model."""
import urllib.request

import pytest

from conftest import need


def scrape(url):
    need("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_counters_move(daemon):
    ollama = need("ollama")
    client = ollama.Client(host=daemon["url"])
    digest = client.create_blob(daemon["gguf"])
    client.create(model="tiny", files={"tiny.gguf": digest}, stream=False)

    before = scrape(daemon["url"])
    r = client.generate(model="tiny", prompt="hello", options={"num_predict": 4, "temperature": 0})
    r2 = client.generate(model="tiny", prompt="hello again", options={"num_predict": 3, "temperature": 0})
    with pytest.raises(ollama.ResponseError):
        client.generate(model="missing-model", prompt="x")
    after = scrape(daemon["url"])

    route = {"route": "/api/generate"}
    assert value(after, "llmpm_requests_total", status="200", **route) - \
        value(before, "llmpm_requests_total", status="200", **route) == 2
    assert value(after, "llmpm_requests_total", status="404", **route) - \
        value(before, "llmpm_requests_total", status="404", **route) == 1
    # The scrape before this one counted too.
    assert value(after, "llmpm_requests_total", route="/metrics", status="200") >= 1

    model = {"model": "tiny:latest"}

    def delta(name):
        return value(after, name, **model) - value(before, name, **model)

    assert delta("llmpm_generated_tokens_total") == r.eval_count + r2.eval_count > 0
    assert delta("llmpm_prompt_tokens_total") == r.prompt_eval_count + r2.prompt_eval_count > 0
    assert delta("llmpm_generation_tokens_per_second_count") == 2
    assert value(after, "llmpm_time_to_first_token_seconds_count", **model) == 2
    assert value(after, "llmpm_time_to_first_token_seconds_bucket", le="+Inf", **model) == 2
    assert value(after, "llmpm_loaded_models") == 1
    assert value(after, "llmpm_model_memory_bytes", **model) > 0
    assert ("llmpm_queue_depth", ()) in after
    assert ("llmpm_runner_restarts_total", ()) in after
