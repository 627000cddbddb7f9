#!/bin/sh
# tests/slurm/cluster.sh — a real single-host Slurm cluster for the sweep tests (Debian's
# slurm-wlm 22.05 + munge), entirely inside one scratch folder, run as root.
#
#   sh tests/slurm/cluster.sh start DIR   munged, slurmctld -D, slurmd -D in the background;
#                                         waits (bounded) until the node is idle; prints
#                                         "export SLURM_CONF=DIR/slurm.conf" on success
#   sh tests/slurm/cluster.sh stop DIR    kills exactly the processes it started (pid files)
#
# Config: ClusterName lcbtest, the controller and the only node on this host (its short name,
# NodeAddr 127.0.0.1, the CPUs the kernel reports), one partition `debug`, no cgroups
# (proctrack/linuxproc, task/none), no accounting, munge on a private socket with a key
# generated here, ports from LCB_SLURM_PORT (default 16817) and the next one.
set -eu
cmd=$1; D=$2
case "$cmd" in
start)
  mkdir -p "$D/state" "$D/spool" "$D/munge"
  chmod 700 "$D/munge"
  for b in munged mungekey slurmctld slurmd sinfo; do
    command -v $b >/dev/null 2>&1 || { echo "SKIP: $b not installed (apt-get install slurm-wlm munge)"; exit 3; }
  done
  mungekey --create --keyfile="$D/munge/munge.key" --force >/dev/null 2>&1 || \
    dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 2>/dev/null
  chmod 400 "$D/munge/munge.key"
  munged --force --key-file="$D/munge/munge.key" --socket="$D/munge/munge.sock" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/munge.seed" \
    || { echo "FAIL: munged did not start: $(tail -3 "$D/munge/munged.log" 2>/dev/null)"; exit 1; }
  host=$(hostname -s)
  cpus=$(nproc)
  port=${LCB_SLURM_PORT:-16817}
  cat > "$D/slurm.conf" <<CONF
ClusterName=lcbtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=30
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$D/slurm.conf"
  slurmctld -D -f "$SLURM_CONF" >"$D/slurmctld.out" 2>&1 &
  echo $! > "$D/slurmctld.bgpid"
  slurmd -D -f "$SLURM_CONF" >"$D/slurmd.out" 2>&1 &
  echo $! > "$D/slurmd.bgpid"
  i=0
  while [ $i -lt 60 ]; do
    st=$(sinfo -h -N -o "%T" 2>/dev/null | head -1 || true)
    case "$st" in idle*|mixed*|allocated*) echo "export SLURM_CONF=$SLURM_CONF"; exit 0;; esac
    for p in slurmctld slurmd; do
      kill -0 "$(cat "$D/$p.bgpid")" 2>/dev/null || { echo "FAIL: $p exited: $(tail -5 "$D/$p.out" "$D/$p.log" 2>/dev/null | tr '\n' ' ')"; exit 1; }
    done
    sleep 1; i=$((i + 1))
  done
  echo "FAIL: the node did not become idle in 60 s (state: ${st:-none}): $(tail -5 "$D/slurmctld.log" "$D/slurmd.log" 2>/dev/null | tr '\n' ' ')"
  exit 1;;
stop)
  for f in slurmd.bgpid slurmctld.bgpid; do
    [ -f "$D/$f" ] && kill "$(cat "$D/$f")" 2>/dev/null || true
  done
  sleep 1
  for f in slurmd.bgpid slurmctld.bgpid; do
    [ -f "$D/$f" ] && kill -9 "$(cat "$D/$f")" 2>/dev/null || true
  done
  [ -f "$D/munge/munged.pid" ] && kill "$(cat "$D/munge/munged.pid")" 2>/dev/null || true
  exit 0;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2;;
esac
