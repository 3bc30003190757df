# Regenerates the reference renderings in ../../jinja/tests.rs with Python
# jinja2 in the environment transformers uses for apply_chat_template:
#   python3 gen_expected.py > /tmp/out.json   (then paste the strings)
import json, datetime, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols
import os
D=os.path.dirname(os.path.abspath(__file__)) + '/'
class Raised(Exception): pass
def raise_exception(m): raise Raised(m)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
today = datetime.datetime.utcnow().strftime("%d %b %Y")
def render(name, messages, tools=None, agp=True, bos='', eos=''):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters['tojson']=tojson
    env.globals['raise_exception']=raise_exception
    env.globals['strftime_now']=lambda f: datetime.datetime.utcnow().strftime(f)
    t = env.from_string(open(D+name).read())
    try:
        out = t.render(messages=messages, tools=tools, documents=None, add_generation_prompt=agp, bos_token=bos, eos_token=eos)
    except Raised as e:
        return "RAISED:" + str(e)
    return out.replace(today, "{TODAY}")
chat = [{"content":"You are terse.","role":"system"},{"content":"Hi","role":"user"},{"content":"Hello! How can I help?","role":"assistant"},{"content":"Tell me a joke.","role":"user"}]
nosys = chat[1:]
tools = [{"function":{"description":"Get the current weather","name":"get_weather","parameters":{"properties":{"city":{"description":"City name, e.g. Paris & <Lyon>","type":"string"}},"required":["city"],"type":"object"}},"type":"function"}]
toolconv = [{"content":"What's the weather in Paris?","role":"user"},
            {"content":"","role":"assistant","tool_calls":[{"function":{"arguments":{"city":"Paris"},"name":"get_weather"},"type":"function"}]},
            {"content":"22°C, sunny","name":"get_weather","role":"tool"}]
B3='<|begin_of_text|>'
cases = {
 "llama31_chat": render("llama3.1.jinja", chat, bos=B3),
 "llama31_tools": render("llama3.1.jinja", [{"content":"You are terse.","role":"system"}]+toolconv, tools=tools, bos=B3),
 "llama32_chat": render("llama3.2.jinja", chat, bos=B3),
 "llama32_nogen": render("llama3.2.jinja", nosys, agp=False, bos=B3),
 "qwen25_chat": render("qwen2.5.jinja", chat),
 "qwen25_nosys": render("qwen2.5.jinja", nosys),
 "qwen25_tools": render("qwen2.5.jinja", toolconv, tools=tools),
 "gemma3_chat": render("gemma3.jinja", chat, bos='<bos>'),
 "gemma3_bad": render("gemma3.jinja", [{"content":"a","role":"user"},{"content":"b","role":"user"}], bos='<bos>'),
}
print(json.dumps(cases, indent=1, ensure_ascii=False))
