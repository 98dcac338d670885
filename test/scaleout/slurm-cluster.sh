#!/usr/bin/env bash
# A throwaway Slurm cluster on this machine for the slurm backend's tests: Debian's
# munged + slurmctld + two slurmd (Debian builds Slurm with multiple-slurmd, so both run
# here on 127.0.0.1 with their own ports), all as root, daemonized, every file in DIR.
#
#   cpu0  CPUs=2 RealMemory=2000, no GPU
#   gpu0  CPUs=2 RealMemory=2000, Gres=gpu:L4:1 -- a fake GPU: gres.conf's File= must name
#         one character device per GPU, and a symlink to /dev/null is one (nothing opens it
#         with task/none); --gres=gpu:L4:1 then schedules there and sets CUDA_VISIBLE_DEVICES
#
# Usage:  slurm-cluster.sh up DIR        (starts from a clean state; a previous run of DIR is stopped first)
#         slurm-cluster.sh down DIR      (safe to run twice)
#         slurm-cluster.sh install       (only the packages)
# DIR/client is hidden from the nodes (an empty tmpfs over it in their mount namespace).
# Writes DIR/slurm.conf and DIR/gres.conf (not /etc/slurm: clients find the cluster through
# SLURM_CONF) and DIR/slurm.env (SLURM_CONF=...). Needs root; installs slurmctld, slurmd,
# slurm-client and munge when missing. munged is machine-wide (/run/munge): started here
# only when none runs, and then stopped by `down`.
set -euo pipefail
CMD=${1:?usage: slurm-cluster.sh up|down DIR | install}

install_packages() {
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    local pkgs=(slurmctld slurmd slurm-client munge)
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; }
  fi
}
if [ "$CMD" = install ]; then install_packages; exit 0; fi

D=${2:?usage: slurm-cluster.sh up|down DIR}
mkdir -p "$D"
D=$(cd "$D" && pwd)
export SLURM_CONF=$D/slurm.conf

# Stops what `up` started, by pid file only. Killing slurmd does not kill jobs (slurmstepd
# and the job's processes are re-parented to init), so every job is cancelled first.
down() {
  if [ -f "$D/slurmctld.pid" ] && kill -0 "$(cat "$D/slurmctld.pid")" 2>/dev/null; then
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    [ -n "$jobs" ] && scancel --full --quiet $jobs 2>/dev/null
    for _ in $(seq 1 75); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  local pids=() f p
  for f in "$D"/slurmd-*.pid "$D/slurmctld.pid"; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    rm -f "$f"
    kill -0 "$p" 2>/dev/null && pids+=("$p")
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      local alive=()
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
      [ ${#alive[@]} = 0 ] && break
      sleep 0.1
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  fi
  if [ -f "$D/munged.ours" ]; then
    p=$(cat /run/munge/munged.pid 2>/dev/null || true)
    if [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = munged ]; then
      kill "$p" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$D/munged.ours"
  fi
}

case $CMD in
  down) down; exit 0 ;;
  up) ;;
  *) echo "usage: slurm-cluster.sh up|down DIR | install" >&2; exit 2 ;;
esac

install_packages
down
mkdir -p "$D"/{ctld,log,spool/cpu0,spool/gpu0,fakegpu}
rm -f "$D"/log/*.log

# munge: the package's postinst made /etc/munge/munge.key; make one if it is absent
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge
if ! { [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
  runuser -u munge -- /usr/sbin/munged # daemonizes; pid in /run/munge/munged.pid
  touch "$D/munged.ours"
fi
for _ in $(seq 1 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done

# Three free ports in a row, away from Ceph's OSDs (6800-7300), taken under a lock so two
# runs never pick the same ones.
exec 9>/tmp/skybatch-slurm-ports.lock
flock 9
PORT=
for base in $(seq 17817 10 18817); do
  if ! ss -Htln "( sport >= :$base and sport <= :$((base + 2)) )" | grep -q .; then PORT=$base; break; fi
done
[ -n "$PORT" ] || { echo "no three free ports in a row between 17817 and 18819" >&2; exit 1; }

HOST=$(hostname -s) # slurmctld refuses to run unless SlurmctldHost names this host
cat > "$SLURM_CONF" <<EOF
# written by test/scaleout/slurm-cluster.sh
ClusterName=skytest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$D/ctld
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
# no cgroups: nothing here needs them, and this sandbox's cgroup mounts are not Slurm's to touch
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# no slurmdbd (no sacct): finished jobs stay visible to squeue -t all for MinJobAge seconds
MinJobAge=300
MpiDefault=none
SchedulerType=sched/backfill
# A job that waits for Resources stops the main scheduler from starting the jobs queued behind
# it in its partition: only backfill does, every bf_interval seconds (30 by default).
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmdTimeout=20
SlurmctldTimeout=20
InactiveLimit=0
KillWait=2
GresTypes=gpu
NodeName=cpu0 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((PORT + 1)) CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2000 State=UNKNOWN
NodeName=gpu0 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((PORT + 2)) CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2000 Gres=gpu:L4:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
cat > "$D/gres.conf" <<EOF
AutoDetect=off
NodeName=gpu0 Name=gpu Type=L4 File=$D/fakegpu/gpu0-gpu0
EOF
ln -sfn /dev/null "$D/fakegpu/gpu0-gpu0"
echo "SLURM_CONF=$SLURM_CONF" > "$D/slurm.env"

cd "$D"
slurmctld -c -f "$SLURM_CONF" # -c: a clean state; daemonizes
flock -u 9
# The nodes do not see DIR/client, as a cluster's nodes do not see a laptop's folders: each
# slurmd runs in a mount namespace of its own with an empty tmpfs over it (its jobs inherit
# it). The test keeps there a project whose packages must reach the nodes another way.
mkdir -p "$D/client"
for n in cpu0 gpu0; do
  unshare --mount --propagation private sh -c 'mount -t tmpfs -o size=1m,mode=755 skybatch-hidden "$1" && exec slurmd -f "$2" -N "$3"' sh "$D/client" "$SLURM_CONF" "$n"
done

for i in $(seq 1 150); do
  [ "$(sinfo -h -N -t idle -o '%N' 2>/dev/null | sort -u | wc -l)" -ge 2 ] && break
  [ "$i" = 150 ] && { echo "slurm nodes not idle after 30 s (logs in $D/log):" >&2; sinfo -N >&2 || true; exit 1; }
  sleep 0.2
done
echo "slurm up: nodes cpu0, gpu0 (gpu:L4:1); slurmctld on 127.0.0.1:$PORT; SLURM_CONF=$SLURM_CONF"
