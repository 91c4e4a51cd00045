# Shared by the shell benchmarks (sourced, not run): the S3 server they measure against
# (Garage when built, else moto), the rclone remote `bench:` on it, the cbk binary under test,
# and small timing helpers. Needs REPO and VENV set by the caller.

# Builds cbk in BENCH_PROFILE (default release) and sets CBK, unless BENCH_CBK names a binary;
# CBK_BUILD says which, for the results.
bench_cbk() {
  local profile=${BENCH_PROFILE:-release}
  if [ -n "${BENCH_CBK:-}" ]; then CBK=$BENCH_CBK; CBK_BUILD="binary $BENCH_CBK"; return; fi
  CBK_BUILD="$profile build"
  if [ "$profile" = release ]; then cargo build --release --quiet --bin cbk; else cargo build --quiet --bin cbk; fi
  CBK=${CARGO_TARGET_DIR:-$REPO/target}/$profile/cbk
}

# Starts the S3 server with its data under DIR: Garage when `garage.sh bin` finds it, else moto.
# Sets ENDPOINT, AK, SK, SERVER (name and version), SERVER_CPU_PID (its process, for CPU time)
# and SERVER_PID (moto only; stop_s3 stops either); exports the AWS_* and CBK_BENCH_* variables
# the plans and the aws CLI use.
start_s3() {
  local dir=$1 garage port
  SERVER_PID=
  if garage=$(bash "$REPO/tests/infra/s3/garage.sh" bin 2>/dev/null); then
    bash "$REPO/tests/infra/s3/garage.sh" start "$dir/garage" >/dev/null
    # shellcheck disable=SC1091
    . "$dir/garage/env"
    ENDPOINT=$GARAGE_ENDPOINT; AK=$GARAGE_ACCESS_KEY; SK=$GARAGE_SECRET_KEY; SERVER_CPU_PID=$GARAGE_PID
    SERVER="garage $("$garage" --version 2>/dev/null | head -1 | awk '{print $2}')"
  else
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    SERVER_PID=$!; SERVER_CPU_PID=$SERVER_PID
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
    ENDPOINT=http://127.0.0.1:$port; AK=bench; SK=benchsecret
    SERVER="moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
  fi
  export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_DEFAULT_REGION=us-east-1
  export CBK_BENCH_KEY_ID=$AK CBK_BENCH_SECRET=$SK
}

# Stops what start_s3 DIR started (for the caller's EXIT trap).
stop_s3() {
  if [ -n "${SERVER_PID:-}" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  if [ -f "$1/garage/garage.pid" ]; then bash "$REPO/tests/infra/s3/garage.sh" stop "$1/garage" || true; fi
}

# The rclone remote `bench:` on the server start_s3 started (path style, no config file).
rclone_env() {
  export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other RCLONE_CONFIG_BENCH_ENDPOINT=$ENDPOINT \
         RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AK RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$SK \
         RCLONE_CONFIG_BENCH_REGION=us-east-1 RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
}

# CPU seconds (user + sys) the S3 server has used so far.
server_cpu() {
  python3 -c "import os,sys; f=open(f'/proc/{sys.argv[1]}/stat').read().rsplit(')',1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf('SC_CLK_TCK'))" "$SERVER_CPU_PID"
}

now() { date +%s.%N; }
# Seconds since T0 (a `now`), two decimals.
since() { python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$1"; }
# MiB/s of BYTES in SECONDS.
rate() { python3 -c "import sys; b,t=float(sys.argv[1]),float(sys.argv[2]); print(f'{b/t/1048576:.1f}')" "$1" "$2"; }
