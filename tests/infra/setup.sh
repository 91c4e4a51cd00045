#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (idempotent):
# Debian packages (OpenSSH server, lzop, rclone, graphviz, ...), a Python venv with moto and
# mitmproxy at the exact versions of tests/infra/requirements.lock, and a `cassandra` user that
# owns emulated data files. Starts nothing.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CBK_TEST_HOME=${CBK_TEST_HOME:-$REPO/target/cbk-test}
mkdir -p "$CBK_TEST_HOME"

# Debian packages at the versions of tests/infra/apt-packages.txt (see there for why a version
# can be replaced by the suite's newer build).
need_apt=()
while read -r bin pkg ver; do
  case $bin in ''|'#'*) continue ;; esac
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then need_apt+=("$pkg=$ver"); fi
done < "$REPO/tests/infra/apt-packages.txt"
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  want=()
  for pv in "${need_apt[@]}"; do
    pkg=${pv%%=*}; ver=${pv#*=}
    if apt-cache madison "$pkg" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep -qxF "$ver"; then
      want+=("$pv")
    else
      echo "setup: $pkg $ver is no longer on the mirror; installing the suite's current build" >&2
      want+=("$pkg")
    fi
  done
  echo "setup: apt-get install ${want[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
fi

# Debian's own python3 ships venv without ensurepip (package python3-venv).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  echo "setup: apt-get install python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

VENV=$CBK_TEST_HOME/venv
LOCK=$REPO/tests/infra/requirements.lock
# The venv is rebuilt whenever the lock changes (its sha256 is kept inside the venv).
want=$(sha256sum "$LOCK" | cut -d' ' -f1)
have=$(cat "$VENV/.cbk-lock-sha256" 2>/dev/null || true)
if [ "$want" != "$have" ] || [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/mitmdump" ]; then
  echo "setup: python venv from tests/infra/requirements.lock in $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # Exact versions with hashes: a new upstream release cannot change the suite.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --require-hashes -r "$LOCK"
  echo "$want" > "$VENV/.cbk-lock-sha256"
fi

id cassandra >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin cassandra
mkdir -p /run/sshd /var/lib/cassandra /etc/cassandra
echo "setup: ok ($CBK_TEST_HOME)"
