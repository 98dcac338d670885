#!/usr/bin/env bash
# Installs what the VS Code tests need, once: Debian's chromium, libkrb5-dev (kerberos
# builds from source inside code-server) and ripgrep; code-server 4.100.3 (VS Code 1.100.3,
# the newest whose engines accept Node 20) into .cache/code-server, never into the project.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
CS_VERSION=4.100.3
CS_DIR=.cache/code-server
CS_BIN="$CS_DIR/node_modules/code-server/out/node/entry.js"

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v rg >/dev/null || missing+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "vscode-tests: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f "$CS_BIN" ] || ! grep -q "\"version\": \"$CS_VERSION\"" "$CS_DIR/node_modules/code-server/package.json" 2>/dev/null; then
  echo "vscode-tests: installing code-server@$CS_VERSION into $CS_DIR (about a minute)"
  mkdir -p "$CS_DIR"
  # @vscode/ripgrep's postinstall downloads rg from GitHub (unreachable); it first looks
  # in $TMPDIR/vscode-ripgrep-cache-1.15.11/<asset>, so put Debian's rg there as that asset.
  tmp="${TMPDIR:-/tmp}"
  cache="$tmp/vscode-ripgrep-cache-1.15.11"
  mkdir -p "$cache" "$tmp/skybatch-rgx"
  cp "$(command -v rg)" "$tmp/skybatch-rgx/rg"
  tar czf "$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$tmp/skybatch-rgx" rg
  [ -f "$CS_DIR/package.json" ] || echo '{"name":"code-server-cache","private":true}' > "$CS_DIR/package.json"
  # As root the postinstall needs unsafe-perm; node-pty's postinstall runs `npx node-gyp`.
  (cd "$CS_DIR" && npm_config_unsafe_perm=true npm_config_yes=true npm install --no-save --no-audit --no-fund --loglevel=error "code-server@$CS_VERSION")
fi
test -f "$CS_BIN"
