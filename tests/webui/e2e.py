"""Drives real Open WebUI in headless Chromium against llmpmd (tests/webui/run.sh).

Checks, each printed as PASS/FAIL with what was seen:
  models  the UI's model list is llmpmd's (/api/tags through Open WebUI);
  pull    the model selector's "Download" entry pulls PULL_NAME from the
          local registry, and the model then appears in llmpmd's list;
  tools   a chat typed into the UI makes the Qwen model call Open WebUI's
          built-in get_current_timestamp tool (native function calling:
          llmpmd's tool-call parsing; the UI shows "Explored
          get_current_timestamp"), Open WebUI runs it and sends its result
          back in a further /api/chat (counted in llmpmd's log), and the
          chat ends with an answer. What the 0.5B model says with the
          result is not judged.
Exits 1 if any check failed.
"""
import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

BASE = os.environ.get("WEBUI_URL", "http://127.0.0.1:8089")
OUT = os.environ.get("OUT_DIR", "/tmp/webui-out")
PULL_NAME = os.environ["PULL_NAME"]
CHAT_WAIT = int(os.environ.get("WEBUI_CHAT_WAIT", "2400"))
LLMPMD_LOG = os.environ["LLMPMD_LOG"]
results = {}


def check(name, ok, seen):
    results[name] = {"ok": bool(ok), "seen": seen}
    print(("PASS" if ok else "FAIL"), name, json.dumps(seen)[:600], flush=True)


def api(page, method, path, body=None):
    """A request from the page with its session, as the UI's own code makes it."""
    return page.evaluate(
        """async ([m, p, b]) => {
          const r = await fetch(p, {method: m, headers: {'Content-Type': 'application/json',
            Authorization: 'Bearer ' + localStorage.token}, body: b ? JSON.stringify(b) : undefined});
          return {status: r.status, text: await r.text()};
        }""",
        [method, path, body],
    )


def ollama_names(page):
    r = api(page, "GET", "/ollama/api/tags")
    if r["status"] != 200:
        return []
    return [m["name"] for m in json.loads(r["text"]).get("models", [])]


def chat_requests():
    with open(LLMPMD_LOG, errors="replace") as f:
        return sum("method=POST path=/api/chat " in line for line in f)


def fresh_chat(page):
    page.goto(BASE + "/?models=qwen:latest", wait_until="domcontentloaded")
    page.wait_for_selector("#chat-input", timeout=60000)
    time.sleep(2)
    page.keyboard.press("Escape")


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"]
    )
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(BASE + "/", wait_until="domcontentloaded", timeout=120000)
    page.wait_for_function("!!localStorage.token", timeout=60000)

    # models: what the UI lists comes from llmpmd.
    r = api(page, "GET", "/api/models")
    ids = [m["id"] for m in json.loads(r["text"]).get("data", [])] if r["status"] == 200 else []
    check("models", "qwen:latest" in ids, {"status": r["status"], "ids": ids})

    # pull: type the name into the model selector, click its Download entry.
    fresh_chat(page)
    page.locator("#model-selector-model-button").click()
    page.locator("#model-search-input").fill(PULL_NAME)
    option = page.locator("button", has_text=f'Download "{PULL_NAME}"').first
    option.click(timeout=15000)
    names = []
    for _ in range(120):
        names = ollama_names(page)
        if PULL_NAME in names:
            break
        time.sleep(1)
    page.screenshot(path=f"{OUT}/1-pull.png")
    check("pull", PULL_NAME in names, {"after": names})

    # tools: a chat in the UI with native function calling.
    fresh_chat(page)
    box = page.locator("#chat-input")
    box.click()
    box.type("What is the current date and time? Call the get_current_timestamp tool to find out.")
    chats_before = chat_requests()
    page.keyboard.press("Enter")
    start, text, tool_seen = time.time(), "", False
    while time.time() - start < CHAT_WAIT:
        time.sleep(2)
        busy = page.locator("button[aria-label='Stop']").count() > 0
        containers = page.locator("#response-content-container")
        text = containers.last.inner_text().strip() if containers.count() else ""
        tool_seen = tool_seen or "get_current_timestamp" in text
        if not busy and text and time.time() - start > 10:
            break
    page.screenshot(path=f"{OUT}/2-tool-chat.png", full_page=True)
    chats = chat_requests() - chats_before
    check(
        "tools",
        tool_seen and chats >= 2 and text,
        {"seconds": round(time.time() - start), "tool_call_shown": tool_seen,
         "chat_requests": chats, "answer": text[-400:]},
    )
    browser.close()

json.dump(results, open(f"{OUT}/result.json", "w"), indent=1)
sys.exit(0 if all(r["ok"] for r in results.values()) else 1)
