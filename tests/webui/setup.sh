#!/usr/bin/env bash
# Installs what tests/webui/run.sh needs: Debian's chromium (playwright's own
# browser download is not reachable here), and Open WebUI 0.12.4 + playwright
# in a venv ($WEBUI_VENV, default target/webui-venv). Open WebUI is installed
# without its ML stack (torch, sentence-transformers: several GB, unused when
# embeddings go to Ollama): `--no-deps` plus the server's own requirements.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${WEBUI_VENV:-target/webui-venv}
if ! command -v chromium >/dev/null; then
  SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pip=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
"${pip[@]}" --no-deps 'open-webui==0.12.4'
"${pip[@]}" -r tests/webui/requirements.txt 'playwright>=1.50,<2'
