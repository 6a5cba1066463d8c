#!/usr/bin/env bash
# Regenerates docs/benchmarks.md, its plots in docs/bench/ and docs/bench/results.json: the embedded
# 3-member group side by side with etcd 3.4 (3 members), both with fsync on, driven through the etcd v3
# API by the same client. Needs root (each member runs in a network namespace of its own).
#
#   scripts/bench.sh            # full run: 15 s phases, 20 leader kills per system (about 12 minutes)
#   scripts/bench.sh --quick    # 4 s phases, 5 leader kills per system (about 3 minutes)
#
# Other options are passed to `kuboard-jepsen bench` (see `kuboard-jepsen bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/bench.sh needs root: the members run in network namespaces" >&2
  exit 2
fi

scripts/install-deps.sh test

echo "== cargo build --release (kuboard and kuboard-jepsen)"
cargo build --release -p kuboard -p kuboard-jepsen

exec target/release/kuboard-jepsen bench --kuboard-binary target/release/kuboard "$@"
