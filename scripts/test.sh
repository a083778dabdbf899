#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test of the
# workspace. Privileged tests start real containers; they skip with a message when the host
# cannot run them, unless PALISADE_REQUIRE_PRIVILEGED=1 (set by .ci/run) makes a skip fail.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
cargo test --workspace --locked --no-fail-fast "$@"
