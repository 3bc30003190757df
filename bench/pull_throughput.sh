#!/usr/bin/env bash
# Pull throughput: `llmpm pull` (through the daemon: ranged parallel download,
# sha256 verification, storage) against, in one run and alternating so all
# see the same machine state, the same blob from the same local
# `docker-registry` over loopback fetched by `curl -o /dev/null`, by `curl` to
# a file then fsync, and by `skopeo copy` to `dir:` (which verifies digests;
# it gets the layer in an OCI ModelPack manifest, since it refuses Ollama's
# media types in a Docker v2 manifest), beside one SHA-256 stream's speed
# (`openssl speed -evp sha256`). A verified pull cannot beat the least of the
# wire, one SHA-256 stream and the disk's durable write rate. Targets (issue
# 18): llmpm ≥ 1.0 × skopeo and ≥ 0.9 × min(curl + fsync, sha256).
# Then a sweep of part size × concurrency, then the bandwidth limit: one
# 1 GiB pull at BENCH_LIMIT (50 MiB/s: 20–22 s expected), and two different
# 1 GiB pulls at once sharing it (about twice that, together).
#
# usage: bench/pull_throughput.sh
#
# environment (all optional):
#   BENCH_SIZE_MIB        size of the single weights layer     (2048)
#   BENCH_ROUNDS          alternating curl/llmpm rounds         (3)
#   BENCH_PART_SIZES      sweep: LLMPM_PULL_PART_SIZE values    ("16M 64M 256M")
#   BENCH_CONCURRENCIES   sweep: LLMPM_PULL_CONCURRENCY values  ("1 4 8 16")
#   BENCH_SWEEP=0         skip the sweep
#   BENCH_LIMIT           the limit section's LLMPM_MAX_DOWNLOAD_SPEED (50M; 0 skips it)
#   BENCH_LIMIT_MIB       size of each of its layers           (1024)
#   BENCH_TMP             where the temp dir goes               ($TMPDIR or /tmp)
#   LLMPM_BIN_DIR         llmpm/llmpmd to use (default target/release, built if missing)
#   LLMPM_PULL_PART_SIZE, LLMPM_PULL_CONCURRENCY
#                         passed to the daemon of the main rounds (else its defaults)
#
# Needs `docker-registry` (apt-get install docker-registry), curl, python3,
# skopeo and openssl (either missing: its column is skipped).
# Everything lives in one temp dir that is deleted on exit, whatever happens.
# Disk: about 2 × BENCH_SIZE_MIB (registry storage + llmpm store).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
size_mib="${BENCH_SIZE_MIB:-2048}"
rounds="${BENCH_ROUNDS:-3}"
part_sizes="${BENCH_PART_SIZES:-16M 64M 256M}"
concurrencies="${BENCH_CONCURRENCIES:-1 4 8 16}"
bin="${LLMPM_BIN_DIR:-$root/target/release}"

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v curl >/dev/null || die "curl is not installed"
command -v python3 >/dev/null || die "python3 is not installed"
have_skopeo=1; command -v skopeo >/dev/null || { have_skopeo=0; say "skopeo is not installed: no skopeo column"; }
have_openssl=1; command -v openssl >/dev/null || { have_openssl=0; say "openssl is not installed: no sha256 column"; }
registry_bin="${LLMPM_DOCKER_REGISTRY:-$(command -v docker-registry || true)}"
[[ -x "$registry_bin" ]] || die "docker-registry is not installed (apt-get install docker-registry)"
if [[ -z "${LLMPM_BIN_DIR:-}" && ! ( -x "$bin/llmpmd" && -x "$bin/llmpm" ) ]]; then
    say "== building llmpmd and llmpm (release)"
    (cd "$root" && cargo build --release --quiet -p llmpmd -p llmpm --bins)
fi
[[ -x "$bin/llmpmd" && -x "$bin/llmpm" ]] || die "no llmpmd/llmpm in $bin"

tmp="$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/llmpm-bench.XXXXXX")"
daemon_pid=""
# The temp dir's cleanup, free ports, waiting for HTTP, docker-registry and
# blob uploads.
# shellcheck source=bench/registry_lib.sh
source "$root/bench/registry_lib.sh"
now() { date +%s.%N; }
# bytes seconds -> MB/s (10^6)
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / t / 1e6 }'; }
bytes_of() {  # 16M / 1G / 12345 -> bytes
    python3 -c 'import sys; s=sys.argv[1].upper(); m={"K":1<<10,"M":1<<20,"G":1<<30}
print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))' "$1"
}

# --- the registry -----------------------------------------------------------
start_registry "$registry_bin"

say "== generating a ${size_mib} MiB layer and pushing it to docker-registry on $reg"
size=$((size_mib * 1024 * 1024))
head -c "$size" /dev/urandom >"$tmp/weights"
repo="bench/model"
layer="$(upload_blob "$repo" "$tmp/weights")"
rm -f "$tmp/weights"
printf '{"model_format":"gguf","model_family":"llama","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$layer" >"$tmp/config.json"
config="$(upload_blob "$repo" "$tmp/config.json")"
config_size="$(stat -c %s "$tmp/config.json")"
manifest_type="application/vnd.docker.distribution.manifest.v2+json"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"%s","size":%s}]}' \
    "$manifest_type" "$config" "$config_size" "$layer" "$size" >"$tmp/manifest.json"
curl -sf -o /dev/null -X PUT -H "Content-Type: $manifest_type" \
    --data-binary "@$tmp/manifest.json" "$reg/v2/$repo/manifests/v1" || die "manifest PUT failed"
model="127.0.0.1:$rport/$repo:v1"
blob_url="$reg/v2/$repo/blobs/$layer"

# The same layer in an OCI (ModelPack) manifest, for skopeo.
printf '{"descriptor":{"name":"bench"},"config":{"format":"gguf"},"modelfs":{"type":"layers","diffIds":["%s"]}}' \
    "$layer" >"$tmp/mp-config.json"
mp_config="$(upload_blob "$repo" "$tmp/mp-config.json")"
oci_type="application/vnd.oci.image.manifest.v1+json"
printf '{"schemaVersion":2,"mediaType":"%s","artifactType":"application/vnd.cncf.model.manifest.v1+json","config":{"mediaType":"application/vnd.cncf.model.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.cncf.model.weight.v1.raw","digest":"%s","size":%s}]}' \
    "$oci_type" "$mp_config" "$(stat -c %s "$tmp/mp-config.json")" "$layer" "$size" >"$tmp/oci-manifest.json"
curl -sf -o /dev/null -X PUT -H "Content-Type: $oci_type" \
    --data-binary "@$tmp/oci-manifest.json" "$reg/v2/$repo/manifests/oci" || die "OCI manifest PUT failed"

# --- llmpm ------------------------------------------------------------------
: >"$tmp/empty.yaml"
llmpm_env=(
    "LLMPM_HOME=$tmp/home" "LLMPM_SOCKET=$tmp/home/llmpm.sock"
    "LLMPM_CONFIG=$tmp/empty.yaml" "LLMPM_LOG=warn" "NO_COLOR=1"
)

start_daemon() {  # [VAR=value…] extra daemon environment
    stop_daemon
    local dport
    dport="$(free_port)"
    mkdir -p "$tmp/home"
    env "${llmpm_env[@]}" "LLMPM_HOST=127.0.0.1:$dport" "$@" \
        "$bin/llmpmd" >>"$tmp/llmpmd.log" 2>&1 &
    daemon_pid=$!
    pids+=("$daemon_pid")
    wait_http "http://127.0.0.1:$dport/" "$daemon_pid" "llmpmd"
}
stop_daemon() {
    if [[ -n "$daemon_pid" ]]; then
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
        daemon_pid=""
    fi
}
cli() { env "${llmpm_env[@]}" LLMPM_NO_AUTOSTART=1 "$bin/llmpm" "$@"; }

time_curl() {
    local t
    t="$(curl -sf -o /dev/null -w '%{time_total}' "$blob_url")" || die "curl of the blob failed"
    echo "$t"
}
# The same durability as a pull: the blob written to a file and fsynced
# (`sync FILE` is fsync(2)). llmpm cannot beat this on a given disk.
time_curl_file() {
    local t0 t1
    t0="$(now)"
    curl -sf -o "$tmp/curl.out" "$blob_url" || die "curl of the blob failed"
    sync "$tmp/curl.out"
    t1="$(now)"
    rm -f "$tmp/curl.out"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
# skopeo copies the layer and config to a directory, verifying digests.
time_skopeo() {
    local t0 t1
    rm -rf "$tmp/skopeo"
    t0="$(now)"
    skopeo --insecure-policy copy --quiet --src-tls-verify=false \
        "docker://127.0.0.1:$rport/$repo:oci" "dir:$tmp/skopeo" >"$tmp/skopeo.log" 2>&1 ||
        { cat "$tmp/skopeo.log" >&2; die "skopeo copy failed"; }
    t1="$(now)"
    rm -rf "$tmp/skopeo"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
# One SHA-256 stream over 1 MiB blocks, in MB/s (openssl counts 1000s of bytes).
sha256_rate() {
    openssl speed -evp sha256 -bytes 1048576 -seconds 3 2>/dev/null |
        awk '$1 == "sha256" { v = $NF; sub(/k$/, "", v); printf "%.0f", v / 1000 }'
}
# CPU seconds (user + system) a process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
time_pull() {  # pulls, then removes the model so the next pull fetches again
    local t0 t1 c0
    c0="$(cpu_of "$daemon_pid")"
    t0="$(now)"
    if ! cli pull "$model" --insecure >"$tmp/pull.out" 2>&1; then
        say "llmpm pull failed:"; tail -5 "$tmp/pull.out" >&2
        say "daemon log:"; tail -20 "$tmp/llmpmd.log" >&2
        exit 1
    fi
    t1="$(now)"
    # The daemon's CPU for the pull: on a shared machine, the cost per byte
    # is steadier than the wall time.
    awk -v a="$c0" -v b="$(cpu_of "$daemon_pid")" 'BEGIN { printf "%.2f\n", b - a }' >>"$tmp/pull-cpu"
    cli rm "$model" >/dev/null 2>&1 || die "llmpm rm failed"
    cli prune >/dev/null 2>&1 || true
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

main_env=()
[[ -n "${LLMPM_PULL_PART_SIZE:-}" ]] && main_env+=("LLMPM_PULL_PART_SIZE=$LLMPM_PULL_PART_SIZE")
[[ -n "${LLMPM_PULL_CONCURRENCY:-}" ]] && main_env+=("LLMPM_PULL_CONCURRENCY=$LLMPM_PULL_CONCURRENCY")
start_daemon "${main_env[@]}"

say "== warm-up: one curl, so both read the registry's file from the page cache"
time_curl >/dev/null

say "== $rounds alternating rounds, $size bytes each"
curl_total=0 pull_total=0 file_total=0 skopeo_total=0 sha_sum=0
printf '%-6s %-10s %10s %10s\n' round tool seconds MB/s
for r in $(seq 1 "$rounds"); do
    tc="$(time_curl)"
    printf '%-6s %-10s %10s %10s\n' "$r" curl "$tc" "$(mbps "$size" "$tc")"
    tf="$(time_curl_file)"
    printf '%-6s %-10s %10s %10s\n' "$r" curl+sync "$tf" "$(mbps "$size" "$tf")"
    file_total="$(awk -v a="$file_total" -v b="$tf" 'BEGIN { print a + b }')"
    if [[ $have_skopeo == 1 ]]; then
        ts="$(time_skopeo)"
        printf '%-6s %-10s %10s %10s\n' "$r" skopeo "$ts" "$(mbps "$size" "$ts")"
        skopeo_total="$(awk -v a="$skopeo_total" -v b="$ts" 'BEGIN { print a + b }')"
    fi
    if [[ $have_openssl == 1 ]]; then
        sr="$(sha256_rate)"
        printf '%-6s %-10s %10s %10s\n' "$r" sha256 - "$sr"
        sha_sum=$((sha_sum + sr))
    fi
    tp="$(time_pull)"
    printf '%-6s %-10s %10s %10s\n' "$r" llmpm "$tp" "$(mbps "$size" "$tp")"
    curl_total="$(awk -v a="$curl_total" -v b="$tc" 'BEGIN { print a + b }')"
    pull_total="$(awk -v a="$pull_total" -v b="$tp" 'BEGIN { print a + b }')"
done
curl_rate="$(mbps $((size * rounds)) "$curl_total")"
pull_rate="$(mbps $((size * rounds)) "$pull_total")"
file_rate="$(mbps $((size * rounds)) "$file_total")"
ratio="$(awk -v a="$curl_total" -v b="$pull_total" 'BEGIN { printf "%.2f", a / b }')"
ratio_file="$(awk -v a="$file_total" -v b="$pull_total" 'BEGIN { printf "%.2f", a / b }')"
echo
echo "curl  (blob to /dev/null):              $curl_rate MB/s"
echo "curl  (blob to a file, then fsync):     $file_rate MB/s"
echo "llmpm (pull: verify + store, defaults${main_env[*]:+, ${main_env[*]}}): $pull_rate MB/s"
echo "ratio llmpm/curl:           $ratio   (target ≥ 0.90)"
echo "ratio llmpm/(curl + fsync):  $ratio_file   (same durability as a pull)"
if [[ $have_skopeo == 1 ]]; then
    skopeo_rate="$(mbps $((size * rounds)) "$skopeo_total")"
    echo "skopeo copy (verifies, to dir:):        $skopeo_rate MB/s"
    echo "ratio llmpm/skopeo:         $(awk -v a="$skopeo_total" -v b="$pull_total" 'BEGIN { printf "%.2f", a / b }')   (target ≥ 1.00)"
fi
if [[ $have_openssl == 1 ]]; then
    sha_rate=$((sha_sum / rounds))
    echo "llmpmd CPU per pull: $(awk '{ s += $1; n++ } END { printf "%.2f", s / n }' "$tmp/pull-cpu") s (one SHA-256 pass alone: $(awk -v b="$size" -v r="$sha_rate" 'BEGIN { printf "%.2f", b / r / 1e6 }') s)"
    floor="$(awk -v f="$file_rate" -v s="$sha_rate" 'BEGIN { print (f < s ? f : s) }')"
    echo "sha256 (openssl speed -evp sha256):     $sha_rate MB/s"
    echo "ratio llmpm/min(curl + fsync, sha256): $(awk -v p="$pull_rate" -v m="$floor" 'BEGIN { printf "%.2f", p / m }')   (target ≥ 0.90; min = $floor MB/s)"
fi

if [[ "${BENCH_SWEEP:-1}" != 0 ]]; then
    echo
    echo "== sweep (LLMPM_PULL_PART_SIZE × LLMPM_PULL_CONCURRENCY; one pull each, ratio to the curl mean above)"
    printf '%-10s %-12s %10s %10s %8s\n' part_size concurrency seconds MB/s ratio
    curl_mean="$(awk -v a="$curl_total" -v n="$rounds" 'BEGIN { print a / n }')"
    for ps in $part_sizes; do
        for c in $concurrencies; do
            start_daemon "LLMPM_PULL_PART_SIZE=$(bytes_of "$ps")" "LLMPM_PULL_CONCURRENCY=$c"
            tp="$(time_pull)"
            printf '%-10s %-12s %10s %10s %8s\n' "$ps" "$c" "$tp" "$(mbps "$size" "$tp")" \
                "$(awk -v a="$curl_mean" -v b="$tp" 'BEGIN { printf "%.2f", a / b }')"
        done
    done
fi
limit="${BENCH_LIMIT:-50M}"
if [[ "$limit" != 0 ]]; then
    lsize=$(( ${BENCH_LIMIT_MIB:-1024} * 1024 * 1024 ))
    say "== bandwidth limit: two ${BENCH_LIMIT_MIB:-1024} MiB models at LLMPM_MAX_DOWNLOAD_SPEED=$limit"
    limited=()
    for m in a b; do
        head -c "$lsize" /dev/urandom >"$tmp/weights"
        l="$(upload_blob "bench/$m" "$tmp/weights")"
        rm -f "$tmp/weights"
        c="$(upload_blob "bench/$m" "$tmp/config.json")"
        printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"%s","size":%s}]}' \
            "$manifest_type" "$c" "$config_size" "$l" "$lsize" >"$tmp/manifest.json"
        curl -sf -o /dev/null -X PUT -H "Content-Type: $manifest_type" \
            --data-binary "@$tmp/manifest.json" "$reg/v2/bench/$m/manifests/v1" || die "manifest PUT failed"
        limited+=("127.0.0.1:$rport/bench/$m:v1")
    done
    start_daemon "LLMPM_MAX_DOWNLOAD_SPEED=$limit"
    rate="$(bytes_of "$limit")"
    expect="$(awk -v b="$lsize" -v r="$rate" 'BEGIN { printf "%.1f", b / r }')"
    model="${limited[0]}"
    t1="$(time_pull)"
    echo
    echo "one pull, $lsize bytes at $limit:        $t1 s   (at exactly the limit: $expect s; issue 18: 20–22 s)"
    t0="$(now)"
    pids=()
    for m in "${limited[@]}"; do
        cli pull "$m" --insecure >"$tmp/pull-${#pids[@]}.out" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || die "a concurrent pull failed: $(tail -3 "$tmp"/pull-*.out)"
    done
    t2="$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')"
    echo "two pulls at once, $((2 * lsize)) bytes:  $t2 s   (sharing the limit: $(awk -v e="$expect" 'BEGIN { printf "%.1f", 2 * e }') s; aggregate $(mbps $((2 * lsize)) "$t2") MB/s, limit $(mbps "$rate" 1) MB/s)"
    for m in "${limited[@]}"; do cli rm "$m" >/dev/null 2>&1 || true; done
fi
stop_daemon
