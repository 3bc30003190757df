"""Tool calling with the official clients against llmpmd and the real
Qwen2.5-Coder-0.5B-Instruct: the `ollama` client's `chat(tools=[a Python
function])`, the `openai` client through `/v1/chat/completions` (streamed and
not, `tool_choice` naming a function), and LangChain's `ChatOllama.bind_tools`.

The model is created from the GGUF that tests/fetch-models.sh assembles (.ci/run
runs it), so its template is the GGUF's own Jinja chat template; without the
file these tests skip, or fail under LLMPM_TEST_STRICT=1. Sampling is greedy.
"""
import json

import pytest

from conftest import create_qwen, need

QUESTION = "What is the weather in Paris right now?"
RESULT = "22 degrees Celsius and sunny"
GREEDY = {"temperature": 0, "seed": 1, "num_predict": 64}


def get_current_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The name of the city, e.g. Paris
    """
    return RESULT


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The name of the city, e.g. Paris"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def qwen(daemon):
    return create_qwen(daemon, 2048)


def test_ollama_client_calls_a_python_function_and_uses_its_result(qwen):
    ollama = need("ollama")
    client = ollama.Client(host=qwen["url"])
    assert "tools" in client.show("qwen").capabilities
    messages = [{"role": "user", "content": QUESTION}]
    r = client.chat(model="qwen", messages=messages, tools=[get_current_weather], options=GREEDY)
    calls = r.message.tool_calls
    assert calls, f"no tool call: {r.message}"
    assert calls[0].function.name == "get_current_weather"
    assert calls[0].function.arguments["city"].lower() == "paris"
    assert r.done_reason == "stop"

    # The call runs, its result goes back as a `tool` message, and the
    # answer (tools no longer offered) is built on it.
    messages.append(r.message)
    result = get_current_weather(**calls[0].function.arguments)
    messages.append({"role": "tool", "content": result, "tool_name": calls[0].function.name})
    final = client.chat(model="qwen", messages=messages, options=GREEDY)
    assert not final.message.tool_calls
    assert "22" in final.message.content, final.message.content


def test_ollama_client_gets_the_call_streamed_whole(qwen):
    ollama = need("ollama")
    client = ollama.Client(host=qwen["url"])
    chunks = list(client.chat(model="qwen", messages=[{"role": "user", "content": QUESTION}],
                              tools=[get_current_weather], options=GREEDY, stream=True))
    with_calls = [c for c in chunks if c.message.tool_calls]
    assert with_calls, chunks
    call = with_calls[0].message.tool_calls[0]
    # One chunk carries the whole call: name and parsed arguments together.
    assert call.function.name == "get_current_weather"
    assert call.function.arguments["city"].lower() == "paris"
    assert "".join(c.message.content for c in chunks).strip() == ""
    assert chunks[-1].done


def openai_client(daemon):
    openai = need("openai")
    return openai.OpenAI(base_url=daemon["url"] + "/v1", api_key="llmpm")


def test_openai_client_gets_tool_calls_whole_and_streamed(qwen):
    client = openai_client(qwen)
    messages = [{"role": "user", "content": QUESTION}]
    r = client.chat.completions.create(model="qwen", messages=messages, tools=[WEATHER_TOOL],
                                       temperature=0, seed=1, max_tokens=64)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments)["city"].lower() == "paris"

    # The call and its result sent back as OpenAI clients send them (the
    # assistant message as returned, content null; a `tool` message by id).
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": RESULT})
    final = client.chat.completions.create(model="qwen", messages=messages, tools=[WEATHER_TOOL],
                                           tool_choice="none", temperature=0, seed=1, max_tokens=64)
    assert not final.choices[0].message.tool_calls
    assert "22" in final.choices[0].message.content

    # Streamed: the call in deltas with its index, then finish_reason tool_calls.
    stream = client.chat.completions.create(model="qwen", messages=messages[:1], tools=[WEATHER_TOOL],
                                            temperature=0, seed=1, max_tokens=64, stream=True)
    chunks = [c for c in stream if c.choices]
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas, chunks
    assert deltas[0].index == 0 and deltas[0].id.startswith("call_")
    assert deltas[0].function.name == "get_current_weather"
    assert json.loads(deltas[0].function.arguments)["city"].lower() == "paris"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]


def test_openai_tool_choice_names_the_function(qwen):
    client = openai_client(qwen)
    choice = {"type": "function", "function": {"name": "get_current_weather"}}
    r = client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": QUESTION}],
                                       tools=[WEATHER_TOOL], tool_choice=choice,
                                       temperature=0, seed=1, max_tokens=64)
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments)["city"].lower() == "paris"


def test_openai_tool_choice_forces_a_call_the_prompt_does_not_ask_for(qwen):
    """The forced call is a Lark grammar (`Constraint::Lark`: the template's
    call tag, then the call as a JSON schema) that the runner enforces with
    llguidance; unforced, the model writes a haiku."""
    client = openai_client(qwen)
    choice = {"type": "function", "function": {"name": "get_current_weather"}}
    for stream in (False, True):
        r = client.chat.completions.create(model="qwen", tools=[WEATHER_TOOL], tool_choice=choice,
                                           messages=[{"role": "user", "content": "Write a haiku about the sea."}],
                                           temperature=0, seed=1, max_tokens=64, stream=stream)
        if stream:
            chunks = [c for c in r if c.choices]
            calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
        else:
            calls = r.choices[0].message.tool_calls or []
        assert calls and calls[0].function.name == "get_current_weather", r
        assert isinstance(json.loads(calls[0].function.arguments).get("city"), str)


def test_langchain_chat_ollama_bind_tools_gets_the_call(qwen):
    need("langchain_ollama")
    from langchain_ollama import ChatOllama

    llm = ChatOllama(model="qwen", base_url=qwen["url"], temperature=0, seed=1, num_predict=64)
    msg = llm.bind_tools([get_current_weather]).invoke(QUESTION)
    assert msg.tool_calls, msg
    assert msg.tool_calls[0]["name"] == "get_current_weather"
    assert msg.tool_calls[0]["args"]["city"].lower() == "paris"
