#!/usr/bin/env bash
# The one test command (README: `npm test`). Idempotent: installs what is missing,
# builds, starts the servers the tests use, runs every suite with node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci
npx tsc -p tsconfig.json
if [ -x scripts/servers/up.sh ]; then
  bash scripts/servers/up.sh
  # shellcheck disable=SC1091
  [ -f .cache/servers.env ] && source .cache/servers.env
fi
mkdir -p test-results
# Test files run one at a time: each starts real pools, and the machine has 2 cores.
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout "${@:-out/test/}"
