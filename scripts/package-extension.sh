#!/usr/bin/env bash
# Packages the VS Code extension as skybatch-<version>.vsix in the repo root: this is
# `npx @vscode/vsce package` (its vscode:prepublish script builds; .vscodeignore picks what
# ships; the engine's production dependencies come along, since the extension runs the
# engine). The npm package is separate: .npmignore keeps it to the CLI and the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
version=$(node -p 'require("./package.json").version')
npx vsce package --skip-license -o "skybatch-$version.vsix" </dev/null
