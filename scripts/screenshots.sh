#!/usr/bin/env bash
# Regenerates docs/ui/*.png: every page of the console in Chinese and English, taken in Debian's
# Chromium from the release binary behind nginx (the end-to-end suite's set-up).
#
#   scripts/screenshots.sh     # KUBOARD_BIN=path to use another kuboard binary
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh test
if [ ! -f web/e2e/node_modules/.package-lock.json ]; then
  (cd web/e2e && npm ci --no-audit --no-fund)
fi
if [ -z "${KUBOARD_BIN:-}" ]; then
  cargo build --release --bins
fi
node web/e2e/screenshots.mjs
