#!/usr/bin/env bash
# Starts the storage servers the tests use: Ceph RGW (real S3) and the Firebase Storage
# emulator (GCS JSON API). Idempotent: when both are already up it only rewrites the env file.
# Writes `.cache/servers.env` for the tests (source it). Progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${SKYBATCH_SERVERS_DIR:-/tmp/skybatch-servers}"
C="$DIR/ceph"
G="$DIR/gcs"
FB="$ROOT/.cache/firebase"
FB_VERSION=15.34.2
ENV_FILE="$ROOT/.cache/servers.env"
ACCESS_KEY=SKYBATCHTESTACCESS01
SECRET_KEY=skybatch-test-secret-key-not-for-production

log() { echo "servers: $*" >&2; }
die() { echo "servers: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
T0=$(now_ms)

free_port() { # ports to avoid: picked earlier in this run but maybe not yet bound
  node -e "
    const net = require('net'), avoid = process.argv.slice(1).map(Number);
    (function pick() {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => (avoid.includes(p) ? pick() : console.log(p)));
      });
    })();" "$@"
}

# pid file holds a pid whose executable name must match, so a recycled pid is never taken for
# ours; a zombie (dead, not yet reaped by init) does not count.
alive() { # pidfile comm
  [[ -f "$1" ]] || return 1
  local pid st; pid=$(cat "$1")
  [[ -n "$pid" && -r "/proc/$pid/comm" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2"* ]] || return 1
  st=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ "${st%% *}" != Z ]]
}

http_up() { # port: any HTTP answer counts (plain bash: a node start per check costs 100 ms)
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  read -r -t 2 line <&3 || line=
  exec 3<&- 3>&-
  [[ "$line" == HTTP/* ]]
}

wait_for() { # seconds description command...
  local deadline=$(( $(date +%s) + $1 )); local what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.1
  done
  log "$what ($(( $(now_ms) - T0 )) ms)"
}

ceph_up() {
  alive "$C/run/mon.pid" ceph-mon && alive "$C/run/osd.pid" ceph-osd && alive "$C/run/rgw.pid" radosgw \
    && [[ -f "$C/port" ]] && http_up "$(cat "$C/port")"
}

gcs_up() {
  alive "$G/emulator.pid" node && [[ -f "$G/port" ]] && http_up "$(cat "$G/port")"
}

stop_pidfile() { # pidfile comm
  if alive "$1" "$2"; then kill -9 "$(cat "$1")" 2>/dev/null || true; fi
  rm -f "$1"
}

install_ceph() {
  local bins=(ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool)
  local missing=0 b
  for b in "${bins[@]}"; do command -v "$b" >/dev/null || missing=1; done
  (( missing )) || return 0
  log "installing Ceph (radosgw, ceph-mon, ceph-osd) with apt"
  export DEBIAN_FRONTEND=noninteractive
  local pkgs=(radosgw ceph-mon ceph-osd)
  local apt_log="$DIR/apt.log"
  if ! apt-cache show radosgw >/dev/null 2>&1; then apt-get update >"$apt_log" 2>&1 || { tail -20 "$apt_log" >&2; die "apt-get update failed"; }; fi
  # stale package lists give 404s: refresh once and retry
  if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >>"$apt_log" 2>&1; then
    apt-get update >>"$apt_log" 2>&1
    apt-get install -y --no-install-recommends "${pkgs[@]}" >>"$apt_log" 2>&1 || { tail -20 "$apt_log" >&2; die "apt-get install failed"; }
  fi
  for b in "${bins[@]}"; do command -v "$b" >/dev/null || die "$b missing after install"; done
}

start_ceph() {
  stop_pidfile "$C/run/rgw.pid" radosgw
  stop_pidfile "$C/run/osd.pid" ceph-osd
  stop_pidfile "$C/run/mon.pid" ceph-mon
  rm -rf "$C"
  mkdir -p "$C/mon" "$C/osd0" "$C/run" "$C/log"
  local fsid osd_uuid mon_port port
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  mon_port=$(free_port $GCS_PORT)
  port=$(free_port $GCS_PORT "$mon_port")
  # Every path a ceph tool may write stays inside $C: given a device path it would replace it.
  cat > "$C/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = 127.0.0.1:$mon_port
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
mon allow pool size one = true
paxos propose interval = 0.05
mon data avail crit = 0
mon data avail warn = 0
osd crush chooseleaf type = 0
run dir = $C/run
admin socket = $C/run/\$name.asok
log file = $C/log/\$name.log
keyring = $C/keyring
ms bind ipv6 = false
public addr = 127.0.0.1
# On a port other than 6789 clients speak msgr v2, where radosgw asks for "secure" mode,
# which auth none cannot give: it then retries forever with EACCES (-13).
ms mon client mode = crc
[mon.a]
mon data = $C/mon
[osd.0]
osd data = $C/osd0
osd objectstore = memstore
memstore device bytes = 4294967296
osd max object name len = 256
osd max object namespace len = 64
osd crush update on start = false
osd class update on start = false
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
CONF
  local conf=(-c "$C/ceph.conf")
  monmaptool "${conf[@]}" --create --add a "127.0.0.1:$mon_port" --fsid "$fsid" "$C/monmap" >"$C/log/setup.out" 2>&1
  ceph-mon "${conf[@]}" --mkfs -i a --monmap "$C/monmap" >>"$C/log/setup.out" 2>&1
  setsid ceph-mon "${conf[@]}" -i a -f </dev/null >"$C/log/mon.out" 2>&1 &
  echo $! > "$C/run/mon.pid"
  ceph "${conf[@]}" --connect-timeout 20 osd new "$osd_uuid" >>"$C/log/setup.out" 2>&1 || die "ceph mon did not answer; see $C/log"
  ceph "${conf[@]}" osd crush add osd.0 1.0 root=default host=localhost >>"$C/log/setup.out" 2>&1
  ceph-osd "${conf[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$C/log/setup.out" 2>&1
  setsid ceph-osd "${conf[@]}" -i 0 -f </dev/null >"$C/log/osd.out" 2>&1 &
  echo $! > "$C/run/osd.pid"
  osd_up() { ceph -c "$C/ceph.conf" osd stat 2>/dev/null | grep -q '1 up'; }
  wait_for 60 "ceph osd up" osd_up || die "ceph osd did not come up; see $C/log"
  setsid radosgw "${conf[@]}" -n client.rgw -f </dev/null >"$C/log/rgw.out" 2>&1 &
  echo $! > "$C/run/rgw.pid"
  wait_for 60 "radosgw answering on port $port" http_up "$port" || die "radosgw did not answer; see $C/log"
  radosgw-admin "${conf[@]}" -n client.rgw user create --uid=test --display-name=test \
    --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >>"$C/log/setup.out" 2>&1
  # The first bucket creates RGW's data pools (seconds); pay that here, not in the first test.
  (cd "$ROOT" && node --no-warnings --input-type=module -e "
    import { S3Client, CreateBucketCommand, PutObjectCommand, DeleteObjectCommand, DeleteBucketCommand } from '@aws-sdk/client-s3';
    const c = new S3Client({ endpoint: process.argv[1], region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: process.argv[2], secretAccessKey: process.argv[3] } });
    const b = 'skybatch-warmup';
    await c.send(new CreateBucketCommand({ Bucket: b }));
    await c.send(new PutObjectCommand({ Bucket: b, Key: 'k', Body: 'x' }));
    await c.send(new DeleteObjectCommand({ Bucket: b, Key: 'k' }));
    await c.send(new DeleteBucketCommand({ Bucket: b }));
  " "http://127.0.0.1:$port" "$ACCESS_KEY" "$SECRET_KEY") >&2 || die "warm-up bucket failed; see $C/log"
  echo "$port" > "$C/port"
  log "ceph rgw ready on 127.0.0.1:$port ($(( $(now_ms) - T0 )) ms)"
}

install_firebase() {
  local pj="$FB/node_modules/firebase-tools/package.json"
  if [[ -f "$pj" ]] && grep -q "\"version\": \"$FB_VERSION\"" "$pj"; then return 0; fi
  log "installing firebase-tools@$FB_VERSION into $FB (about 90 s)"
  mkdir -p "$FB"
  npm install --prefix "$FB" --save-exact --no-audit --no-fund --loglevel=error "firebase-tools@$FB_VERSION" >&2
}

# Launches the emulator without waiting, so it boots while Ceph starts.
launch_gcs() {
  stop_pidfile "$G/emulator.pid" node
  rm -rf "$G"
  mkdir -p "$G/tmp"
  GCS_PORT=$(free_port)
  TMPDIR="$G/tmp" SKYBATCH_FIREBASE_DIR="$FB" setsid node "$ROOT/scripts/servers/gcs-emulator.mjs" \
    --port "$GCS_PORT" </dev/null >"$G/emulator.log" 2>&1 &
  echo $! > "$G/emulator.pid"
}

wait_gcs() {
  wait_for 60 "gcs emulator answering on port $GCS_PORT" http_up "$GCS_PORT" \
    || { tail -20 "$G/emulator.log" >&2; die "gcs emulator did not start; see $G/emulator.log"; }
  echo "$GCS_PORT" > "$G/port"
}

mkdir -p "$DIR" "$ROOT/.cache"
GCS_PORT=
if gcs_up; then log "gcs emulator already up on 127.0.0.1:$(cat "$G/port")"; else install_firebase; launch_gcs; fi
if ceph_up; then log "ceph rgw already up on 127.0.0.1:$(cat "$C/port")"; else install_ceph; start_ceph; fi
if [[ -n "$GCS_PORT" ]]; then wait_gcs; fi

cat > "$ENV_FILE.tmp" <<ENV
export SKYBATCH_TEST_S3_ENDPOINT=http://127.0.0.1:$(cat "$C/port")
export SKYBATCH_TEST_S3_ACCESS_KEY=$ACCESS_KEY
export SKYBATCH_TEST_S3_SECRET_KEY=$SECRET_KEY
export SKYBATCH_TEST_GCS_HOST=http://127.0.0.1:$(cat "$G/port")
ENV
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "ready in $(( $(now_ms) - T0 )) ms; env in $ENV_FILE"
