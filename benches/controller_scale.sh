#!/usr/bin/env bash
# The controller at scale (issue 16, point 5): one cbk controller applying a backup, a restore
# and a restore with --target over N emulated hosts of the test cluster (one real sshd per host,
# Python Cassandra emulator, tiny data), for each N in BENCH_HOSTS (default "10 50 200").
# For every apply it records the controller's peak RSS (GNU time's maxrss), its peak open
# descriptors and the peak number of ssh client processes of the cluster (sampled from /proc by
# benches/procstat.py every 50 ms), its CPU time, the wall time and the load average.
# The cluster is torn down after each N. Needs root (cluster.sh); prints Markdown rows.
#
#   bash benches/controller_scale.sh   # BENCH_HOSTS="10 50 200" BENCH_PARALLELISM=10 BENCH_INIT_JOBS=8 BENCH_TARGET=1
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export CBK_TEST_HOME=${CBK_TEST_HOME:-$REPO/target/cbk-test}
HOSTS_LIST=${BENCH_HOSTS:-10 50 200}
PAR=${BENCH_PARALLELISM:-10}
VENV=$CBK_TEST_HOME/venv
# shellcheck source=benches/lib.sh
. "$REPO/benches/lib.sh"
bench_cbk
WORK=$(mktemp -d /tmp/cbk-scale.XXXXXX)
BASE=
cleanup() {
  [ -z "$BASE" ] || bash tests/infra/cluster.sh down --base "$BASE" || true
  stop_s3 "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the S3 server: Garage when built, else moto ---------------------------------------------
start_s3 "$WORK"
export NO_COLOR=1
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

# Sets up the emulated node of host $1 (address $2): one ssh login and one Python start-up
# (benches/emu_batch.py) instead of one per emulator command.
init_host() {
  local cql="CREATE KEYSPACE bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}; \
CREATE TABLE bench.t (id uuid PRIMARY KEY, v text) WITH ID = $TABLE_ID"
  ssh -F "$BASE/ssh_config" "$1" "chown cassandra:cassandra /etc/cassandra /var/lib/cassandra && python3 - $(printf '%q ' \
    "init --force --version 4.1 --data-root /var/lib/cassandra --data-dirs 1 --cluster scale --listen-address $2" \
    start "cql \"$cql\"" "write bench t --rows 10" "flush bench") >/dev/null" < "$REPO/benches/emu_batch.py"
}
export -f init_host
export REPO TABLE_ID

# ssh logins the cluster's sshds accepted so far (one per master the controller opened).
logins() { cat "$BASE"/hosts/*/sshd.log 2>/dev/null | grep -c 'Accepted publickey' || true; }

# One apply under GNU time and the sampler; prints a Markdown row. Args: label, hosts, log, cbk args...
measure() {
  local label=$1 n=$2 log=$3; shift 3
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

echo "Server: $SERVER; cbk $CBK_BUILD; limits.parallelism = $PAR; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| apply | hosts | exit | tasks | wall s | CPU s (user+sys) | peak RSS MiB | peak fds | peak ssh processes | peak threads | ssh logins | load avg start / end |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for N in $HOSTS_LIST; do
  BASE=$WORK/cluster-$N
  t0=$(now)
  bash tests/infra/cluster.sh up --base "$BASE" --hosts "$N" >/dev/null
  t_up=$(since "$t0")
  sshd_kib=$(ps -o rss= -C sshd -o args= | awk -v b="$BASE/" 'index($0, b) {s += $1} END {print s + 0}')
  # Every node: a tiny keyspace (one table, one flushed sstable), BENCH_INIT_JOBS hosts at a time.
  t0=$(now)
  export BASE
  xargs -P "${BENCH_INIT_JOBS:-8}" -L 1 bash -c 'init_host "$@"' _ < "$BASE/hosts.txt"
  t_init=$(since "$t0")
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
  # --target: the restore of one node (the plan still covers all N; only node1's chain runs);
  # BENCH_TARGET=0 skips it.
  [ "${BENCH_TARGET:-1}" = 0 ] || measure "restore --target 'cleanup[node1]'" "$N" "$WORK/restore-t-$N.log" apply "$WORK/restore-$N.toml" --yes \
    --now 2026-05-01T02:00:00Z --state "$WORK/state-t-$N" --progress json --target 'cleanup[node1]'
  bash tests/infra/cluster.sh down --base "$BASE"
  rm -rf "$BASE"
  BASE=
done
