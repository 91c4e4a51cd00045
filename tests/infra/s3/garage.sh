#!/usr/bin/env bash
# Garage (a production S3-compatible store from crates.io) for interoperability tests and benchmarks.
#   garage.sh build        install garage 2.5.0 into $CBK_TEST_HOME/garage (about 9 minutes, once)
#   garage.sh bin          print the binary's path (exit 1 when it is not built)
#   garage.sh start DIR    start a single-node server with its data in DIR; writes DIR/env
#                          (GARAGE_ENDPOINT, GARAGE_ACCESS_KEY, GARAGE_SECRET_KEY, GARAGE_PID)
#   garage.sh stop DIR     stop the server started in DIR
# CI does not build garage: tests that need it print a notice and skip when the binary is absent.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
CBK_TEST_HOME=${CBK_TEST_HOME:-$REPO/target/cbk-test}
ROOT=$CBK_TEST_HOME/garage
BIN=$ROOT/bin/garage
# A fixed, test-only key (garage `key import` wants GK + 24 hex digits and 64 hex digits).
ACCESS_KEY=GK0123456789abcdef01234567
SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "${1:-}" in
  build)
    if [ -x "$BIN" ]; then echo "garage: already built ($BIN)"; exit 0; fi
    mkdir -p "$ROOT"
    nice -n 10 cargo install garage@2.5.0 --locked --root "$ROOT"
    ;;
  bin)
    [ -x "$BIN" ] && echo "$BIN"
    ;;
  start)
    DIR=${2:?usage: garage.sh start DIR}
    [ -x "$BIN" ] || { echo "garage: not built (run: bash tests/infra/s3/garage.sh build)" >&2; exit 2; }
    mkdir -p "$DIR/meta" "$DIR/data"
    S3=$(free_port); RPC=$(free_port); ADMIN=$(free_port)
    cat > "$DIR/garage.toml" <<TOML
metadata_dir = "$DIR/meta"
data_dir = "$DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC"
rpc_public_addr = "127.0.0.1:$RPC"
rpc_secret = "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$S3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN"
admin_token = "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
TOML
    G=("$BIN" -c "$DIR/garage.toml")
    RUST_LOG=warn setsid "${G[@]}" server >"$DIR/server.log" 2>&1 </dev/null &
    PID=$!
    echo "$PID" > "$DIR/garage.pid"
    for _ in $(seq 1 100); do
      "${G[@]}" status >/dev/null 2>&1 && break
      sleep 0.1
    done
    ID=$("${G[@]}" node id -q | cut -d@ -f1)
    "${G[@]}" layout assign -z dc1 -c 1G "$ID" >/dev/null
    "${G[@]}" layout apply --version 1 >/dev/null
    "${G[@]}" key import --yes "$ACCESS_KEY" "$SECRET_KEY" -n test >/dev/null
    "${G[@]}" key allow --create-bucket test >/dev/null
    cat > "$DIR/env" <<ENV
GARAGE_ENDPOINT=http://127.0.0.1:$S3
GARAGE_ACCESS_KEY=$ACCESS_KEY
GARAGE_SECRET_KEY=$SECRET_KEY
GARAGE_PID=$PID
ENV
    cat "$DIR/env"
    ;;
  stop)
    DIR=${2:?usage: garage.sh stop DIR}
    if [ -f "$DIR/garage.pid" ]; then
      kill "$(cat "$DIR/garage.pid")" 2>/dev/null || true
      rm -f "$DIR/garage.pid"
    fi
    ;;
  *)
    sed -n '2,9p' "$0"; exit 2 ;;
esac
