#!/usr/bin/env bash
# Stops the servers scripts/servers/up.sh started and removes their state and env file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${SKYBATCH_SERVERS_DIR:-/tmp/skybatch-servers}"

# Dead counts as gone even while it is a zombie waiting for init to reap it.
running() { # pid
  local st; st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ "${st%% *}" != Z ]]
}

# Only a pid whose executable name matches is ours; a recycled pid is left alone.
stop() { # pidfile comm signal
  [[ -f "$1" ]] || return 0
  local pid; pid=$(cat "$1")
  if [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2"* ]] && running "$pid"; then
    kill "-$3" "$pid" 2>/dev/null || true
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    echo "servers: stopped $2 ($pid)" >&2
  fi
  rm -f "$1"
}

stop "$DIR/gcs/emulator.pid" node TERM
# Ceph keeps its data in RAM (memstore): SIGKILL loses nothing we need.
stop "$DIR/ceph/run/rgw.pid" radosgw KILL
stop "$DIR/ceph/run/osd.pid" ceph-osd KILL
stop "$DIR/ceph/run/mon.pid" ceph-mon KILL
rm -rf "$DIR/ceph" "$DIR/gcs"
rm -f "$DIR/apt.log"
rmdir "$DIR" 2>/dev/null || true
rm -f "$ROOT/.cache/servers.env"
echo "servers: down" >&2
