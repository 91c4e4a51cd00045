#!/usr/bin/env bash
# Measured recovery time (issue 16, point 4): a 3-node emulated cluster (real sshd per host,
# Python Cassandra 4.1 emulator) restored from Garage (moto when Garage is not built) by a release
# cbk, with the Node Restart Method and a full repair (`-full`: an incremental repair would mark
# every restored sstable repaired, rewriting its Statistics.db, so the delta restore that follows
# would find every sstable changed):
#   1. each node holds BENCH_SSTABLES sstables whose Data.db are BENCH_SSTABLE_MIB MiB of random
#      bytes (incompressible, like Cassandra's LZ4 data); cbk backs them up;
#   2. one sstable of node1 in 20 (5%) changes; a full restore (`delta = false`) of all 3 nodes:
#      wall time per phase (resolve, fetch, match, stop -> start, wait_up, repair, cleanup) from
#      the `--progress json` events, MiB/s per node (staged bytes / fetch[HOST] time), CPU time
#      of the controller (GNU time), of the agents (a wrapper at agent_path) and of the server;
#   3. `rclone copy` of the same stored bytes (nodes/<host id>/sst/, one rclone per node at once,
#      4 transfers each like `file_concurrency = 4`);
#   4. node1 changes again; the same restore with `delta = true`;
#   5. the write speed of the disk (dd, 1 GiB, fdatasync), for the projection.
# Prints Markdown for BENCHMARKS.md. Needs root (cluster.sh).
#
#   bash benches/recovery.sh        # BENCH_SSTABLES=20 BENCH_SSTABLE_MIB=32
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export CBK_TEST_HOME=${CBK_TEST_HOME:-$REPO/target/cbk-test}
N=${BENCH_SSTABLES:-20}
MIB=${BENCH_SSTABLE_MIB:-32}
VENV=$CBK_TEST_HOME/venv
# shellcheck source=benches/lib.sh
. "$REPO/benches/lib.sh"
bench_cbk
WORK=$(mktemp -d /tmp/cbk-recovery.XXXXXX)
BASE=$WORK/cluster
cleanup() {
  bash tests/infra/cluster.sh down --base "$BASE" || true
  stop_s3 "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the S3 server: Garage when built, else moto ---------------------------------------------
start_s3 "$WORK"
export NO_COLOR=1
"$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3 mb s3://recovery >/dev/null
rclone_env

# --- the cluster: 3 hosts, 2 data folders each, N big sstables per node --------------------------
bash tests/infra/cluster.sh up --base "$BASE" --hosts 3 >/dev/null
on() { ssh -F "$BASE/ssh_config" "$@"; }
i=0
while read -r name addr; do
  i=$((i + 1))
  on "$name" "chown cassandra:cassandra /etc/cassandra /var/lib/cassandra && \
    cassandra-emu init --force --version 4.1 --data-root /var/lib/cassandra --data-dirs 2 --cluster recovery \
      --listen-address $addr --rack rack$i >/dev/null && cassandra-emu start >/dev/null && \
    cassandra-emu cql \"CREATE KEYSPACE bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}; \
      CREATE TABLE bench.events (id uuid PRIMARY KEY, body blob) WITH ID = 5a1f6c10-0000-11f1-8000-0000000000bb\" >/dev/null && \
    cassandra-emu write bench events --rows 10 >/dev/null && nodetool flush bench >/dev/null" </dev/null
  python3 benches/clone_sstables.py "$BASE/hosts/$name/data" "$N" $((MIB << 20))
  on "$name" 'cassandra-emu stop >/dev/null && cassandra-emu start >/dev/null' </dev/null
done < "$BASE/hosts.txt"
NODE_BYTES=$(du -sb --apparent-size "$BASE"/hosts/node1/data/data*/bench | awk '{s+=$1} END {print s}')

# The agent runs through a wrapper that records "host start elapsed user sys" (its CPU time,
# from GNU time) in one file per call.
AGENT=$WORK/cbk-agent
mkdir -p "$WORK/agents"
cat > "$AGENT" <<EOF
#!/bin/sh
log=$WORK/agents/\$\$
printf '%s %s ' "\$(hostname)" "\$(date +%s.%N)" > "\$log"
exec /usr/bin/time -a -o "\$log" -f '%e %U %S' "$CBK" "\$@"
EOF
chmod 0755 "$AGENT"

plan_file() { # file, kind body
  cat > "$1" <<EOF
version = 1
$2
[cluster]
name = "recovery"
hosts = ["node1", "node2", "node3"]
[connection]
transport = "ssh"
ssh_config = "$BASE/ssh_config"
known_hosts_file = "$BASE/known_hosts"
agent_path = "$AGENT"
[cassandra]
cqlsh = "cqlsh"
stop = "cassandra-emu stop"
start = "cassandra-emu start"
[storage]
url = "s3://recovery/cbk"
endpoint = "$ENDPOINT"
region = "us-east-1"
path_style = true
access_key_id_env = "CBK_BENCH_KEY_ID"
secret_access_key_env = "CBK_BENCH_SECRET"
[limits]
file_concurrency = 4
EOF
}
plan_file "$WORK/backup.toml" 'kind = "backup"
[backup]
name = "rec-{{ now | strftime('"'"'%Y%m%dT%H%M%SZ'"'"') }}"
include = ["bench.*"]'
for delta in false true; do
  plan_file "$WORK/restore-$delta.toml" "kind = \"restore\"
[restore]
source = \"latest\"
method = \"restart\"
include = [\"bench.*\"]
repair = true
repair_options = [\"-full\"]
delta = $delta"
done

apply() { # name, plan, now: JSON events in WORK/name.log, GNU time in WORK/name.time
  rm -f "$WORK"/agents/*
  local c0; c0=$(server_cpu)
  /usr/bin/time -o "$WORK/$1.time" -f '%M %U %S %e' "$CBK" apply "$2" --yes --now "$3" \
    --state "$WORK/state-$1" --progress json > "$WORK/$1.log" 2>&1 \
    || { grep '"event":"error"' "$WORK/$1.log" >&2 || tail -20 "$WORK/$1.log" >&2; exit 1; }
  echo "$(python3 -c "import sys; print(float(sys.argv[2])-float(sys.argv[1]))" "$c0" "$(server_cpu)")" > "$WORK/$1.server"
  for f in "$WORK"/agents/*; do tr '\n' ' ' < "$f"; echo; done > "$WORK/$1.agents"
  echo "$(cut -d' ' -f1 /proc/loadavg)" > "$WORK/$1.load"
}
# One sstable of node1 in 20 changes: its Data.db grows by 6 bytes (the Digest no longer matches
# the backup's); for N = 20 that is one sstable.
change_node1() {
  local k=$(( (N + 19) / 20 ))
  on node1 "for f in \$(ls /var/lib/cassandra/data*/bench/events-*/nb-1[0-9][0-9][0-9]-big-Data.db | sort | head -$k); do printf damage >> \$f; done" </dev/null
}
drop_displaced() { for h in node1 node2 node3; do on "$h" 'rm -rf /var/lib/cassandra/cbk-staging' </dev/null; done; }

apply backup "$WORK/backup.toml" 2026-05-01T00:00:00Z
change_node1
apply full "$WORK/restore-false.toml" 2026-05-01T01:00:00Z
drop_displaced

# rclone copy of the same stored bytes, one rclone per node at once.
IDS=$("$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3 ls s3://recovery/cbk/nodes/ | awk '{print $2}' | tr -d /)
t0=$(now); c0=$(server_cpu); RCLONES=()
for id in $IDS; do
  /usr/bin/time -o "$WORK/rclone-$id.time" -f '%M %U %S %e' env -u AWS_CA_BUNDLE rclone copy --transfers 4 \
    "bench:recovery/cbk/nodes/$id/sst" "$WORK/rclone/$id" 2>"$WORK/rclone-$id.err" &
  RCLONES+=($!)
done
wait "${RCLONES[@]}"   # not a bare `wait`: moto is a background job of this script too
T_RCLONE=$(since "$t0")
RCLONE_SERVER_CPU=$(python3 -c "import sys; print(float(sys.argv[2])-float(sys.argv[1]))" "$c0" "$(server_cpu)")
RCLONE_LOAD=$(cut -d' ' -f1 /proc/loadavg)
RCLONE_BYTES=$(du -sb --apparent-size "$WORK/rclone" | cut -f1)
rm -rf "$WORK/rclone"

change_node1
apply delta "$WORK/restore-true.toml" 2026-05-01T02:00:00Z
drop_displaced

DD=$(dd if=/dev/zero of="$WORK/dd" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1); rm -f "$WORK/dd"

python3 - "$WORK" "$SERVER" "$N" "$MIB" "$NODE_BYTES" "$T_RCLONE" "$RCLONE_SERVER_CPU" "$RCLONE_BYTES" "$RCLONE_LOAD" "$DD" $IDS <<'PY'
import json, sys, re, datetime, glob
work, server, n, mib, node_bytes, t_rc, rc_server, rc_bytes, rc_load, dd = sys.argv[1:11]
MiB = 1 << 20

def ts(s):
    """RFC 3339 UTC with up to 9 fractional digits -> epoch seconds."""
    whole, _, frac = s.rstrip("Z").partition(".")
    t = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + (float("0." + frac) if frac else 0.0)

def load(name):
    events = [json.loads(l) for l in open(f"{work}/{name}.log") if l.startswith("{")]
    maxrss, user, sys_, wall = open(f"{work}/{name}.time").read().split()[-4:]
    # host start [Command exited with non-zero status N] elapsed user sys
    agents = [(l.split()[0], float(l.split()[1]), *map(float, l.split()[-3:]))
              for l in open(f"{work}/{name}.agents") if l.strip()]
    return dict(events=events, rss=int(maxrss) / 1024, cpu=float(user) + float(sys_), wall=float(wall),
                agents=agents, server=float(open(f"{work}/{name}.server").read()),
                load=open(f"{work}/{name}.load").read().strip())

def steps(r):
    """step -> (first start, last end), task address -> (host, start, end)."""
    start, tasks = {}, {}
    for e in r["events"]:
        if e["event"] == "task_started":
            start[e["address"]] = ts(e["at"])
        elif e["event"] == "task_finished" and e["address"] in start:
            tasks[e["address"]] = (e.get("host"), start[e["address"]], ts(e["at"]))
    out = {}
    for a, (h, s, t) in tasks.items():
        step = a.split("[")[0]
        lo, hi = out.get(step, (s, t))
        out[step] = (min(lo, s), max(hi, t))
    return out, tasks

def staged(r, host):
    """(files, bytes) of the fetch[HOST] summary: `N files (B bytes) staged ...`."""
    for e in r["events"]:
        if e["event"] == "run_finished":
            for t in e["tasks"]:
                if t["address"] == f"fetch[{host}]":
                    m = re.search(r"(\d+) files \((\d+) bytes\) staged", t.get("summary", ""))
                    if m:
                        return int(m.group(1)), int(m.group(2))
    return 0, 0

def agent_cpu(r, host, lo, hi):
    """CPU seconds of the agent calls on host that ran inside [lo, hi] (0.05 s slack)."""
    return sum(user + sys_ for h, start, elapsed, user, sys_ in r["agents"]
               if h == host and start >= lo - 0.05 and start + elapsed <= hi + 0.05)

full, delta = load("full"), load("delta")
print(f"Server: {server}; {n} sstables x {mib} MiB Data.db per node ({int(node_bytes) / MiB:.0f} MiB per node, "
      f"3 nodes); disk: {dd}")
print()
print("| phase (wall, first start to last end) | full restore s | delta restore s |")
print("|---|---|---|")
sf, tf = steps(full)
sd, td = steps(delta)
order = ["resolve", "fetch", "match_tables", "stop", "clear_commitlog", "move", "start", "wait_up", "repair", "cleanup"]
for s in order:
    if s in sf or s in sd:
        f = sf.get(s); d = sd.get(s)
        print(f"| {s} | {f[1]-f[0]:.2f} | " + (f"{d[1]-d[0]:.2f} |" if d else "– |"))
for label, a, b in [("stop → start (first stop to last start)", "stop", "start")]:
    print(f"| **{label}** | {sf[b][1]-sf[a][0]:.2f} | {sd[b][1]-sd[a][0]:.2f} |")
print(f"| **whole apply** | {full['wall']:.2f} | {delta['wall']:.2f} |")
print(f"| controller CPU s / peak RSS MiB | {full['cpu']:.2f} / {full['rss']:.0f} | {delta['cpu']:.2f} / {delta['rss']:.0f} |")
print(f"| server ({server.split()[0]}) CPU s | {full['server']:.2f} | {delta['server']:.2f} |")
print(f"| load average at the end | {full['load']} | {delta['load']} |")
print()
print("| node | restore | files staged | MiB staged | fetch s | MiB/s | agent CPU s in fetch | agent CPU s per GiB |")
print("|---|---|---|---|---|---|---|---|")
for name, r, t in [("full", full, tf), ("delta", delta, td)]:
    for h in ["node1", "node2", "node3"]:
        files, b = staged(r, h)
        host, lo, hi = t[f"fetch[{h}]"]
        cpu = agent_cpu(r, h, lo, hi)
        secs = hi - lo
        print(f"| {h} | {name} | {files} | {b / MiB:.1f} | {secs:.2f} | {b / MiB / secs:.1f} | {cpu:.2f} | "
              + (f"{cpu / (b / (1 << 30)):.2f} |" if b else "– |"))
fetch_wall = sf["fetch"][1] - sf["fetch"][0]
total = sum(staged(full, h)[1] for h in ["node1", "node2", "node3"])
print()
print(f"rclone copy of the same stored bytes (3 at once, --transfers 4): {int(rc_bytes) / MiB:.0f} MiB in "
      f"{float(t_rc):.2f} s = {int(rc_bytes) / MiB / float(t_rc):.1f} MiB/s in all, "
      f"{int(rc_bytes) / 3 / MiB / float(t_rc):.1f} MiB/s per node; server CPU {float(rc_server):.2f} s; load {rc_load}")
for f in sorted(glob.glob(f"{work}/rclone-*.time")):
    maxrss, user, sys_, wall = open(f).read().split()[-4:]
    print(f"  rclone {f.split('rclone-')[1][:8]}: wall {float(wall):.2f} s, CPU {float(user) + float(sys_):.2f} s, maxrss {int(maxrss) // 1024} MiB")
print(f"cbk fetch phase (full restore, 3 nodes at once): {total / MiB:.0f} MiB in {fetch_wall:.2f} s = "
      f"{total / MiB / fetch_wall:.1f} MiB/s in all; rclone time / cbk fetch time = {float(t_rc) / fetch_wall:.2f}")

# Projection per TB (10^12 bytes) per node. The fetch moves every byte; the other phases do not
# grow with the data (a real node's start-up and repair are Cassandra's own time).
TB = 10 ** 12
per_node = total / 3 / fetch_wall                      # bytes/s per node, 3 nodes at once here
agent = sum(agent_cpu(full, h, *tf[f"fetch[{h}]"][1:]) for h in ["node1", "node2", "node3"])
cpu_per_gib = agent / (total / (1 << 30))
fixed = full["wall"] - fetch_wall
dd_rate = re.search(r"([\d.]+) ([MG])B/s", dd)
dd_mib = (float(dd_rate.group(1)) * (1000 if dd_rate.group(2) == "G" else 1) * 1e6 / MiB) if dd_rate else 0
print()
print(f"Projection per TB per node: fetch at this run's {per_node / MiB:.1f} MiB/s per node = "
      f"{TB / per_node / 3600:.1f} h (+ {fixed:.0f} s of phases that do not grow with the data); "
      f"one node alone at the three nodes' combined {total / fetch_wall / MiB:.1f} MiB/s = "
      f"{TB / (total / fetch_wall) / 3600:.1f} h.")
print(f"Bounds on this machine: the agents' CPU {cpu_per_gib:.2f} s per GiB fetched "
      f"(download, CRC32, Digest check, write) = {(1 << 30) / cpu_per_gib / MiB:.0f} MiB/s per core; "
      f"disk write (dd, fdatasync) {dd_mib:.0f} MiB/s; rclone over the same loopback "
      f"{int(rc_bytes) / MiB / float(t_rc):.1f} MiB/s in all.")
full_b = sum(staged(full, h)[1] for h in ["node1", "node2", "node3"])
delta_b = sum(staged(delta, h)[1] for h in ["node1", "node2", "node3"])
n1_full, n1_delta = staged(full, "node1")[1], staged(delta, "node1")[1]
print(f"Delta restore: node1 staged {n1_delta / MiB:.1f} of {n1_full / MiB:.1f} MiB "
      f"({100 * n1_delta / n1_full:.1f}%), all nodes {delta_b / MiB:.1f} of {full_b / MiB:.1f} MiB; "
      f"fetch phase {sd['fetch'][1] - sd['fetch'][0]:.2f} s vs {fetch_wall:.2f} s, whole apply "
      f"{delta['wall']:.2f} s vs {full['wall']:.2f} s.")
PY
