#!/usr/bin/env bash
# Regenerates docs/benchmarks.md, its plots in docs/bench/ and docs/bench/results.json:
# - store: the embedded 3-member group side by side with etcd 3.4 (3 members), both with fsync on,
#   driven through the etcd v3 API by the same client;
# - proxy: GETs through Kuboard's Kubernetes proxy against the same GETs sent to the fake apiserver
#   directly;
# - audit: audit events per second into PostgreSQL and the added latency of each audit policy.
# Needs root (the store members run in network namespaces; PostgreSQL runs as the postgres user).
#
#   scripts/bench.sh                     # full run (about 15 minutes)
#   scripts/bench.sh --quick             # shorter phases, 5 leader kills per system (about 4 minutes)
#   scripts/bench.sh --only proxy,audit  # some parts only; the others keep their figures from results.json
#
# Other options are passed to `kuboard-jepsen bench` (see `kuboard-jepsen bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/bench.sh needs root: the members run in network namespaces" >&2
  exit 2
fi

scripts/install-deps.sh test

echo "== cargo build --release (kuboard, kuboard-jepsen, kuboard-fake-apiserver)"
cargo build --release -p kuboard -p kuboard-jepsen -p kuboard-testkit --bins

exec target/release/kuboard-jepsen bench \
  --kuboard-binary target/release/kuboard \
  --fake-apiserver-binary target/release/kuboard-fake-apiserver \
  "$@"
