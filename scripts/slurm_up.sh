#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (munge, slurmctld, slurmd), for the real-SLURM tests
# (tests/launch/test_slurm_real.py) and for trying the launcher on SLURM. Root, no systemd needed.
#
#   sudo bash scripts/slurm_up.sh          # install if missing, start; fast when already up
#   sudo bash scripts/slurm_up.sh --down   # stop the daemons and clear the cluster's state
#
# The node declares this machine's CPUs and ~85% of its memory, and two stand-in GPUs (gres backed
# by /dev/null and /dev/zero) so that --gpus-per-node and multi-task CPU DDP can be tried without
# GPUs. It refuses to touch a slurm.conf it did not write (a real cluster's).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by scripts/slurm_up.sh"
RUN=/run/slurm
SPOOL_CTLD=/var/spool/slurmctld
SPOOL_D=/var/spool/slurmd
LOGS=/var/log/slurm
PACKAGES=(munge slurmctld slurmd slurm-client)

say() { echo "slurm_up: $*"; }

if [ "$(id -u)" != 0 ]; then say "needs root (it starts munged, slurmctld and slurmd)"; exit 1; fi
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  say "$CONF was not written by this script (a real cluster?): leaving it alone"; exit 1
fi

# The daemon of a pid file, if that process is alive and is the named program.
alive() {  # alive PIDFILE NAME
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ] || return 1
  # a zombie (exited, not yet reaped by a parent that does not wait) is not alive
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

stop() {  # stop PIDFILE NAME: TERM, then KILL after 10 s
  local pid i
  alive "$1" "$2" || { rm -f "$1"; return 0; }
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 50); do alive "$1" "$2" || break; sleep 0.2; done
  alive "$1" "$2" && kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

if [ "${1:-}" = "--down" ]; then
  stop $RUN/slurmd.pid slurmd
  stop $RUN/slurmctld.pid slurmctld
  stop /run/munge/munged.pid munged
  rm -rf $SPOOL_CTLD $SPOOL_D
  say "down"
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # the packages' own service start fails without systemd; this script starts the daemons itself
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.85)}' /proc/meminfo)
mkdir -p $CONF_DIR $RUN $SPOOL_CTLD $SPOOL_D $LOGS
new=$(mktemp)
cat > "$new" <<EOF
$MARK
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((mem_mb / cpus / 2))
GresTypes=gpu
JobRequeue=1
ReturnToService=2
# submitit ignores SIGTERM in the job's main process: a requeued job lingers KillWait seconds
KillWait=5
MinJobAge=600
SchedulerType=sched/backfill
StateSaveLocation=$SPOOL_CTLD
SlurmdSpoolDir=$SPOOL_D
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
gres=$(mktemp)
printf '%s\nAutoDetect=off\nName=gpu File=/dev/null\nName=gpu File=/dev/zero\n' "$MARK" > "$gres"

changed=0
cmp -s "$new" "$CONF" || changed=1
cmp -s "$gres" $CONF_DIR/gres.conf || changed=1
mv "$new" "$CONF"; mv "$gres" $CONF_DIR/gres.conf
chmod 644 "$CONF" $CONF_DIR/gres.conf

# munge: a key, its run directory, the daemon as the munge user
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! alive /run/munge/munged.pid munged; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  runuser -u munge -- /usr/sbin/munged
fi

up() { alive $RUN/slurmctld.pid slurmctld && alive $RUN/slurmd.pid slurmd; }
if [ $changed = 1 ] || ! up; then
  # a new or changed configuration, or a daemon gone: start a fresh cluster (stale jobs cleared)
  stop $RUN/slurmd.pid slurmd
  stop $RUN/slurmctld.pid slurmctld
  rm -rf $SPOOL_CTLD $SPOOL_D; mkdir -p $SPOOL_CTLD $SPOOL_D
  /usr/sbin/slurmctld
  /usr/sbin/slurmd
  say "started slurmctld and slurmd on $host ($cpus CPUs, $mem_mb MB, 2 stand-in GPUs)"
fi

state=""
for i in $(seq 60); do
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null | head -1 || true)
  case "$state" in
    idle|mix|alloc|comp) say "up ($state)"; exit 0 ;;
    down*|drain*|drng*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.5
done
say "node state '${state:-no answer}' after 30 s; see $LOGS/slurmctld.log and $LOGS/slurmd.log"
exit 1
