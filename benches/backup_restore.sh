#!/usr/bin/env bash
# Backup and restore throughput of cbk against the standard tools, in one run, on the same files
# and the same S3 server (Garage when built, else moto):
#   1. cbk backup of a snapshot of BENCH_SSTABLES sstables of BENCH_SSTABLE_MIB MiB each (random
#      Data.db, like Cassandra's already-compressed data) from an emulated node (local transport)
#   1b. the same backup with client-side encryption (`[encryption] recipients`, one age X25519
#      recipient) into another prefix: the encryption overhead, same files, same server
#   2. `rclone copy` and `aws s3 cp --recursive` (boto3's s3transfer, Medusa's upload path) of the
#      same snapshot folders
#   3. the raw ceiling: the same files through cbk's S3 store alone (examples/raw_put.rs)
#   4. a repeat backup of BENCH_COMPONENTS small unchanged components (target < 3 s, 0 bytes)
#   5. cbk restore (Node Restart Method) download throughput vs `rclone copy` from the server
# Results are printed as Markdown rows for BENCHMARKS.md.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
MIB=${BENCH_SSTABLE_MIB:-256}
N=${BENCH_SSTABLES:-8}
COMPONENTS=${BENCH_COMPONENTS:-10000}
CBK_TEST_HOME=${CBK_TEST_HOME:-$REPO/target/cbk-test}
VENV=$CBK_TEST_HOME/venv
EMU=$REPO/tests/emulator/bin
# shellcheck source=benches/lib.sh
. "$REPO/benches/lib.sh"

PROFILE=${BENCH_PROFILE:-release}   # `debug` for a quick functional check of this script
if [ "$PROFILE" = release ]; then cargo build --release --quiet --bin cbk --example raw_put
else cargo build --quiet --bin cbk --example raw_put; fi
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
CBK=$TARGET/$PROFILE/cbk
RAW=$TARGET/$PROFILE/examples/raw_put
WORK=$(mktemp -d /tmp/cbk-bench.XXXXXX)
cleanup() {
  CASSANDRA_CONF=$WORK/conf "$EMU/cassandra-emu" stop >/dev/null 2>&1 || true
  CASSANDRA_CONF=$WORK/conf2 "$EMU/cassandra-emu" stop >/dev/null 2>&1 || true
  stop_s3 "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the S3 server ---------------------------------------------------------------------------
start_s3 "$WORK"
AWS=("$VENV/bin/aws" --endpoint-url "$ENDPOINT")
"${AWS[@]}" s3 mb s3://bench >/dev/null
rclone_env
RCLONE=(env -u AWS_CA_BUNDLE rclone --s3-no-head --s3-chunk-size 16M --s3-upload-concurrency 4 --transfers 4)

# --- an emulated node with big sstables ----------------------------------------------------------
node_init() { # conf dir, data root
  CASSANDRA_CONF=$1 "$EMU/cassandra-emu" init --force --version 4.1 --data-root "$2" --data-dirs 2 >/dev/null
  CASSANDRA_CONF=$1 "$EMU/cassandra-emu" start >/dev/null
  CASSANDRA_CONF=$1 "$EMU/cassandra-emu" cql "CREATE KEYSPACE bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}" >/dev/null
  CASSANDRA_CONF=$1 "$EMU/cassandra-emu" cql "CREATE TABLE bench.events (id uuid PRIMARY KEY, body blob)" >/dev/null
  CASSANDRA_CONF=$1 "$EMU/cassandra-emu" write bench events --rows 10 >/dev/null
  CASSANDRA_CONF=$1 "$EMU/nodetool" flush bench >/dev/null
}
# clone the flushed sstable COUNT times (generations 1000+); Data.db of SIZE bytes (0 = keep)
clone_sstables() { python3 "$REPO/benches/clone_sstables.py" "$@"; }

plan_file() { # name, conf, kind body
  cat > "$WORK/$1" <<EOF
version = 1
$3
[cluster]
name = "bench"
hosts = ["n1"]
[connection]
transport = "local"
[cassandra]
config = "$2/cassandra.yaml"
nodetool = ["$EMU/nodetool"]
cqlsh = ["$EMU/cqlsh"]
stop = ["$EMU/cassandra-emu", "stop"]
start = ["$EMU/cassandra-emu", "start"]
staging = "$WORK/staging"
[storage]
url = "s3://bench/$4"
endpoint = "$ENDPOINT"
region = "us-east-1"
path_style = true
access_key_id_env = "CBK_BENCH_KEY_ID"
secret_access_key_env = "CBK_BENCH_SECRET"
[limits]
file_concurrency = 4
EOF
}
apply() { # conf, plan, now -> seconds
  local out=$WORK/$2.$3.json
  CASSANDRA_CONF=$1 "$CBK" plan "$WORK/$2" --now "$3" --out "$out" >/dev/null
  local t0; t0=$(now)
  CASSANDRA_CONF=$1 "$CBK" apply "$out" --state "$WORK/state-$2-$3" --progress none > "$WORK/$2.$3.log" 2>&1 \
    || { cat "$WORK/$2.$3.log" >&2; exit 1; }
  since "$t0"
}
task_secs() { # state dir, task prefix
  CASSANDRA_CONF=x "$CBK" state --state "$1" --json | python3 -c "
import json,sys; d=json.load(sys.stdin)
print(sum(t.get('duration_ms',0) for t in d['tasks'] if t['address'].startswith(sys.argv[1]))/1000)" "$2"
}

CONF=$WORK/conf; ROOT=$WORK/node
node_init "$CONF" "$ROOT"
clone_sstables "$ROOT" "$N" $((MIB << 20))
CASSANDRA_CONF=$CONF "$EMU/cassandra-emu" stop >/dev/null; CASSANDRA_CONF=$CONF "$EMU/cassandra-emu" start >/dev/null
BYTES=$(du -sb --apparent-size "$ROOT"/data*/bench | awk '{s+=$1} END {print s}')

# 1. cbk backup
BACKUP_BODY='kind = "backup"
[backup]
name = "b-{{ now | strftime('"'"'%Y%m%dT%H%M%SZ'"'"') }}"
include = ["bench.*"]
system_keyspaces = "none"'
plan_file backup.toml "$CONF" "$BACKUP_BODY" cbk
T_CBK=$(apply "$CONF" backup.toml 2026-05-01T00:00:00Z)
T_UPLOAD=$(task_secs "$WORK/state-backup.toml-2026-05-01T00:00:00Z" "upload[")

# 1b. the same backup, encrypted (a public recipient only: the backup cannot read itself)
ENC_BODY="$BACKUP_BODY
[encryption]
recipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]"
plan_file backup-enc.toml "$CONF" "$ENC_BODY" enc
T_ENC=$(apply "$CONF" backup-enc.toml 2026-05-01T00:30:00Z)
T_ENC_UPLOAD=$(task_secs "$WORK/state-backup-enc.toml-2026-05-01T00:30:00Z" "upload[")

# 2. rclone and aws s3 cp of the same snapshot folders
CASSANDRA_CONF=$CONF "$EMU/nodetool" snapshot -t rc bench >/dev/null
SNAPS=$(ls -d "$ROOT"/data*/bench/events-*/snapshots/rc)
t0=$(now); i=0
for d in $SNAPS; do i=$((i+1)); "${RCLONE[@]}" copy "$d" "bench:bench/rclone/$i" 2>/dev/null; done
T_RCLONE=$(since "$t0")
t0=$(now); i=0
for d in $SNAPS; do i=$((i+1)); "${AWS[@]}" s3 cp --recursive --quiet "$d" "s3://bench/awscli/$i"; done
T_AWS=$(since "$t0")

# 3. raw ceiling through cbk's store alone
# shellcheck disable=SC2046
read -r RAW_BYTES T_RAW < <("$RAW" s3://bench/raw "$ENDPOINT" raw $(find $SNAPS -type f))

# 5. restore (download) vs rclone copy down
RESTORE_BODY='kind = "restore"
[restore]
source = "latest"
include = ["bench.*"]
repair = false'
plan_file restore.toml "$CONF" "$RESTORE_BODY" cbk
T_RESTORE=$(apply "$CONF" restore.toml 2026-05-01T01:00:00Z)
T_FETCH=$(task_secs "$WORK/state-restore.toml-2026-05-01T01:00:00Z" "fetch[")
t0=$(now)
"${RCLONE[@]}" copy bench:bench/rclone "$WORK/rclone-down" 2>/dev/null
T_RCLONE_DOWN=$(since "$t0")

# 4. repeat backup of many small unchanged components
CONF2=$WORK/conf2; ROOT2=$WORK/node2
CASSANDRA_CONF=$CONF "$EMU/cassandra-emu" stop >/dev/null
node_init "$CONF2" "$ROOT2"
clone_sstables "$ROOT2" $((COMPONENTS / 8)) 0
CASSANDRA_CONF=$CONF2 "$EMU/cassandra-emu" stop >/dev/null; CASSANDRA_CONF=$CONF2 "$EMU/cassandra-emu" start >/dev/null
NFILES=$(find "$ROOT2"/data*/bench -type f | wc -l)
plan_file small.toml "$CONF2" "$BACKUP_BODY" small
T_FIRST=$(apply "$CONF2" small.toml 2026-05-02T00:00:00Z)
T_REPEAT=$(apply "$CONF2" small.toml 2026-05-03T00:00:00Z)
T_REPEAT_UPLOAD=$(task_secs "$WORK/state-small.toml-2026-05-03T00:00:00Z" "upload[")
REPEAT_SUMMARY=$(grep -o 'upload\[[^]]*\]: [^(]*([0-9]* bytes): [0-9]* uploaded ([0-9]* bytes sent)' "$WORK/small.toml.2026-05-03T00:00:00Z.log" || true)

cat <<EOF

Server: $SERVER on loopback; $(nproc) cores; snapshot set: $N sstables x $MIB MiB Data.db (+ components), $BYTES bytes.

| step | tool | seconds | MiB/s | vs cbk |
|---|---|---|---|---|
| backup (whole apply: probe, snapshot, upload, manifest, clear, catalog) | cbk | $T_CBK | $(rate "$BYTES" "$T_CBK") | 1.00 |
| backup upload tasks only | cbk | $T_UPLOAD | $(rate "$BYTES" "$T_UPLOAD") | |
| backup, encrypted (whole apply) | cbk | $T_ENC | $(rate "$BYTES" "$T_ENC") | $(python3 -c "print(f'{$T_ENC/$T_CBK:.2f}')") |
| backup upload tasks only, encrypted | cbk | $T_ENC_UPLOAD | $(rate "$BYTES" "$T_ENC_UPLOAD") | |
| copy of the same snapshot | rclone copy | $T_RCLONE | $(rate "$BYTES" "$T_RCLONE") | $(python3 -c "print(f'{$T_RCLONE/$T_CBK:.2f}')") |
| copy of the same snapshot | aws s3 cp --recursive | $T_AWS | $(rate "$BYTES" "$T_AWS") | $(python3 -c "print(f'{$T_AWS/$T_CBK:.2f}')") |
| raw ceiling (cbk store, no pipeline) | raw_put | $T_RAW | $(rate "$RAW_BYTES" "$T_RAW") | |
| restore (whole apply) | cbk | $T_RESTORE | $(rate "$BYTES" "$T_RESTORE") | |
| restore fetch tasks (download + verify) | cbk | $T_FETCH | $(rate "$BYTES" "$T_FETCH") | 1.00 |
| download of the same bytes | rclone copy | $T_RCLONE_DOWN | $(rate "$BYTES" "$T_RCLONE_DOWN") | $(python3 -c "print(f'{$T_RCLONE_DOWN/$T_FETCH:.2f}')") |

Encrypted / plain throughput (upload tasks): $(python3 -c "print(f'{$T_UPLOAD/$T_ENC_UPLOAD:.2f}')")x; whole apply: $(python3 -c "print(f'{$T_CBK/$T_ENC:.2f}')")x.

Pipeline cost over the raw ceiling (upload tasks vs raw_put): $(python3 -c "print(f'{($T_UPLOAD/$T_RAW-1)*100:.0f}%')").

Repeat backup of $NFILES unchanged components: first backup ${T_FIRST} s, repeat ${T_REPEAT} s (whole apply), upload task ${T_REPEAT_UPLOAD} s; $REPEAT_SUMMARY
EOF
