#!/usr/bin/env bash
# Packages the VS Code extension as a .vsix (skybatch-<version>.vsix in the repo root).
# package.json keeps its npm `files` list, which vsce refuses next to a .vscodeignore, so
# the package is made from a staging folder: the built files .vscodeignore lets through,
# package.json without `files`/devDependencies, and the engine's production dependencies
# (the extension runs the engine, which needs them at run time).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/extension/extension.cjs ] || { npx tsc -p tsconfig.json && node scripts/build-extension.mjs; }
stage=$(mktemp -d "${TMPDIR:-/tmp}/skybatch-vsix-XXXXXX")
trap 'rm -rf "$stage"' EXIT
cp -r bin README.md .vscodeignore "$stage"/
mkdir -p "$stage/out" "$stage/webview"
cp out/index.js "$stage/out/"
cp -r out/formats out/runtime out/extension out/webview "$stage/out/"
cp webview/icon.png webview/icon.svg "$stage/webview/"
node -e '
  const p = require("./package.json"); delete p.files; delete p.devDependencies;
  for (const s of ["vscode:prepublish", "test", "bench", "quickstart", "test:vscode"]) delete p.scripts[s];
  require("fs").writeFileSync(process.argv[1] + "/package.json", JSON.stringify(p, null, 2));' "$stage"
# The production dependency tree, as npm resolved it here.
npm ls --omit=dev --all --parseable 2>/dev/null | grep "/node_modules/" | while read -r dir; do
  rel=${dir#"$PWD/"}
  mkdir -p "$stage/$(dirname "$rel")" && cp -r "$dir" "$stage/$rel" 2>/dev/null || true
done
version=$(node -p 'require("./package.json").version')
(cd "$stage" && npx --yes @vscode/vsce@3 package --skip-license --allow-missing-repository -o "$OLDPWD/skybatch-$version.vsix")
ls -la "skybatch-$version.vsix"
