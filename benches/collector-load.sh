#!/usr/bin/env bash
# The collector's load benchmark (issue 9), one command: builds `headlight` and the decode-only
# floor in release, then runs benches/src/bin/collector_load.rs, which starts each as its own
# process, drives it with `headlight loadgen`'s generator at fixed rates and at saturation, and
# prints CPU µs per span, cores and peak RSS read from /proc. Extra arguments go to the driver,
# e.g. `benches/collector-load.sh --rates 10000 --duration-s 60`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p headlight-collector -p headlight-benches --bins
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/collector_load" \
  --headlight "$target/release/headlight" --sink "$target/release/decode_sink" "$@"
