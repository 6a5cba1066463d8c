#!/usr/bin/env bash
# The compressed-time soak of docs/operations.md: three release replicas under a steady mix of
# logins, failed logins, UI-like reads, sessions on 60 s leases and keys on 2 s leases, with a 10 s
# compaction retention and a snapshot every 500 entries, so that an hour stands for weeks of use.
# Prints a sample every 5 s, asserts that store size, RSS and snapshot time stay flat and that no
# write took longer than the election timeout, and plots the figures into docs/soak/.
#
#   scripts/soak.sh            # one hour
#   scripts/soak.sh 600        # ten minutes
#
# The default test command runs the same test for 120 s against the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-3600}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: scripts/soak.sh [seconds]  (30 to 86400; default 3600)" >&2; exit 2 ;;
esac
if [ "$seconds" -lt 30 ] || [ "$seconds" -gt 86400 ]; then
  echo "scripts/soak.sh: the length must be 30 to 86400 seconds, not $seconds" >&2
  exit 2
fi

echo "== cargo build --release --bins, and the soak test"
cargo build --release --bins
# The test binary runs by itself (not under cargo, which would hold the build directory's lock for
# the whole run), against a copy of the release binary that later builds cannot replace.
test_binary="$(cargo test --test t91_soak --no-run 2>&1 | tee /dev/stderr |
  sed -n 's/.*Executable tests\/t91_soak.rs (\(.*\))/\1/p' | tail -1)"
if [ -z "$test_binary" ] || [ ! -x "$test_binary" ]; then
  echo "scripts/soak.sh: cargo did not name the built soak test" >&2
  exit 1
fi
mkdir -p target/soak docs/soak
cp target/release/kuboard target/soak/kuboard
csv=target/soak/soak.csv
rm -f "$csv" target/soak/soak.snapshots.csv

echo "== soak for $seconds s (release build)"
set +e
KUBOARD_TEST_BINARY="$PWD/target/soak/kuboard" \
KUBOARD_SOAK_SECONDS="$seconds" \
KUBOARD_SOAK_CSV="$PWD/$csv" \
  "$test_binary" --nocapture 2>&1 | tee target/soak/soak.log
status="${PIPESTATUS[0]}"
set -e

if [ -s "$csv" ]; then
  python3 scripts/plot-soak.py "$csv" target/soak/soak.snapshots.csv docs/soak
fi
exit "$status"
