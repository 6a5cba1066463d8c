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
mkdir -p target
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee target/cargo-test.log

echo "== schemathesis against the OpenAPI document (about 2 minutes)"
scripts/schemathesis.sh

echo "== release binary (built once, shared by the suites that run it)"
cargo build --release --bins

echo "== deployment files: lint, chart, local group, rolling restart, image, compose (about 5 minutes)"
deploy_status=0
KUBOARD_BIN=target/release/kuboard scripts/test-deploy.sh || deploy_status=$?

# One closing line for the whole run: the totals of every cargo test binary (schemathesis printed its
# own figures above).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "summary: %d passed, %d failed\n", passed, failed }' \
  target/cargo-test.log
exit "$deploy_status"
