"""The other chat APIs with their official clients against llmpmd and the real
Qwen2.5-Coder-0.5B-Instruct: the `openai` client's `responses.create`
(`/v1/responses`: streamed and not, a function tool, a JSON-schema
`text.format`) and the `anthropic` client's `messages.create` (`/v1/messages`:
streamed and not, a tool round trip, `count_tokens`), and the daemon's refusal
of what it cannot do (`previous_response_id`, a missing `max_tokens`) as the
clients' own exceptions. Greedy sampling; skips without the model or the
clients (fails under LLMPM_TEST_STRICT=1).
"""
import json

import pytest

from conftest import create_qwen, need

QUESTION = "What is the weather in Paris right now?"
RESULT = "22 degrees Celsius and sunny"
PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The name of the city, e.g. Paris"}},
    "required": ["city"],
}
RESPONSES_TOOL = {
    "type": "function",
    "name": "get_current_weather",
    "description": "Get the current weather for a city.",
    "parameters": PARAMS,
}
# Sent as extra fields: newer `anthropic` clients have no `temperature` argument.
GREEDY = {"temperature": 0}
ANTHROPIC_TOOL = {
    "name": "get_current_weather",
    "description": "Get the current weather for a city.",
    "input_schema": PARAMS,
}


@pytest.fixture
def qwen(daemon):
    return create_qwen(daemon, 2048)


def openai_client(d):
    openai = need("openai")
    return openai, openai.OpenAI(base_url=d["url"] + "/v1", api_key="unused", max_retries=0)


def anthropic_client(d):
    anthropic = need("anthropic")
    return anthropic, anthropic.Anthropic(base_url=d["url"], api_key="unused", max_retries=0)


def test_responses_text_streamed_and_not(qwen):
    openai, client = openai_client(qwen)
    r = client.responses.create(
        model="qwen", input="Say hello in one word.", instructions="Be brief.",
        temperature=0, max_output_tokens=16,
    )
    assert r.status == "completed" and r.object == "response"
    assert r.output[0].type == "message"
    assert r.output_text.strip(), r
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 16

    deltas, kinds, final = [], [], None
    with client.responses.stream(
        model="qwen", input="Say hello in one word.", instructions="Be brief.",
        temperature=0, max_output_tokens=16,
    ) as s:
        for ev in s:
            kinds.append(ev.type)
            if ev.type == "response.output_text.delta":
                deltas.append(ev.delta)
        final = s.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "".join(deltas) == final.output_text == r.output_text

    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="qwen", input="hi", previous_response_id="resp_1")
    assert "previous_response_id" in str(e.value)


def test_responses_function_tool_round_trip(qwen):
    _, client = openai_client(qwen)
    r = client.responses.create(
        model="qwen", input=QUESTION, tools=[RESPONSES_TOOL], temperature=0, max_output_tokens=64,
    )
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls, r.output
    assert calls[0].name == "get_current_weather"
    assert json.loads(calls[0].arguments)["city"].lower() == "paris"

    # Streamed: the call arrives as function_call_arguments events.
    args = []
    with client.responses.stream(
        model="qwen", input=QUESTION, tools=[RESPONSES_TOOL], temperature=0, max_output_tokens=64,
    ) as s:
        for ev in s:
            if ev.type == "response.function_call_arguments.done":
                args.append(ev.arguments)
        final = s.get_final_response()
    assert args and json.loads(args[0])["city"].lower() == "paris"
    assert [o.type for o in final.output if o.type == "function_call"] == ["function_call"]

    follow = [
        {"role": "user", "content": QUESTION},
        {"type": "function_call", "call_id": calls[0].call_id, "name": calls[0].name,
         "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": RESULT},
    ]
    # The answer, tools still declared but no longer offered.
    r2 = client.responses.create(
        model="qwen", input=follow, tools=[RESPONSES_TOOL], tool_choice="none", temperature=0,
        max_output_tokens=64,
    )
    assert "22" in r2.output_text, r2.output


def test_responses_json_schema_text_format(qwen):
    jsonschema = need("jsonschema")
    _, client = openai_client(qwen)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    r = client.responses.create(
        model="qwen", input="Invent a person: name and age.", temperature=0, max_output_tokens=64,
        text={"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}},
    )
    jsonschema.validate(json.loads(r.output_text), schema)


def test_anthropic_messages_streamed_and_not(qwen):
    anthropic, client = anthropic_client(qwen)
    m = client.messages.create(
        model="qwen", max_tokens=16, extra_body=GREEDY, system="Be brief.",
        messages=[{"role": "user", "content": "Say hello in one word."}],
    )
    assert m.type == "message" and m.role == "assistant"
    assert m.content[0].type == "text" and m.content[0].text.strip()
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert m.usage.input_tokens > 0 and 0 < m.usage.output_tokens <= 16

    with client.messages.stream(
        model="qwen", max_tokens=16, extra_body=GREEDY, system="Be brief.",
        messages=[{"role": "user", "content": "Say hello in one word."}],
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == m.content[0].text == final.content[0].text
    assert final.stop_reason == m.stop_reason

    counted = client.messages.count_tokens(
        model="qwen", system="Be brief.", messages=[{"role": "user", "content": "Say hello in one word."}],
    )
    assert counted.input_tokens == m.usage.input_tokens

    with pytest.raises(anthropic.BadRequestError) as e:
        client.post("/v1/messages", cast_to=object, body={
            "model": "qwen", "messages": [{"role": "user", "content": "hi"}]})
    assert "max_tokens" in str(e.value)


def test_anthropic_tool_round_trip(qwen):
    _, client = anthropic_client(qwen)
    messages = [{"role": "user", "content": QUESTION}]
    m = client.messages.create(model="qwen", max_tokens=64, extra_body=GREEDY, tools=[ANTHROPIC_TOOL],
                               messages=messages)
    assert m.stop_reason == "tool_use", m
    use = [b for b in m.content if b.type == "tool_use"][0]
    assert use.name == "get_current_weather" and use.input["city"].lower() == "paris"

    with client.messages.stream(model="qwen", max_tokens=64, extra_body=GREEDY, tools=[ANTHROPIC_TOOL],
                                messages=messages) as s:
        streamed = s.get_final_message()
    suse = [b for b in streamed.content if b.type == "tool_use"][0]
    assert (suse.name, suse.input) == (use.name, use.input)
    assert streamed.stop_reason == "tool_use"

    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": RESULT}]},
    ]
    answer = client.messages.create(model="qwen", max_tokens=64, extra_body=GREEDY, tools=[ANTHROPIC_TOOL],
                                    tool_choice={"type": "none"}, messages=messages)
    assert answer.stop_reason == "end_turn"
    assert "22" in answer.content[0].text, answer
