#!/usr/bin/env bash
# The one command that passes the tests (README "set-up command 2"; .ci/run calls exactly this).
# Installs what the tests need, checks formatting and lints, runs every test, cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/infra/setup.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --no-fail-fast 2>&1 | tee target/cbk-test/cargo-test.log
python3 -m unittest discover -s tests/emulator -p 'test_*.py' -q
