#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to test sweeps with hydra/launcher=slurm (docs/cluster.md).
#
#   sudo scripts/slurm_local.sh start    # install slurm-wlm and munge if missing, start, wait until the node is idle
#   scripts/slurm_local.sh status        # one line: running or not (exit 0 or 1)
#   sudo scripts/slurm_local.sh stop     # cancel its jobs, stop the daemons, delete its state
#
# Clients find the cluster through SLURM_CONF=$SSGAN_SLURM_DIR/slurm.conf (start prints the line to export).
# Everything lives in SSGAN_SLURM_DIR (default /var/lib/ssgan-slurm): config, munge key and socket, state, logs.
# No cgroups and no slurmdbd: processes are tracked through /proc, and finished jobs are kept in a
# job-completion file that `sacct --completion` reads. On failure: one line on stderr, exit status 1.
set -uo pipefail

DIR=${SSGAN_SLURM_DIR:-/var/lib/ssgan-slurm}
PARTITION=${SSGAN_SLURM_PARTITION:-local}
NODE=localhost
CTLD_PORT=${SSGAN_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${SSGAN_SLURM_SLURMD_PORT:-6818}
WAIT_S=${SSGAN_SLURM_WAIT_S:-60}   # how long start waits for the node to turn idle

CONF=$DIR/slurm.conf
MUNGE=$DIR/munge
export SLURM_CONF=$CONF

fail() { echo "slurm_local: $*" >&2; exit 1; }

# the line of a log that says what went wrong: the last "fatal", else the last "error" (timestamps cut);
# skipped: the notes of a first start (no saved state yet) and the MPI plugins that fail to load and are not used
BENIGN="state file|backup state save|pmix|MPI: Cannot create context|plugin name for mpi/"
last_error() {
  { grep -hi "fatal" "$@" 2>/dev/null || grep -hi "error" "$@" 2>/dev/null | grep -viE "$BENIGN"; } \
    | tail -n 1 | sed -E 's/^\[[^]]*\] //'
}
# ": <that line>", or nothing when the logs hold none
because() { local line; line=$(last_error "$@"); [ -z "$line" ] || echo ": $line"; }

# a pid from a pid file whose process is still alive
alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"; }

node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1; }

install_packages() {
  local missing=0 tool
  for tool in munged slurmctld slurmd sinfo sbatch; do command -v "$tool" >/dev/null || missing=1; done
  [ $missing = 0 ] && return
  command -v apt-get >/dev/null || fail "slurm-wlm is not installed and apt-get is missing"
  mkdir -p "$DIR"
  export DEBIAN_FRONTEND=noninteractive
  local install=(apt-get install -y --no-install-recommends slurm-wlm munge)
  if ! "${install[@]}" >"$DIR/apt.log" 2>&1 9<&-; then   # the package lists may be missing or stale: refresh once
    apt-get update >>"$DIR/apt.log" 2>&1
    "${install[@]}" >>"$DIR/apt.log" 2>&1 9<&- \
      || fail "apt-get could not install slurm-wlm munge (see $DIR/apt.log)"
  fi
}

write_config() {
  local cpus mem_mb headroom_mb
  cpus=$(nproc)
  mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  headroom_mb=$(( mem_mb / 10 > 512 ? mem_mb / 10 : 512 ))   # for the daemons and the submitting process
  (( mem_mb - headroom_mb >= 512 )) || fail "too little memory for a node: ${mem_mb} MB in /proc/meminfo"
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
  cat >"$CONF.tmp" <<EOF
# written by scripts/slurm_local.sh: one node on this machine, no cgroups, no slurmdbd
ClusterName=ssgan
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# processes are found through /proc: no cgroup hierarchy needed
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
# no database: finished jobs go to a text file (sacct --completion reads it)
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# trust the sizes below even where the detected topology differs; a restarted node returns to service
SlurmdParameters=config_overrides
ReturnToService=2
# short waits: a test cluster
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$(( mem_mb - headroom_mb )) State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

start_munge() {
  [ -n "$(alive "$MUNGE/munged.pid")" ] && return
  mkdir -p "$MUNGE" && chmod 0755 "$MUNGE"   # every user's commands reach the socket; the key stays 0600
  if [ ! -s "$MUNGE/munge.key" ]; then   # mungekey where munge has it (0.5.14 on), else random bytes
    { mungekey --create --keyfile="$MUNGE/munge.key" || dd if=/dev/urandom of="$MUNGE/munge.key" bs=1024 count=1; } \
      >/dev/null 2>&1 || fail "could not create the munge key $MUNGE/munge.key"
  fi
  chmod 0600 "$MUNGE/munge.key"
  rm -f "$MUNGE/munge.socket" "$MUNGE/munge.socket.lock"
  munged --force --key-file="$MUNGE/munge.key" --socket="$MUNGE/munge.socket" --pid-file="$MUNGE/munged.pid" \
    --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed" </dev/null >>"$MUNGE/munged.log" 2>&1 9<&- \
    || fail "munged did not start$(because "$MUNGE/munged.log")"
  munge --socket="$MUNGE/munge.socket" -n 2>/dev/null | unmunge --socket="$MUNGE/munge.socket" >/dev/null 2>&1 \
    || fail "munge cannot encode and decode a credential (see $MUNGE/munged.log)"
}

# start_daemon NAME PIDFILE LOG COMMAND...: start unless running, then wait for its pid file
start_daemon() {
  local name=$1 pidfile=$2 log=$3 i
  shift 3
  [ -n "$(alive "$pidfile")" ] && return
  "$@" </dev/null >>"$log.out" 2>&1 9<&- || fail "$name did not start$(because "$log" "$log.out")"
  for i in $(seq 50); do
    [ -n "$(alive "$pidfile")" ] && return
    sleep 0.2
  done
  fail "$name did not start$(because "$log" "$log.out")"
}

start() {
  [ "$(id -u)" = 0 ] || fail "not root: cannot start slurmd (it runs jobs as their users)"
  install_packages
  write_config
  start_munge
  start_daemon slurmctld "$DIR/run/slurmctld.pid" "$DIR/log/slurmctld.log" slurmctld -f "$CONF"
  start_daemon slurmd "$DIR/run/slurmd.pid" "$DIR/log/slurmd.log" slurmd -f "$CONF" -N "$NODE"
  local state="" deadline=$(( SECONDS + WAIT_S ))
  while (( SECONDS < deadline )); do
    state=$(node_state)
    case $state in
      idle|mix|alloc) break ;;
      down*|drain*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 ;;
    esac
    sleep 1
  done
  case $state in
    idle|mix|alloc) ;;
    "") fail "sinfo does not answer after ${WAIT_S}s$(because "$DIR/log/slurmctld.log")" ;;
    *) fail "node $NODE is $state after ${WAIT_S}s$(because "$DIR/log/slurmd.log" "$DIR/log/slurmctld.log")" ;;
  esac
  echo "slurm_local: node $NODE $state in partition $PARTITION ($(nproc) CPUs); export SLURM_CONF=$CONF"
}

# stop_daemon NAME PIDFILE: SIGTERM, then SIGKILL after a grace period
stop_daemon() {
  local pid i
  pid=$(alive "$2") || return 0
  kill "$pid" 2>/dev/null
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null
}

stop() {
  [ -d "$DIR" ] || { echo "slurm_local: not running"; return 0; }
  [ "$(id -u)" = 0 ] || fail "not root: cannot stop the cluster's daemons"
  if [ -n "$(alive "$DIR/run/slurmctld.pid")" ]; then
    scancel --partition="$PARTITION" >/dev/null 2>&1
    local i
    for i in $(seq 30); do   # let running jobs end before their slurmd goes
      [ -z "$(squeue -h -p "$PARTITION" -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop_daemon slurmd "$DIR/run/slurmd.pid"
  stop_daemon slurmctld "$DIR/run/slurmctld.pid"
  stop_daemon munged "$MUNGE/munged.pid"
  rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$MUNGE" "$CONF" "$CONF.tmp" "$DIR/apt.log"
  rmdir "$DIR" 2>/dev/null
  echo "slurm_local: stopped"
}

status() {
  local state
  [ -f "$CONF" ] && command -v sinfo >/dev/null || { echo "slurm_local: not running"; return 1; }
  state=$(node_state)
  case $state in
    "") echo "slurm_local: not running (no answer from slurmctld)"; return 1 ;;
    idle|mix|alloc|comp) ;;
    *) echo "slurm_local: node $NODE is $state"; return 1 ;;
  esac
  echo "slurm_local: node $NODE $state in partition $PARTITION; export SLURM_CONF=$CONF"
}

# one start or stop at a time (two test sessions may share the machine): a lock on this script's own file,
# on descriptor 9, which the daemons do not inherit (9<&- above)
serialised() { exec 9<"$0"; flock -w 600 9 || fail "another start or stop holds the lock on $0"; "$@"; }

case ${1:-} in
  start) serialised start ;;
  stop) serialised stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
