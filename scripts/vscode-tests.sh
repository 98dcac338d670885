#!/usr/bin/env bash
# The VS Code extension's tests in a real VS Code: code-server 4.100.3 (VS Code 1.100.3)
# in Debian's Chromium, driven by playwright-core. Idempotent and self-sufficient on a
# fresh Debian 12 as root: installs chromium/ripgrep/libkrb5-dev with apt and code-server
# into .cache/ when missing, builds the engine and the extension, then runs
#   node   the extension core's unit tests (out/test/extension)
#   host   mocha suites inside the extension host (serializer, controller, commands, tree)
#   ui     a person's path through the UI, one screenshot per step in test-results/vscode/
# Prints `N passed, M failed` last and exits non-zero on failure.
#   vsix   packages the extension (npx @vscode/vsce package), installs the .vsix in a fresh
#          code-server and runs the first UI steps on it (screenshots in test-results/vscode/vsix/)
# Usage: bash scripts/vscode-tests.sh [node] [host] [ui] [vsix]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/vscode/install.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
node scripts/build-extension.mjs
node out/vscode-tests/driver.mjs "$@"
