#!/usr/bin/env bash
# The soak procedure (issue 10), one command: builds `headlight` and the soak's agent process in
# release, then runs benches/src/bin/soak.rs: 10 minutes of `headlight loadgen` and restarting
# agents against a collector stopped once by SIGTERM and once by SIGKILL, then conservation per
# source and the collector's memory per lifetime (docs/soak.md). Exits non-zero on a violation.
# Extra arguments go to the driver, e.g. `benches/soak.sh --duration-s 120 --rate 2000`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p headlight-collector -p headlight-benches --bins
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/soak" \
  --headlight "$target/release/headlight" --agent "$target/release/soak_agent" "$@"
