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

echo "== no import circle among the folders of src/ and raft/src/, nor among the files of raft/src/"
scripts/check-import-cycles.sh src raft/src
scripts/check-file-import-cycles.sh raft/src

echo "== cargo test"
mkdir -p target
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee target/cargo-test.log

echo "== schemathesis against the OpenAPI document (about 2 minutes)"
scripts/schemathesis.sh

# Built once and shared by the suites that run against the release binary (the deployment files and
# the console's browser suite); build.rs builds the console (npm) into it.
echo "== cargo build --release --bins"
cargo build --release --bins

echo "== deployment files: lint, chart, local group, rolling restart, image, compose (about 5 minutes)"
deploy_status=0
KUBOARD_BIN=target/release/kuboard scripts/test-deploy.sh || deploy_status=$?

echo "== the web console: Vitest, lint, typecheck, end-to-end in Chromium (about 5 minutes)"
console_status=0
rm -f target/console-counts
KUBOARD_BIN=target/release/kuboard scripts/test-console.sh || console_status=$?

# One closing line for the whole run: the totals of every cargo test binary plus the console's
# (schemathesis and the deployment suite printed their own figures above). A console run that left
# no counts counts as failed.
console_counts=(0 1)
if [ -f target/console-counts ]; then read -r -a console_counts < target/console-counts; fi
awk -v console_passed="${console_counts[0]}" -v console_failed="${console_counts[1]}" \
  '/^test result:/ { passed += $4; failed += $6 }
   END { printf "summary: %d passed, %d failed\n", passed + console_passed, failed + console_failed }' \
  target/cargo-test.log
[ "$deploy_status" -eq 0 ] && [ "$console_status" -eq 0 ]
