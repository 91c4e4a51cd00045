#!/usr/bin/env bash
# The controller at scale (issue 16, point 5): one cbk controller applying a backup, a restore
# and a restore with --target over N emulated hosts of the test cluster (one real sshd per host,
# Python Cassandra emulator, tiny data), for each N in BENCH_HOSTS (default "10 50 200").
# For every apply it records the controller's peak RSS (GNU time's maxrss), its peak open
# descriptors and the peak number of ssh client processes of the cluster (sampled from /proc by
# benches/procstat.py every 50 ms), its CPU time, the wall time and the load average.
# The cluster is torn down after each N. Needs root (cluster.sh); prints Markdown rows.
#
#   bash benches/controller_scale.sh                  # BENCH_HOSTS="10 50 200" BENCH_PARALLELISM=10
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export CBK_TEST_HOME=${CBK_TEST_HOME:-$REPO/target/cbk-test}
HOSTS_LIST=${BENCH_HOSTS:-10 50 200}
PAR=${BENCH_PARALLELISM:-10}
VENV=$CBK_TEST_HOME/venv
PROFILE=${BENCH_PROFILE:-release}
if [ -n "${BENCH_CBK:-}" ]; then CBK=$BENCH_CBK   # an already built binary
else
  if [ "$PROFILE" = release ]; then cargo build --release --quiet --bin cbk; else cargo build --quiet --bin cbk; fi
  CBK=${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE/cbk
fi
WORK=$(mktemp -d /tmp/cbk-scale.XXXXXX)
BASE=
SERVER_PID=
cleanup() {
  [ -z "$BASE" ] || bash tests/infra/cluster.sh down --base "$BASE" || true
  [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
  [ ! -f "$WORK/garage/garage.pid" ] || bash tests/infra/s3/garage.sh stop "$WORK/garage" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the S3 server: Garage when built, else moto ---------------------------------------------
if GARAGE=$(bash tests/infra/s3/garage.sh bin 2>/dev/null); then
  bash tests/infra/s3/garage.sh start "$WORK/garage" >/dev/null
  # shellcheck disable=SC1091
  . "$WORK/garage/env"
  ENDPOINT=$GARAGE_ENDPOINT; AK=$GARAGE_ACCESS_KEY; SK=$GARAGE_SECRET_KEY
  SERVER="garage $("$GARAGE" --version 2>/dev/null | head -1 | awk '{print $2}')"
else
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
  SERVER_PID=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do sleep 0.1; done
  ENDPOINT=http://127.0.0.1:$PORT; AK=bench; SK=benchsecret
  SERVER="moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
fi
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_DEFAULT_REGION=us-east-1
export CBK_BENCH_KEY_ID=$AK CBK_BENCH_SECRET=$SK NO_COLOR=1
"$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3 mb s3://scale >/dev/null

TABLE_ID=5a1f6c10-0000-11f1-8000-0000000000aa
plan_file() { # file, hosts, kind body, bucket prefix
  local hosts; hosts=$(seq 1 "$2" | sed 's/.*/"node&"/' | paste -sd, -)
  cat > "$1" <<EOF
version = 1
$3
[cluster]
name = "scale"
hosts = [$hosts]
[connection]
transport = "ssh"
ssh_config = "$BASE/ssh_config"
known_hosts_file = "$BASE/known_hosts"
connect_timeout = "30s"
agent_path = "$CBK"
[cassandra]
cqlsh = "cqlsh"
stop = "cassandra-emu stop"
start = "cassandra-emu start"
[storage]
url = "s3://scale/$4"
endpoint = "$ENDPOINT"
region = "us-east-1"
path_style = true
access_key_id_env = "CBK_BENCH_KEY_ID"
secret_access_key_env = "CBK_BENCH_SECRET"
[limits]
parallelism = $PAR
EOF
}

# ssh logins the cluster's sshds accepted so far (one per master the controller opened).
logins() { cat "$BASE"/hosts/*/sshd.log 2>/dev/null | grep -c 'Accepted publickey' || true; }

# One apply under GNU time and the sampler; prints a Markdown row. Args: label, hosts, log, cbk args...
measure() {
  local label=$1 n=$2 log=$3; shift 3
  local t0; t0=$(date +%s.%N)
  local logins0; logins0=$(logins)
  /usr/bin/time -o "$log.time" -f '%M %U %S %e' "$CBK" "$@" >"$log" 2>&1 &
  local tpid=$! pid=
  for _ in $(seq 1 200); do pid=$(pgrep -P "$tpid" || true); [ -n "$pid" ] && break; sleep 0.01; done
  local stats='{}'
  if [ -n "$pid" ]; then stats=$(python3 benches/procstat.py "$pid" "$BASE/ssh_config"); fi
  local rc=0; wait "$tpid" || rc=$?
  local finished; finished=$(grep -c '"event":"task_finished"' "$log" || true)
  python3 - "$label" "$n" "$rc" "$(tail -1 "$log.time")" "$stats" "$finished" "$(( $(logins) - logins0 ))" <<'PY'
import json, sys
label, n, rc, tm, st, finished, logins = sys.argv[1:]
maxrss, user, sys_, wall = tm.split()
st = json.loads(st)
print(f"| {label} | {n} | {rc} | {finished} | {float(wall):.1f} | {float(user) + float(sys_):.2f} "
      f"| {int(maxrss) / 1024:.1f} | {st.get('fds', '?')} | {st.get('ssh', '?')} | {st.get('threads', '?')} "
      f"| {logins} | {st.get('load_start', '?')} / {st.get('load_end', '?')} |")
PY
  if [ "$rc" != 0 ]; then grep -m5 '"event":"error"' "$log" >&2 || tail -5 "$log" >&2; fi
}

echo "Server: $SERVER; cbk ${BENCH_CBK:-$PROFILE build}; limits.parallelism = $PAR; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| apply | hosts | exit | tasks | wall s | CPU s (user+sys) | peak RSS MiB | peak fds | peak ssh processes | peak threads | ssh logins | load avg start / end |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for N in $HOSTS_LIST; do
  BASE=$WORK/cluster-$N
  t0=$(date +%s.%N)
  bash tests/infra/cluster.sh up --base "$BASE" --hosts "$N" >/dev/null
  t_up=$(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$t0")
  sshd_kib=$(ps -o rss= -C sshd -o args= | awk -v b="$BASE/" 'index($0, b) {s += $1} END {print s + 0}')
  # Every node: a tiny keyspace (one table, one flushed sstable), four at a time.
  t0=$(date +%s.%N)
  while read -r name addr; do echo "$name $addr"; done < "$BASE/hosts.txt" | xargs -P 4 -L 1 sh -c '
    ssh -F "$0/ssh_config" "$1" "chown cassandra:cassandra /etc/cassandra /var/lib/cassandra && \
      cassandra-emu init --force --version 4.1 --data-root /var/lib/cassandra --data-dirs 1 --cluster scale --listen-address $2 >/dev/null && \
      cassandra-emu start >/dev/null && \
      cassandra-emu cql \"CREATE KEYSPACE bench WITH replication = {'"'"'class'"'"': '"'"'SimpleStrategy'"'"', '"'"'replication_factor'"'"': 1}; CREATE TABLE bench.t (id uuid PRIMARY KEY, v text) WITH ID = '"$TABLE_ID"'\" >/dev/null && \
      cassandra-emu write bench t --rows 10 >/dev/null && nodetool flush bench >/dev/null"' "$BASE"
  t_init=$(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$t0")
  echo "<!-- $N hosts: cluster.sh up ${t_up} s, sshd listeners $((sshd_kib / 1024)) MiB RSS in all, node init ${t_init} s -->"

  plan_file "$WORK/backup-$N.toml" "$N" 'kind = "backup"
[backup]
name = "scale-{{ now | strftime('"'"'%Y%m%dT%H%M%SZ'"'"') }}"
include = ["bench.*"]' "n$N"
  plan_file "$WORK/restore-$N.toml" "$N" 'kind = "restore"
[restore]
source = "latest"
method = "restart"
include = ["bench.*"]
repair = false' "n$N"
  measure backup "$N" "$WORK/backup-$N.log" apply "$WORK/backup-$N.toml" --yes --now 2026-05-01T00:00:00Z \
    --state "$WORK/state-b-$N" --progress json
  measure restore "$N" "$WORK/restore-$N.log" apply "$WORK/restore-$N.toml" --yes --now 2026-05-01T01:00:00Z \
    --state "$WORK/state-r-$N" --progress json
  # --target: the restore of one node (the plan still covers all N; only node1's chain runs).
  measure "restore --target 'cleanup[node1]'" "$N" "$WORK/restore-t-$N.log" apply "$WORK/restore-$N.toml" --yes \
    --now 2026-05-01T02:00:00Z --state "$WORK/state-t-$N" --progress json --target 'cleanup[node1]'
  bash tests/infra/cluster.sh down --base "$BASE"
  rm -rf "$BASE"
  BASE=
done
