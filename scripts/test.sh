#!/usr/bin/env bash
# The one test command (README: `npm test`). Idempotent: installs what is missing (npm
# packages, Debian packages, the storage servers, a cached code-server), builds, starts the
# servers, then runs every suite: the engine, storage and chaos suites with node's test
# runner, then the VS Code extension in a real VS Code (code-server + Chromium).
# Ends with one line `N passed, M failed` for all of them; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund || exit 1
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; } || exit 1
npm run --silent build || exit 1
bash scripts/servers/up.sh || exit 1
# shellcheck disable=SC1091
source .cache/servers.env
mkdir -p test-results

# Test files run one at a time: each starts real pools, and the machine has 2 cores.
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout "${@:-out/test/}" | tee test-results/node.log
node_status=${PIPESTATUS[0]}
node_pass=$(grep -E '^ℹ pass [0-9]+' test-results/node.log | tail -1 | awk '{print $3}')
node_fail=$(grep -E '^ℹ fail [0-9]+' test-results/node.log | tail -1 | awk '{print $3}')

vs_pass=0
vs_fail=0
vs_status=0
if [ $# -eq 0 ]; then
  bash scripts/vscode-tests.sh host ui vsix | tee test-results/vscode.log
  vs_status=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' test-results/vscode.log | tail -1)
  vs_pass=$(echo "$line" | awk '{print $1}')
  vs_fail=$(echo "$line" | awk '{print $3}')
  [ -n "$line" ] || vs_fail=1
fi

pass=$(( ${node_pass:-0} + ${vs_pass:-0} ))
fail=$(( ${node_fail:-1} + ${vs_fail:-0} ))
echo
echo "$pass passed, $fail failed"
[ "$node_status" -eq 0 ] && [ "$vs_status" -eq 0 ] && [ "$fail" -eq 0 ]
