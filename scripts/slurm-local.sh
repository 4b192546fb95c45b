#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for lmbench's slurm tests and for trying
# `hydra/launcher=slurm` (Debian/Ubuntu, as root). Idempotent.
#   scripts/slurm-local.sh          install slurm-wlm + munge, write slurm.conf, start the daemons,
#                                   wait until the node is idle
#   scripts/slurm-local.sh stop     stop slurmctld, slurmd and munged
#   scripts/slurm-local.sh status   what is running
set -euo pipefail

CONF=/etc/slurm/slurm.conf
LOGS=/var/log/slurm
STATE=/var/lib/slurm
HOST=$(hostname -s)

die() { echo "slurm-local: $*" >&2; exit 1; }
say() { echo "slurm-local: $*"; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "this must run as root: it installs slurm-wlm and munge with apt and \
starts munged, slurmctld and slurmd (try: sudo $0 ${1:-})."
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
      && command -v munged >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || die "apt-get not found: this script sets up SLURM on Debian or \
Ubuntu. Elsewhere install slurm (slurmctld, slurmd, client commands) and munge with your package \
manager, then run it again."
  say "installing slurm-wlm and munge with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
}

write_conf() {
  # The node exactly as slurmd sees it: hostname, CPUs, sockets/cores/threads, memory (MB).
  local node
  node=$(slurmd -C | head -n 1)
  mkdir -p /etc/slurm "$LOGS" "$STATE/slurmctld" "$STATE/slurmd"
  chown slurm:slurm "$LOGS" "$STATE/slurmctld"
  local wanted
  wanted=$(cat <<EOF
# Written by lmbench's scripts/slurm-local.sh: one node, no accounting database.
ClusterName=lmbench-local
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
# jobs are bound to the CPUs they asked for, as on a real cluster
TaskPlugin=task/affinity
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
# schedule every 2 s (defaults: 60 s, backfill 30 s): a requeued job starts again within seconds
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
JobRequeue=1
# a cancelled job is killed 5 s after SIGTERM (default 30 s; slurmd waits at least 5 s)
KillWait=5
# a requeued job may start again after 20 s (default 120): a job requeued at its time limit then
# skips the next limit check (every 30 s) and runs ~40 s before its next warning
AuthInfo=cred_expire=20
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
$node State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
  if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$wanted" ]; then
    say "writing $CONF ($node)"
    printf '%s\n' "$wanted" > "$CONF"
    if alive /run/slurmctld.pid; then
      stop_slurm
    fi
  fi
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating the munge key"
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
  fi
  mkdir -p /run/munge
  chown munge:munge /run/munge
  chmod 0755 /run/munge
  if ! alive /run/munge/munged.pid; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
  fi
  munge -n | unmunge >/dev/null || die "munged does not answer: see /var/log/munge/munged.log"
}

start_slurm() {
  if ! alive /run/slurmctld.pid; then
    say "starting slurmctld"
    slurmctld
  fi
  if ! alive /run/slurmd.pid; then
    say "starting slurmd"
    slurmd
  fi
  for _ in $(seq 60); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    case "$state" in
      idle|mixed|allocated) say "node $HOST is $state: $(sinfo -h -o '%P %D nodes, %c CPUs, %m MB')"; return ;;
      *drain*|down*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
  done
  die "node $HOST did not become idle within 60 s (state: ${state:-none}); see $LOGS/slurmctld.log \
and $LOGS/slurmd.log"
}

stop_slurm() {
  if alive /run/slurmctld.pid; then
    say "stopping slurmctld and slurmd"
    scontrol shutdown >/dev/null 2>&1 || true
  fi
  for pidfile in /run/slurmctld.pid /run/slurmd.pid; do
    for _ in $(seq 30); do alive "$pidfile" || break; sleep 0.5; done
    if alive "$pidfile"; then kill "$(cat "$pidfile")"; fi
  done
}

stop_munge() {
  if alive /run/munge/munged.pid; then
    say "stopping munged"
    kill "$(cat /run/munge/munged.pid)"
  fi
}

case "${1:-start}" in
  start) need_root start; install; write_conf; start_munge; start_slurm ;;
  stop) need_root stop; stop_slurm; stop_munge; say "stopped" ;;
  status)
    for d in munge/munged slurmctld slurmd; do
      if alive "/run/$d.pid"; then echo "${d#*/}: running"; else echo "${d#*/}: stopped"; fi
    done
    if alive /run/slurmctld.pid; then sinfo; fi ;;
  *) die "usage: $0 [start|stop|status]" ;;
esac
