#!/usr/bin/env bash
# Serving throughput of llmpmd's /v2/ (issue 18): `curl -o /dev/null` of one
# blob from llmpmd against the same blob from Debian's `docker-registry`
# (distribution), both over loopback, both files in the page cache,
# alternating in one run. Prints MB/s per round and llmpmd / docker-registry.
#
# usage: bench/serve_throughput.sh
#
# environment (all optional):
#   BENCH_SIZE_MIB   size of the blob                      (1024)
#   BENCH_ROUNDS     alternating rounds                    (3)
#   BENCH_TMP        where the temp dir goes               ($TMPDIR or /tmp)
#   LLMPM_BIN_DIR    llmpm/llmpmd to use (default target/release, built if missing)
#
# Needs `docker-registry`, curl, python3. One temp dir, deleted on exit.
# Disk: about 2 × BENCH_SIZE_MIB (registry storage + llmpm store).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
size_mib="${BENCH_SIZE_MIB:-1024}"
rounds="${BENCH_ROUNDS:-3}"
bin="${LLMPM_BIN_DIR:-$root/target/release}"

command -v curl >/dev/null || { echo "error: curl is not installed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 is not installed" >&2; exit 1; }
tmp="$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/llmpm-serve-bench.XXXXXX")"
# shellcheck source=bench/registry_lib.sh
source "$root/bench/registry_lib.sh"
registry_bin="${LLMPM_DOCKER_REGISTRY:-$(command -v docker-registry || true)}"
[[ -x "$registry_bin" ]] || die "docker-registry is not installed (apt-get install docker-registry)"
if [[ -z "${LLMPM_BIN_DIR:-}" && ! ( -x "$bin/llmpmd" && -x "$bin/llmpm" ) ]]; then
    say "== building llmpmd and llmpm (release)"
    (cd "$root" && cargo build --release --quiet -p llmpmd -p llmpm --bins)
fi
[[ -x "$bin/llmpmd" && -x "$bin/llmpm" ]] || die "no llmpmd/llmpm in $bin"
start_registry "$registry_bin"

say "== a ${size_mib} MiB layer in docker-registry on $reg"
size=$((size_mib * 1024 * 1024))
head -c "$size" /dev/urandom >"$tmp/weights"
repo="bench/model"
layer="$(upload_blob "$repo" "$tmp/weights")"
rm -f "$tmp/weights"
printf '{"model_format":"gguf","rootfs":{"type":"layers","diff_ids":["%s"]}}' "$layer" >"$tmp/config.json"
config="$(upload_blob "$repo" "$tmp/config.json")"
manifest_type="application/vnd.docker.distribution.manifest.v2+json"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"%s","size":%s}]}' \
    "$manifest_type" "$config" "$(stat -c %s "$tmp/config.json")" "$layer" "$size" >"$tmp/manifest.json"
curl -sf -o /dev/null -X PUT -H "Content-Type: $manifest_type" \
    --data-binary "@$tmp/manifest.json" "$reg/v2/$repo/manifests/v1" || die "manifest PUT failed"

say "== llmpmd pulls it, then serves it"
: >"$tmp/empty.yaml"
dport="$(free_port)"
env -i PATH="$PATH" LLMPM_HOME="$tmp/home" LLMPM_SOCKET="$tmp/home/llmpm.sock" \
    LLMPM_CONFIG="$tmp/empty.yaml" LLMPM_LOG=warn LLMPM_HOST="127.0.0.1:$dport" \
    "$bin/llmpmd" >"$tmp/llmpmd.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$dport/" "$!" "llmpmd"
env -i PATH="$PATH" LLMPM_HOME="$tmp/home" LLMPM_SOCKET="$tmp/home/llmpm.sock" \
    LLMPM_CONFIG="$tmp/empty.yaml" LLMPM_NO_AUTOSTART=1 NO_COLOR=1 \
    "$bin/llmpm" pull --insecure "127.0.0.1:$rport/$repo:v1" >/dev/null 2>&1 || die "llmpm pull failed"
ours="http://127.0.0.1:$dport/v2/127.0.0.1_$rport/$repo/blobs/$layer"
theirs="$reg/v2/$repo/blobs/$layer"

fetch() {  # url -> MB/s; checks the byte count
    local out
    out="$(curl -sf -o /dev/null -w '%{size_download} %{time_total}' "$1")" || die "GET $1 failed"
    read -r got secs <<<"$out"
    [[ "$got" == "$size" ]] || die "$1 gave $got bytes, not $size"
    awk -v b="$got" -v t="$secs" 'BEGIN { printf "%.0f", b / t / 1e6 }'
}
fetch "$ours" >/dev/null; fetch "$theirs" >/dev/null  # both files into the page cache
printf '%-6s %16s %16s\n' round "llmpmd MB/s" "registry MB/s"
a_all=(); b_all=()
for r in $(seq 1 "$rounds"); do
    a="$(fetch "$ours")"; b="$(fetch "$theirs")"
    a_all+=("$a"); b_all+=("$b")
    printf '%-6s %16s %16s\n' "$r" "$a" "$b"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ma="$(median "${a_all[@]}")"; mb="$(median "${b_all[@]}")"
printf 'median: llmpmd %s MB/s, docker-registry %s MB/s, ratio %s\n' "$ma" "$mb" \
    "$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.2f", a / b }')"
