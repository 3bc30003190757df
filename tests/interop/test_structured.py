"""Structured outputs that hold: the real Qwen2.5-Coder-0.5B-Instruct, sampled at
temperature 1 with several seeds, answers every one of a set of varied JSON
schemas (nested objects, enums, bounded arrays, `$ref`, `anyOf`, patterns,
formats) with JSON that Python's `jsonschema` validates, through the official
`ollama` client's `format` and the official `openai` client's `response_format`.

The model is the GGUF that tests/fetch-models.sh assembles (.ci/run runs it),
created in the daemon from a Modelfile `FROM <path>`: without it these tests
skip, or fail under LLMPM_TEST_STRICT=1. Each schema is sampled with two
seeds through `ollama` and a third through `openai`; requests go four at a
time (the daemon's num_parallel is 4) to keep the file's run short on a CPU.
"""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import create_qwen, need

PARALLEL = 4
SEEDS = (1, 2)
# Enough for every schema's answer; an answer cut here would not parse.
NUM_PREDICT = 160

S = {"type": "string", "maxLength": 40}

# (what to ask, schema)
SCHEMAS = [
    ("Describe a person.",
     {"type": "object", "properties": {"name": S, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
      "required": ["name", "age"], "additionalProperties": False}),
    ("Pick a color and say whether you like it.",
     {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}, "liked": {"type": "boolean"}},
      "required": ["color", "liked"], "additionalProperties": False}),
    ("Give tags for a blog post about Rust.",
     {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 20},
                                                "minItems": 2, "maxItems": 4}},
      "required": ["tags"], "additionalProperties": False}),
    ("Give the address of a house in the USA.",
     {"type": "object", "properties": {"address": {
         "type": "object",
         "properties": {"street": S, "city": S, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
         "required": ["street", "city", "zip"], "additionalProperties": False}},
      "required": ["address"], "additionalProperties": False}),
    ("Give a line segment in the plane.",
     {"$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                          "required": ["x", "y"], "additionalProperties": False}},
      "type": "object", "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}},
      "required": ["start", "end"], "additionalProperties": False}),
    ("Give a value of any kind.",
     {"type": "object", "properties": {"value": {"anyOf": [{"type": "integer"}, S, {"type": "null"}]}},
      "required": ["value"], "additionalProperties": False}),
    ("Describe a book.",
     {"type": "object", "properties": {"kind": {"const": "book"}, "title": S, "pages": {"type": "integer", "minimum": 1, "maximum": 5000}},
      "required": ["kind", "title", "pages"], "additionalProperties": False}),
    ("Write a shopping list.",
     {"type": "object", "properties": {"items": {"type": "array", "maxItems": 3, "items": {
         "type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                          "qty": {"type": "integer", "minimum": 1, "maximum": 12}},
         "required": ["name", "qty"], "additionalProperties": False}}},
      "required": ["items"], "additionalProperties": False}),
    ("When is the next meeting?",
     {"type": "object", "properties": {"date": {"type": "string", "format": "date"}, "topic": S},
      "required": ["date", "topic"], "additionalProperties": False}),
    ("Give a contact.",
     {"type": "object", "properties": {"name": S, "email": {"type": "string", "format": "email", "maxLength": 40}},
      "required": ["name", "email"], "additionalProperties": False}),
    ("Give a product code.",
     {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
                                       "price": {"type": "number", "minimum": 0, "maximum": 1000}},
      "required": ["code", "price"], "additionalProperties": False}),
    ("What is the weather like?",
     {"type": "object", "properties": {"celsius": {"type": "integer", "minimum": -50, "maximum": 60},
                                       "sky": {"enum": ["clear", "cloudy", "rain", "snow"]}},
      "required": ["celsius", "sky"], "additionalProperties": False}),
    ("Set the feature flags.",
     {"type": "object", "properties": {"beta": {"type": "boolean"}, "dark_mode": {"type": "boolean"},
                                       "telemetry": {"type": "boolean"}},
      "required": ["beta", "dark_mode", "telemetry"], "additionalProperties": False}),
    ("Give a 2 by 2 matrix of small integers.",
     {"type": "object", "properties": {"matrix": {"type": "array", "minItems": 2, "maxItems": 2, "items": {
         "type": "array", "minItems": 2, "maxItems": 2,
         "items": {"type": "integer", "minimum": -9, "maximum": 9}}}},
      "required": ["matrix"], "additionalProperties": False}),
    ("Pick a Fibonacci number.",
     {"type": "object", "properties": {"n": {"enum": [1, 2, 3, 5, 8, 13]}}, "required": ["n"],
      "additionalProperties": False}),
    ("Describe a user; the nickname is optional.",
     {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 99999},
                                       "nickname": {"type": "string", "maxLength": 16}},
      "required": ["id"], "additionalProperties": False}),
    ("Describe a shape.",
     {"type": "object", "properties": {"shape": {"anyOf": [
         {"type": "object", "properties": {"type": {"const": "circle"}, "radius": {"type": "number", "minimum": 0, "maximum": 100}},
          "required": ["type", "radius"], "additionalProperties": False},
         {"type": "object", "properties": {"type": {"const": "square"}, "side": {"type": "number", "minimum": 0, "maximum": 100}},
          "required": ["type", "side"], "additionalProperties": False}]}},
      "required": ["shape"], "additionalProperties": False}),
    ("Summarize the plot of Hamlet in one short sentence.",
     {"type": "object", "properties": {"summary": {"type": "string", "minLength": 5, "maxLength": 60}},
      "required": ["summary"], "additionalProperties": False}),
    ("Answer the quiz: which of these are prime? 2, 4, 5, 9",
     {"type": "array", "items": {"enum": [2, 4, 5, 9]}, "minItems": 1, "maxItems": 4}),
    ("Pick an even number between 0 and 100.",
     {"type": "object", "properties": {"even": {"type": "integer", "multipleOf": 2, "minimum": 0, "maximum": 100}},
      "required": ["even"], "additionalProperties": False}),
    ("Give the IP address of a server and its id.",
     {"type": "object", "properties": {"ip": {"type": "string", "format": "ipv4"},
                                       "id": {"type": "string", "format": "uuid"}},
      "required": ["ip", "id"], "additionalProperties": False}),
    ("Describe a team of two people.",
     {"$defs": {"member": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                                             "role": {"enum": ["lead", "dev", "qa"]}},
                           "required": ["name", "role"], "additionalProperties": False}},
      "type": "object", "properties": {"team": S, "members": {"type": "array", "items": {"$ref": "#/$defs/member"},
                                                              "minItems": 2, "maxItems": 2}},
      "required": ["team", "members"], "additionalProperties": False}),
]


def validate(schema, text):
    jsonschema = need("jsonschema")
    value = json.loads(text)
    cls = jsonschema.Draft202012Validator
    cls(schema, format_checker=cls.FORMAT_CHECKER).validate(value)
    return value


def props_in_order(schema, value):
    """The object's keys follow the schema's `properties` order."""
    if isinstance(value, dict) and "properties" in schema:
        order = [k for k in schema["properties"] if k in value]
        assert list(value) == order, (list(value), order)


@pytest.fixture
def qwen(daemon):
    need("jsonschema")
    return create_qwen(daemon, 1024)


def messages(ask):
    return [{"role": "user", "content": ask + " Answer in JSON."}]


PAR = pytest.mark.parametrize("daemon", [{"LLMPM_NUM_PARALLEL": str(PARALLEL)}], indirect=True)


@PAR
def test_ollama_format_schemas_hold_at_temperature_one(qwen):
    ollama = need("ollama")
    client = ollama.Client(host=qwen["url"])

    def one(job):
        (ask, schema), seed = job
        r = client.chat(model="qwen", messages=messages(ask), format=schema, stream=False,
                        options={"temperature": 1, "seed": seed, "num_predict": NUM_PREDICT})
        return ask, schema, seed, r

    jobs = [(s, seed) for s in SCHEMAS for seed in SEEDS]
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(one, jobs))
    for ask, schema, seed, r in results:
        text = r.message.content
        try:
            value = validate(schema, text)
        except Exception as e:  # noqa: BLE001 (the message is what matters)
            pytest.fail(f"{ask!r} seed {seed}: {e}\n{text!r} ({r.done_reason})")
        props_in_order(schema, value)
        assert r.done_reason == "stop", (ask, seed, text)


@PAR
def test_openai_response_format_schemas_hold(qwen):
    openai = need("openai")
    client = openai.OpenAI(base_url=qwen["url"] + "/v1", api_key="llmpm")

    def one(job):
        i, (ask, schema) = job
        r = client.chat.completions.create(
            model="qwen", messages=messages(ask), temperature=1, seed=100 + i,
            max_tokens=NUM_PREDICT,
            response_format={"type": "json_schema",
                             "json_schema": {"name": f"answer{i}", "schema": schema, "strict": True}})
        return ask, schema, r

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(one, enumerate(SCHEMAS)))
    for ask, schema, r in results:
        text = r.choices[0].message.content
        try:
            validate(schema, text)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{ask!r}: {e}\n{text!r} ({r.choices[0].finish_reason})")
        assert r.choices[0].finish_reason == "stop", (ask, text)

    # `json_object`: some JSON object (greedy: an unbounded object at
    # temperature 1 may outrun any token budget).
    r = client.chat.completions.create(
        model="qwen", messages=messages("What is the name and the age of your cat?"),
        temperature=0, max_tokens=NUM_PREDICT, response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict), r

    # A keyword the engine cannot enforce: the client raises a 400 naming it.
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="qwen", messages=messages("Tags?"),
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": {
                "type": "array", "items": {"type": "string"}, "uniqueItems": True}}})
    assert "uniqueItems" in str(e.value)
