#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (idempotent):
# Debian packages (OpenSSH server, lzop, rclone, graphviz, ...), a Python venv with moto and
# mitmproxy, and a `cassandra` user that owns emulated data files. Starts nothing.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CBK_TEST_HOME=${CBK_TEST_HOME:-$REPO/target/cbk-test}
mkdir -p "$CBK_TEST_HOME"

need_apt=()
for bin in sshd:openssh-server ssh:openssh-client lzop:lzop rclone:rclone socat:socat \
           iptables:iptables dot:graphviz tmux:tmux unshare:util-linux ip:iproute2 zstd:zstd \
           sudo:sudo; do
  b=${bin%%:*}; p=${bin#*:}
  if ! command -v "$b" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$b" ]; then need_apt+=("$p"); fi
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

VENV=$CBK_TEST_HOME/venv
if [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/mitmdump" ]; then
  echo "setup: python venv with moto and mitmproxy in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.*' boto3 mitmproxy awscli
fi

id cassandra >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin cassandra
mkdir -p /run/sshd /var/lib/cassandra /etc/cassandra
echo "setup: ok ($CBK_TEST_HOME)"
