#!/usr/bin/env bash
# The one command that passes the tests (README "set-up command 2"; .ci/run calls exactly this).
# Installs what the tests need, checks formatting and lints, runs every test, cleans up.
# The emulator's own Python tests run alongside the lint build; cargo's test run comes last.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/infra/setup.sh
mkdir -p target/cbk-test
python3 -m unittest discover -s tests/emulator -p 'test_*.py' > target/cbk-test/emulator-tests.log 2>&1 &
EMU_PID=$!
trap 'kill "$EMU_PID" 2>/dev/null || true' EXIT
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
if wait "$EMU_PID"; then emu=0; else emu=$?; fi
tail -n 4 target/cbk-test/emulator-tests.log
[ "$emu" -eq 0 ] || { echo "emulator tests failed (target/cbk-test/emulator-tests.log)"; exit 1; }
# cargo's status is kept, not acted on, so the closing line below is printed also when a test fails.
set +e
cargo test --locked --no-fail-fast 2>&1 | tee target/cbk-test/cargo-test.log
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo's last line belongs to the doc-tests, which are few).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' target/cbk-test/cargo-test.log
exit "$status"
