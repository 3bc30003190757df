#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (see fuzz/Cargo.toml), each for a
# fixed time: CI gives each 20 s (.ci/run); on demand, hours:
#
#   bench/fuzz-all.sh [SECONDS_PER_TARGET=3600] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# The growing corpus is kept in fuzz/corpus/<target> (not committed; the
# committed seeds are fuzz/seeds/<target>); a crash is written to
# fuzz/artifacts/<target>/ and, reproduced with `cargo +nightly fuzz run
# <target> <file>`, becomes a regression test in the normal suite.
# Prints per target: runs, seconds, corpus size; exits 1 if any crashed.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-3600}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
# No sanitizer by default (a shorter build and faster runs; safe Rust checks
# bounds anyway); FUZZ_SANITIZER=address for long runs (the mmap code is unsafe).
san=(--sanitizer "${FUZZ_SANITIZER:-none}")
cargo +nightly fuzz build -O --debug-assertions "${san[@]}" || exit 1
bin_dir="target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
failed=()
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="logs/$t.log"
  start=$(date +%s)
  # The binary the build above made, run directly: `cargo fuzz run` would
  # rebuild first whenever a source changed since (minutes per target here).
  if "$bin_dir/$t" "corpus/$t" "seeds/$t" \
    -artifact_prefix="artifacts/$t/" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=262144 \
    -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  echo "$t: $status, ${runs:-?} runs in $(($(date +%s) - start)) s, corpus $(ls "corpus/$t" | wc -l) files (log fuzz/$log)"
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
