#!/usr/bin/env bash
# A test cluster of N fake hosts: one real sshd per host on its own loopback address (port 22),
# each inside its own mount + UTS namespace, so every host has its own /var/lib/cassandra,
# /etc/cassandra, ~/.cache and hostname at the real paths. Needs root (see docs/test-cluster.md).
#
#   cluster.sh up   --base DIR --hosts N [--net 127.X.Y] [--emulator-bin DIR]
#   cluster.sh down --base DIR
#
# `up` writes DIR/ssh_config (Host node1..N), DIR/known_hosts (the host keys, so strict checking
# works), DIR/keys/id_ed25519 (client key), DIR/hosts.txt ("nodeI ADDRESS" lines) and per host
# DIR/hosts/nodeI/{data,conf,cache}: what nodeI sees at /var/lib/cassandra, /etc/cassandra and
# /root/.cache. `down` kills exactly this cluster's processes (everything in its namespaces) and
# is safe to call twice. Without --net a free 127.X.Y.0/24 block is picked at random.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CLAIMS=/tmp/cbk-cluster-nets
SSHD=/usr/sbin/sshd

die() { echo "cluster.sh: $*" >&2; exit 1; }

CMD=${1:-}; shift || true
BASE= HOSTS=3 NET= EMU_BIN=$REPO/tests/emulator/bin
while [ $# -gt 0 ]; do
  case $1 in
    --base) BASE=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --net) NET=$2; shift 2 ;;
    --emulator-bin) EMU_BIN=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[ -n "$BASE" ] || die "--base DIR is required"
case $HOSTS in ''|*[!0-9]*) die "--hosts must be a number" ;; esac
[ "$HOSTS" -ge 1 ] && [ "$HOSTS" -le 200 ] || die "--hosts must be 1..200"

port_open() { (exec 3<>"/dev/tcp/$1/22") 2>/dev/null; }

# Claims a 127.X.Y block atomically (mkdir); a claim whose cluster folder is gone is stale.
claim_net() {
  local net=$1 dir=$CLAIMS/$1
  mkdir -p "$CLAIMS"
  if ! mkdir "$dir" 2>/dev/null; then
    local owner; owner=$(cat "$dir/base" 2>/dev/null || true)
    if [ -n "$owner" ] && [ -d "$owner/hosts" ]; then return 1; fi
    rm -rf "$dir"; mkdir "$dir" 2>/dev/null || return 1
  fi
  echo "$BASE" > "$dir/base"
  local i; for i in $(seq 1 "$HOSTS"); do
    if port_open "$net.$((1 + i))"; then rm -rf "$dir"; return 1; fi
  done
  return 0
}

pick_net() {
  if [ -n "$NET" ]; then
    [[ $NET =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "--net must look like 127.X.Y"
    claim_net "$NET" || die "network $NET is in use"
    return
  fi
  local t; for t in $(seq 1 50); do
    NET=127.$((100 + RANDOM % 150)).$((RANDOM % 256))
    claim_net "$NET" && return
  done
  die "no free 127.X.Y block found"
}

up() {
  [ "$(id -u)" = 0 ] || die "must run as root (namespaces, bind mounts, port 22)"
  [ -x "$SSHD" ] || die "$SSHD missing: run tests/infra/setup.sh"
  [ ! -f "$BASE/cluster.env" ] || die "$BASE already holds a cluster (run down first)"
  mkdir -p "$BASE"; BASE=$(cd "$BASE" && pwd)
  local root_home; root_home=$(getent passwd root | cut -d: -f6); root_home=${root_home:-/root}
  mkdir -p /run/sshd /var/lib/cassandra /etc/cassandra "$root_home/.cache"
  pick_net
  local keys=$BASE/keys
  mkdir -p "$keys"
  [ -f "$keys/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C cbk-test-client -f "$keys/id_ed25519"
  cp "$keys/id_ed25519.pub" "$keys/authorized_keys"
  local path_env=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  [ -d "$EMU_BIN" ] && path_env=$EMU_BIN:$path_env
  : > "$BASE/known_hosts"; : > "$BASE/ssh_config"; : > "$BASE/hosts.txt"
  printf 'NET=%s\nHOSTS=%s\n' "$NET" "$HOSTS" > "$BASE/cluster.env"
  local i
  for i in $(seq 1 "$HOSTS"); do
    local name=node$i addr=$NET.$((1 + i)) h=$BASE/hosts/node$i
    mkdir -p "$h/data" "$h/conf" "$h/cache" "$h/ssh"
    [ -f "$h/ssh/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$h/ssh/host_ed25519"
    cat > "$h/ssh/sshd_config" <<EOF
ListenAddress $addr:22
HostKey $h/ssh/host_ed25519
PidFile none
AuthorizedKeysFile $keys/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 10
MaxStartups 64:30:128
SetEnv PATH=$path_env
Subsystem sftp internal-sftp
EOF
    echo "$name,$addr $(cut -d' ' -f1,2 "$h/ssh/host_ed25519.pub")" >> "$BASE/known_hosts"
    cat >> "$BASE/ssh_config" <<EOF
Host $name
  HostName $addr
  Port 22
  User root
  IdentityFile $keys/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $BASE/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR

EOF
    echo "$name $addr" >> "$BASE/hosts.txt"
    # unshare (without --fork) and bash both exec, so $! is sshd's own pid.
    unshare --mount --uts --propagation private \
      bash -c "mount --bind '$h/data' /var/lib/cassandra && mount --bind '$h/conf' /etc/cassandra \
               && mount --bind '$h/cache' '$root_home/.cache' && hostname $name \
               && exec $SSHD -D -e -f '$h/ssh/sshd_config'" \
      </dev/null >"$h/sshd.log" 2>&1 &
    echo $! > "$h/sshd.pid"
  done
  # Every sshd must listen within CBK_CLUSTER_UP_TIMEOUT seconds of the last start (a count of tries would
  # run out first on a loaded machine: 200 hosts at load 26 took longer than 500 x 10 ms).
  local deadline=$((SECONDS + ${CBK_CLUSTER_UP_TIMEOUT:-120}))
  for i in $(seq 1 "$HOSTS"); do
    local addr=$NET.$((1 + i)) h=$BASE/hosts/node$i ok=
    while [ "$SECONDS" -le "$deadline" ]; do
      if port_open "$addr"; then ok=1; break; fi
      kill -0 "$(cat "$h/sshd.pid")" 2>/dev/null || break
      sleep 0.01
    done
    if [ -z "$ok" ]; then
      echo "cluster.sh: node$i ($addr) did not come up:" >&2; cat "$h/sshd.log" >&2 || true
      down; exit 1
    fi
    # The namespace id lets `down` find every process of this host (sessions, agents).
    stat -L -c %i "/proc/$(cat "$h/sshd.pid")/ns/mnt" > "$h/mntns"
  done
  echo "cluster up: $HOSTS hosts on $NET.0/24, ssh -F $BASE/ssh_config node1"
}

# Pids of processes in the mount namespace with inode $1 (one stat call for all of /proc).
ns_pids() {
  stat -L -c '%i %n' /proc/[0-9]*/ns/mnt 2>/dev/null | awk -v ns="$1" '$1 == ns { split($2, p, "/"); print p[3] }'
  return 0
}

down() {
  [ -d "$BASE" ] || return 0
  BASE=$(cd "$BASE" && pwd)
  local h
  for h in "$BASE"/hosts/node*; do
    [ -d "$h" ] || continue
    local pid ns=
    pid=$(cat "$h/sshd.pid" 2>/dev/null || true)
    [ -f "$h/mntns" ] && ns=$(cat "$h/mntns")
    if [ -z "$ns" ] && [ -n "$pid" ] && grep -qF "$h/ssh/sshd_config" "/proc/$pid/cmdline" 2>/dev/null; then
      ns=$(stat -L -c %i "/proc/$pid/ns/mnt" 2>/dev/null || true)
    fi
    if [ -n "$ns" ] && [ "$ns" != "$(stat -L -c %i /proc/self/ns/mnt)" ]; then
      local pids t
      pids=$(ns_pids "$ns")
      [ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
      for t in $(seq 1 100); do
        pids=$(ns_pids "$ns"); [ -z "$pids" ] && break; sleep 0.02
      done
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    rm -f "$h/sshd.pid" "$h/mntns"
  done
  if [ -f "$BASE/cluster.env" ]; then
    local net; net=$(sed -n 's/^NET=//p' "$BASE/cluster.env")
    if [ -n "$net" ] && [ "$(cat "$CLAIMS/$net/base" 2>/dev/null)" = "$BASE" ]; then rm -rf "${CLAIMS:?}/$net"; fi
    rm -f "$BASE/cluster.env"
  fi
}

case $CMD in
  up) up ;;
  down) down ;;
  *) die "usage: cluster.sh up --base DIR --hosts N [--net 127.X.Y] [--emulator-bin DIR] | down --base DIR" ;;
esac
