#!/usr/bin/env bash
# Runs one fuzz target on one core: fuzz/run.sh TARGET [SECONDS] (default 600).
# TARGET: otlp_protobuf | otlp_json | query_params. See docs/fuzzing.md.
#
# New corpus entries go to fuzz/target/corpus/TARGET (not committed); the committed seeds in
# fuzz/corpus/TARGET are read too. A crash is written to fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"

target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-600}
case "$target" in
  otlp_protobuf | otlp_json) max_len=16384 ;;
  query_params) max_len=1024 ;;
  *) echo "unknown target $target (otlp_protobuf, otlp_json, query_params)" >&2; exit 2 ;;
esac

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo fuzz passes nightly-only flags (-Z sanitizer); the project's toolchain is stable.
export RUSTC_BOOTSTRAP=1
# The bundled SQLite amalgamation defines a static table twice, which AddressSanitizer's
# one-definition-rule check reports before the first input; it is not a memory error.
export ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
scratch="target/corpus/$target"
mkdir -p "$scratch"
# --debug-assertions: overflow checks and debug_assert! on, as in the tests.
exec cargo fuzz run --debug-assertions --target-dir "${CARGO_TARGET_DIR:-target}" \
  "$target" "$scratch" "corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1
