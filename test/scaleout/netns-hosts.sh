#!/usr/bin/env bash
# Fake "other machines" for the ssh backend's tests: one network namespace per host, each
# with its own sshd (Debian's openssh-server), reachable only from this machine over a
# bridge of its own.
#
#   root ns : bridge skb$ID = 10.77.N.1/24   (N: a /24 no interface here uses yet)
#   host hK : eth0 = 10.77.N.(10+K)/24, lo up, no default route, sshd on :22, root login
#             by key only; hostname hK (own UTS namespace); own mount namespace in which
#             /root is an empty tmpfs (its own home: nothing cached there from the others)
#             and every path in SKY_NETNS_HIDE is covered by an empty tmpfs (the repo,
#             the coordinator's state: a host then has nothing of skybatch but what the
#             backend ships it)
#   the host-side veth of hK is sky$ID$K; `ip link set sky$ID$K down` cuts hK off.
#
# Usage:  netns-hosts.sh up DIR [h1 h2 ...]     (default h1 h2)
#         netns-hosts.sh down DIR               (safe to run twice)
#         netns-hosts.sh install DIR            (only the packages; DIR is not used)
# Env:    SKY_NETNS_ID    [a-z0-9]{1,6}, default from DIR: names of the bridge/namespaces/veths
#         SKY_NETNS_HIDE  space-separated absolute paths hosts must not see
# Writes DIR/net.env (BRIDGE, HOST_IP, NS_hK, IP_hK, VETH_hK), DIR/id_ed25519 (client key),
# DIR/known_hosts, DIR/ssh_config, DIR/hK/{sshd_config,sshd.pid,sshd.log}.
# Needs root and ip netns; installs openssh-server, openssh-client and iproute2 when missing.
set -euo pipefail
CMD=${1:?usage: netns-hosts.sh up|down DIR [hosts...]}
D=${2:?usage: netns-hosts.sh up|down DIR [hosts...]}
shift 2
mkdir -p "$D"
D=$(cd "$D" && pwd)
ID=${SKY_NETNS_ID:-$(printf '%s' "$D" | sha256sum | cut -c1-5)}
[[ $ID =~ ^[a-z0-9]{1,6}$ ]] || { echo "SKY_NETNS_ID must be 1-6 of [a-z0-9]: $ID" >&2; exit 2; }
BR=skb$ID

down() {
  local h pids
  [ -f "$D/net.env" ] || return 0
  # shellcheck disable=SC1091
  source "$D/net.env"
  for h in $HOSTS; do
    local ns="NS_$h"; ns=${!ns}
    [ -f "$D/$h/sshd.pid" ] && kill "$(cat "$D/$h/sshd.pid")" 2>/dev/null
    rm -f "$D/$h/sshd.pid"
    if ip netns list | cut -d' ' -f1 | grep -qx "$ns"; then
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -n "$pids" ] && kill $pids 2>/dev/null
      for _ in $(seq 1 20); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -n "$pids" ] && kill -9 $pids 2>/dev/null
      ip netns del "$ns" || true
    fi
    local veth="VETH_$h"
    ip link del "${!veth}" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -f "$D/net.env"
}

install_packages() {
  if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ip >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends openssh-server openssh-client iproute2 >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -q --no-install-recommends openssh-server openssh-client iproute2 >/dev/null; }
  fi
}

case $CMD in
  down) down; exit 0 ;;
  install) install_packages; exit 0 ;;
  up) ;;
  *) echo "usage: netns-hosts.sh up|down|install DIR [hosts...]" >&2; exit 2 ;;
esac

HOSTS=("$@")
[ ${#HOSTS[@]} -gt 0 ] || HOSTS=(h1 h2)
install_packages

down   # a previous run of this DIR that was not taken down
mkdir -p /run/sshd
chmod 755 /run/sshd

# --- a /24 nobody here uses, taken under a lock so two runs never pick the same ------
exec 9>/tmp/skybatch-netns.lock
flock 9
NET=
for n in $(seq 1 254); do
  if ! ip -4 -o addr show | grep -q " 10\.77\.$n\."; then NET=10.77.$n; break; fi
done
[ -n "$NET" ] || { echo "no free 10.77.N.0/24 left" >&2; exit 1; }
ip link add "$BR" type bridge
ip addr add "$NET.1/24" dev "$BR"
ip link set "$BR" up
flock -u 9
{
  echo "BRIDGE=$BR"
  echo "HOST_IP=$NET.1"
  echo "HOSTS=\"${HOSTS[*]}\""
} > "$D/net.env"

[ -f "$D/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C skybatch-test-client -f "$D/id_ed25519"
cp "$D/id_ed25519.pub" "$D/authorized_keys"
: > "$D/known_hosts"
: > "$D/ssh_config"

HIDE="mount -t tmpfs -o size=512m,mode=700 skyhome /root"
for p in ${SKY_NETNS_HIDE:-}; do
  [ -d "$p" ] && HIDE="$HIDE && mount -t tmpfs -o size=1m,mode=755 skyhidden '$p'"
done

for h in "${HOSTS[@]}"; do
  k=${h//[!0-9]/}
  [ -n "$k" ] || { echo "host names need a number: $h" >&2; exit 2; }
  ns=sky$ID$h veth=sky$ID$k ip_h=$NET.$((10 + k)) hd=$D/$h
  mkdir -p "$hd"
  ip netns add "$ns"
  ip link add "$veth" type veth peer name "${veth}p"
  ip link set "${veth}p" netns "$ns"
  ip -n "$ns" link set "${veth}p" name eth0
  ip link set "$veth" master "$BR" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip_h/24" dev eth0
  ip -n "$ns" link set eth0 up
  { echo "NS_$h=$ns"; echo "IP_$h=$ip_h"; echo "VETH_$h=$veth"; } >> "$D/net.env"
  [ -f "$hd/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$h" -f "$hd/ssh_host_ed25519_key"
  cat > "$hd/sshd_config" <<EOF
ListenAddress $ip_h
Port 22
HostKey $hd/ssh_host_ed25519_key
PidFile $hd/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile $D/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# the key files live under /tmp, which StrictModes would reject
StrictModes no
X11Forwarding no
PrintMotd no
ClientAliveInterval 3
ClientAliveCountMax 3
EOF
  rm -f "$hd/sshd.pid"
  # its own UTS namespace (hostname $h) and mount namespace (its own /root, hidden paths)
  ip netns exec "$ns" unshare --uts --mount --propagation private sh -c "hostname $h && $HIDE && exec /usr/sbin/sshd -f '$hd/sshd_config' -E '$hd/sshd.log'"
  echo "$ip_h $(cut -d' ' -f1-2 "$hd/ssh_host_ed25519_key.pub")" >> "$D/known_hosts"
  cat >> "$D/ssh_config" <<EOF
Host $h $ip_h
  HostName $ip_h
  User root
  IdentityFile $D/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $D/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
EOF
done

for h in "${HOSTS[@]}"; do
  for i in $(seq 1 50); do
    ssh -F "$D/ssh_config" "$h" true 2>/dev/null && break
    [ "$i" = 50 ] && { echo "sshd on $h is not answering; see $D/$h/sshd.log" >&2; exit 1; }
    sleep 0.1
  done
done
echo "hosts up: ${HOSTS[*]} on $BR ($NET.0/24, this machine $NET.1)"
