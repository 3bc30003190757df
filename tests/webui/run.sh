#!/usr/bin/env bash
# Open WebUI 0.12.4 in headless Chromium against llmpmd (issue 15's final
# word): the UI lists llmpmd's models, pulls a model from a registry through
# its model selector, and chats with the real Qwen 2.5 Coder model using
# native tool calling (Open WebUI's built-in tools).
#
#   tests/webui/setup.sh     # once: chromium, Open WebUI, playwright
#   tests/webui/run.sh       # prints a summary; screenshots in $OUT_DIR
#
# Needs the binaries (cargo build --release), the real model
# (tests/fetch-models.sh) and Debian's docker-registry. Not part of .ci/run:
# Open WebUI's install and a CPU chat with its ~6,600-token tool prompt take
# longer than the rest of CI together on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/webui
VENV=${WEBUI_VENV:-$ROOT/target/webui-venv}
# Release binaries when built (a debug runner takes many minutes over the
# 6,600-token prompt), else debug.
BIN=${LLMPM_BIN:-$ROOT/target/release}
[ -x "$BIN/llmpmd" ] || BIN=$ROOT/target/debug
MODEL=${QWEN_GGUF:-$ROOT/target/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}
LLMPM_PORT=${LLMPM_PORT:-11534}
WEBUI_PORT=${WEBUI_PORT:-8089}
REG_PORT=${REG_PORT:-5055}
export OUT_DIR=${OUT_DIR:-$ROOT/target/webui-out}
WORK=$(mktemp -d /tmp/llmpm-webui.XXXXXX)
rm -rf "$OUT_DIR"; mkdir -p "$OUT_DIR"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
wait_for() { for _ in $(seq "$2"); do curl -sf "$1" >/dev/null && return 0; sleep 1; done; echo "not up: $1" >&2; exit 1; }

# A local registry holding a tiny generated model: what the UI pulls.
cat >"$WORK/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$REG_PORT
YML
docker-registry serve "$WORK/registry.yml" >"$OUT_DIR/registry.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$REG_PORT/v2/" 30

export LLMPM_HOST=127.0.0.1:$LLMPM_PORT
# The runner logs each prompt's length and what the prompt cache reused.
LLMPM_LOG=${LLMPM_LOG:-info,llmpmd::runner=debug} LLMPM_HOME=$WORK/llmpm "$BIN/llmpmd" >"$OUT_DIR/llmpmd.log" 2>&1 & pids+=($!)
wait_for "http://$LLMPM_HOST/api/version" 30
# Greedy, so the run repeats: at Ollama's default temperature the 0.5B
# model sometimes writes its call as a ```json block (content, as in Ollama).
# num_ctx 8192: Open WebUI's built-in tools make a prompt of over 4,096
# tokens, which the default context would truncate (as Ollama does).
printf 'FROM %s\nPARAMETER temperature 0\nPARAMETER num_ctx 8192\n' "$MODEL" >"$WORK/Modelfile.qwen"
"$BIN/llmpm" create qwen -f "$WORK/Modelfile.qwen" >/dev/null
"$BIN/llmpm-gen-gguf" --out "$WORK/tiny.gguf" --chat-template >/dev/null
echo "FROM $WORK/tiny.gguf" >"$WORK/Modelfile.tiny"
"$BIN/llmpm" create tiny -f "$WORK/Modelfile.tiny" >/dev/null
PULL_NAME=127.0.0.1:$REG_PORT/library/tiny:latest
"$BIN/llmpm" cp tiny "$PULL_NAME" >/dev/null
"$BIN/llmpm" push --insecure "$PULL_NAME" >/dev/null
"$BIN/llmpm" rm tiny "$PULL_NAME" >/dev/null

. "$HERE/webui-env.sh"
export DATA_DIR=$WORK/webui OLLAMA_BASE_URL=http://$LLMPM_HOST
export FRONTEND_BUILD_DIR=$("$VENV/bin/python" -c 'import open_webui,os;print(os.path.join(os.path.dirname(open_webui.__file__),"frontend"))')
mkdir -p "$DATA_DIR"
(cd "$WORK" && exec "$VENV/bin/uvicorn" open_webui.main:app --host 127.0.0.1 --port "$WEBUI_PORT") \
  >"$OUT_DIR/webui.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$WEBUI_PORT/health" 300

WEBUI_URL=http://127.0.0.1:$WEBUI_PORT PULL_NAME=$PULL_NAME LLMPMD_LOG=$OUT_DIR/llmpmd.log \
  "$VENV/bin/python" "$HERE/e2e.py" | tee "$OUT_DIR/e2e.txt"
echo "== llmpmd's requests from Open WebUI"
grep -o 'request method=.*' "$OUT_DIR/llmpmd.log" | grep -v 'path=/api/\(tags\|ps\|version\) ' || true
[ "${KEEP:-0}" = 1 ] && { echo "KEEP=1: up until Ctrl-C"; wait; }
