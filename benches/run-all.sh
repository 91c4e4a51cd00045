#!/usr/bin/env bash
# Runs every benchmark of the project and prints the machine and tool versions first, so the
# output can be pasted into BENCHMARKS.md as is. Usage (from anywhere):
#   bash benches/run-all.sh            # every bench target and every benches/*.sh script
#   bash benches/run-all.sh NAME...    # only these (bench target or script names)
# Benchmarks build in release mode; the test dependencies (moto, rclone, garage) come from
# tests/infra/setup.sh, which this script runs first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/infra/setup.sh >/dev/null

echo "## Machine"
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "- cpu: $(nproc) x $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "- kernel: $(uname -sr); $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "- rustc: $(rustc --version)"
echo "## Tools"
VENV=${CBK_TEST_HOME:-target/cbk-test}/venv
echo "- rclone: $(rclone version 2>/dev/null | head -1 || echo 'not installed')"
echo "- aws CLI: $("$VENV/bin/aws" --version 2>/dev/null || aws --version 2>/dev/null || echo 'not installed')"
echo "- moto: $("$VENV/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo 'not installed')"
GARAGE=$(command -v garage || ls "${CBK_TEST_HOME:-target/cbk-test}"/garage*/bin/garage 2>/dev/null | head -1 || true)
echo "- garage: $([ -n "$GARAGE" ] && "$GARAGE" --version 2>/dev/null | head -1 || echo 'not built')"
echo

# Bench targets: every benches/*.rs declared in Cargo.toml; scripts: benches/*.sh but this one.
mapfile -t targets < <(for f in benches/*.rs; do [ -e "$f" ] && basename "$f" .rs; done)
mapfile -t scripts < <(for f in benches/*.sh; do [ "$(basename "$f")" != run-all.sh ] && basename "$f" .sh; done)
want=("$@")
selected() { [ ${#want[@]} -eq 0 ] && return 0; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

status=0
for t in "${targets[@]}"; do
  selected "$t" || continue
  echo "## cargo bench --bench $t"
  cargo bench --locked --bench "$t" || { echo "FAILED: $t"; status=1; }
  echo
done
for s in "${scripts[@]}"; do
  selected "$s" || continue
  echo "## benches/$s.sh"
  bash "benches/$s.sh" || { echo "FAILED: $s"; status=1; }
  echo
done
exit $status
