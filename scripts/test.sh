#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, checks formatting and lints,
# then runs every test of every crate (unit, conformance against real etcd, integration tests that
# spawn the real `kuboard` binary).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh test

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "== cargo test"
cargo test --workspace --all-features --no-fail-fast

echo "== schemathesis against the OpenAPI document (about 2 minutes)"
scripts/schemathesis.sh
