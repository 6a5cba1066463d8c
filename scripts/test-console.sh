#!/usr/bin/env bash
# The web console's tests: Vitest (web/), lint and typecheck, then the end-to-end suite in Debian's
# Chromium against three release replicas behind nginx (web/e2e/). Installs what is missing first.
# Ends with one line: `console: N passed, N failed` (the Vitest tests, lint, typecheck and the
# end-to-end steps each count).
#
#   scripts/test-console.sh            # builds the release binaries when missing or stale
#   KUBOARD_BIN=path scripts/test-console.sh   # the kuboard binary to test (skips the build)
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh test || exit 1
mkdir -p target

# npm ci when node_modules is missing or older than the lockfile.
npm_install() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "== npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund) || exit 1
  fi
}
npm_install web
npm_install web/e2e

passed=0
failed=0
count_step() {
  if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "console: $2 FAILED"; fi
}

echo "== Vitest (web/)"
(cd web && npm test 2>&1) | tee target/console-vitest.log
vitest_status=${PIPESTATUS[0]}
# Vitest's summary: "Tests  12 passed | 1 failed (13)" (colours off when not a terminal).
vitest_line=$(sed 's/\x1b\[[0-9;]*m//g' target/console-vitest.log | grep -E '^ *Tests +' | tail -1)
vitest_passed=$(grep -oE '[0-9]+ passed' <<<"$vitest_line" | grep -oE '[0-9]+' || true)
vitest_failed=$(grep -oE '[0-9]+ failed' <<<"$vitest_line" | grep -oE '[0-9]+' || true)
passed=$((passed + ${vitest_passed:-0}))
failed=$((failed + ${vitest_failed:-0}))
if [ "$vitest_status" -ne 0 ] && [ "${vitest_failed:-0}" -eq 0 ]; then
  count_step 1 "vitest (exit $vitest_status)"
fi

echo "== lint (web/)"
(cd web && npm run lint)
count_step $? lint
echo "== typecheck (web/)"
(cd web && npm run typecheck)
count_step $? typecheck

if [ -z "${KUBOARD_BIN:-}" ]; then
  echo "== cargo build --release --bins (no-op when up to date)"
  cargo build --release --bins || exit 1
fi

echo "== end-to-end (Chromium, three replicas behind nginx): the console, then the cluster workspace"
(cd web/e2e && node --test --test-concurrency=1 --test-reporter=tap console.test.mjs workspace.test.mjs 2>&1) | tee target/console-e2e.log
e2e_status=${PIPESTATUS[0]}
e2e_passed=$(grep -E '^# pass [0-9]+' target/console-e2e.log | tail -1 | grep -oE '[0-9]+')
e2e_failed=$(grep -E '^# fail [0-9]+' target/console-e2e.log | tail -1 | grep -oE '[0-9]+')
passed=$((passed + ${e2e_passed:-0}))
failed=$((failed + ${e2e_failed:-0}))
if [ "$e2e_status" -ne 0 ] && [ "${e2e_failed:-0}" -eq 0 ]; then
  count_step 1 "end-to-end (exit $e2e_status)"
fi

echo "$passed $failed" > target/console-counts
echo "console: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
