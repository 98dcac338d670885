#!/usr/bin/env bash
# README's first command: the quickstart on a local 2-worker pool with local files.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
node bin/skybatch.js pool apply samples/quickstart/pool.yaml --pool my-pool -y
node bin/skybatch.js run samples/quickstart/double_text.ts
echo "--- samples/quickstart/output/output.jsonl"
cat samples/quickstart/output/output.jsonl
