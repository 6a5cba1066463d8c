#!/usr/bin/env bash
# Runs one kuboard replica on the embedded store (a one-member Raft group on local disk), from a
# fresh clone. The console on http://127.0.0.1:8080/ and the API under /kuboard-api/ (log in as
# admin / Kuboard123); the release build builds the console into the binary when Node 20 is present.
#
# Every KUBOARD_* variable that `kuboard serve --help` lists may be set to override the defaults below.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh build

# Loopback unless told otherwise: the first-start password is public until it is changed.
export KUBOARD_SERVER_ADDR=${KUBOARD_SERVER_ADDR:-127.0.0.1}
export KUBOARD_RAFT_ADDR=${KUBOARD_RAFT_ADDR:-127.0.0.1}
export KUBOARD_SERVER_PORT=${KUBOARD_SERVER_PORT:-8080}
# HTTPS for kubectl with a downloaded kubeconfig (docs/https.md), on an unprivileged port.
export KUBOARD_SERVER_HTTPS_PORT=${KUBOARD_SERVER_HTTPS_PORT:-8443}
export KUBOARD_DATA_DIR=${KUBOARD_DATA_DIR:-$PWD/data}
export KUBOARD_RAFT_PORT=${KUBOARD_RAFT_PORT:-10082}
export KUBOARD_AGENT_SERVER_TCP_PORT=${KUBOARD_AGENT_SERVER_TCP_PORT:-10081}

cargo build --release --bin kuboard
exec target/release/kuboard serve
