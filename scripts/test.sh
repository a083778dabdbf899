#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test of the
# workspace. Privileged tests start real containers; they skip with a message when the host
# cannot run them, unless PALISADE_REQUIRE_PRIVILEGED=1 (set by .ci/run) makes a skip fail.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo prints one per binary, the last of which is
# often an empty doc-test run).
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "summary: %d passed, %d failed, %d ignored\n", p, f, i }' "$log"
exit "$status"
