# Shared by the registry benchmarks (sourced, not run): a temp dir removed on
# exit with the processes in `pids`, free ports, waiting for HTTP, a local
# Debian `docker-registry`, and monolithic blob uploads to it.
# Needs `tmp` set to the temp dir first; sets `reg` (its URL) and `rport`.

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

pids=()
cleanup() {
    local rc=$?
    set +e  # a killed child's status must not stop the cleanup
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() {  # url pid what
    for _ in $(seq 1 400); do
        curl -sf -o /dev/null "$1" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    die "$3 did not start"
}

start_registry() {  # docker-registry binary
    rport="$(free_port)"
    cat >"$tmp/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $tmp/registry
http:
  addr: 127.0.0.1:$rport
EOF
    "$1" serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 &
    pids+=($!)
    reg="http://127.0.0.1:$rport"
    wait_http "$reg/v2/" "$!" "docker-registry"
}

upload_blob() {  # repo file -> prints digest
    local digest loc sep
    digest="sha256:$(sha256sum "$2" | cut -d' ' -f1)"
    loc="$(curl -sf -D - -o /dev/null -X POST "$reg/v2/$1/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')"
    [[ "$loc" == /* ]] && loc="$reg$loc"
    sep='?'; [[ "$loc" == *\?* ]] && sep='&'
    # -T streams the file; --data-binary would read it all into memory.
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
        -T "$2" "$loc${sep}digest=$digest" || die "upload of $2 failed"
    echo "$digest"
}
