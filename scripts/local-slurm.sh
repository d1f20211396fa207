#!/usr/bin/env bash
# A private single-node Slurm (munged + slurmctld + slurmd) for the cluster tests and for trying
# samples/slurm/ on one machine, from ../shared/notes/slurm-localhost.md. Everything lives in one
# folder (config, state, logs, pid files, munge key and socket, own ports), so /etc/slurm, /etc/munge
# and any Slurm already on the machine are left alone. Needs root (or sudo): slurmd starts jobs.
#   scripts/local-slurm.sh up      start it; prints `export SLURM_CONF=...` for the client commands
#   scripts/local-slurm.sh down    stop the daemons, forget all jobs, remove the folder
#   scripts/local-slurm.sh status  exit 0 if it is up
# STUDIO_SLURM_DIR (default /tmp/studio-slurm) is the folder. Exit code 77 from `up`: Slurm
# cannot be started on this machine (the reason is printed); the cluster tests then skip.
set -euo pipefail
D="${STUDIO_SLURM_DIR:-/tmp/studio-slurm}"
CMD="${1:-}"
PORT_CTLD="${STUDIO_SLURM_PORT:-6917}"

cannot() {
  echo "local-slurm: cannot start Slurm here: $*" >&2
  exit 77
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# A daemon from a pid file is alive when its process exists and is not a zombie: where PID 1 does
# not reap, a stopped daemon lingers as <defunct>, which `kill -0` still reports.
pid_alive() {
  [ -s "$1" ] || return 1
  local p
  p=$(cat "$1")
  [ -r "/proc/$p/stat" ] || return 1
  [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ]
}

stop_daemons() {
  if [ -f "$D/slurm.conf" ] && pid_alive "$D/slurmctld.pid"; then
    # Cancel every job and wait (up to KillWait) until they are gone, so no job process outlives
    # the daemons.
    export SLURM_CONF="$D/slurm.conf"
    scancel --user="$(id -un)" 2>/dev/null || true
    squeue -h -o %A 2>/dev/null | xargs -r scancel 2>/dev/null || true
    for _ in $(seq 1 150); do
      [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  for f in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munged.pid"; do
    pid_alive "$f" || continue
    p=$(cat "$f")
    as_root kill "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do pid_alive "$f" || break; sleep 0.1; done
    if pid_alive "$f"; then as_root kill -9 "$p" 2>/dev/null || true; sleep 0.2; fi
  done
  # Jobs' processes (proctrack/linuxproc does not outlive slurmd's own kill): none may be left.
  as_root pkill -f -- "$D/" 2>/dev/null || true
}

case "$CMD" in
up)
  for b in munged mungekey slurmctld slurmd sbatch scontrol; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] ||
      cannot "$b is not installed (scripts/install-deps.sh installs slurmctld slurmd slurm-client munge)"
  done
  if [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
    cannot "slurmd needs root and this user has no password-less sudo"
  fi
  if pid_alive "$D/slurmctld.pid" && pid_alive "$D/slurmd.pid" && pid_alive "$D/munged.pid"; then
    echo "export SLURM_CONF=$D/slurm.conf"
    exit 0
  fi
  stop_daemons
  as_root rm -rf "$D"
  as_root install -d -m 0755 "$D" "$D/state" "$D/spool" "$D/log"
  # munge: a key of our own, a socket in the folder (munged checks the folder is not writable by
  # others), run as root with --force because no munge user is assumed.
  as_root dd if=/dev/urandom of="$D/munge.key" bs=1024 count=1 status=none
  as_root chmod 0400 "$D/munge.key"
  as_root /usr/sbin/munged --force --key-file="$D/munge.key" --socket="$D/munge.socket" \
    --pid-file="$D/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/munged.seed" ||
    cannot "munged did not start (see $D/log/munged.log)"
  H=$(hostname -s)
  NODE=$(/usr/sbin/slurmd -C | head -1)
  MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE")
  NODE=$(sed "s/RealMemory=[0-9]*/RealMemory=$((MEM * 9 / 10))/" <<<"$NODE")
  cat >"$D/slurm.conf.tmp" <<CONF
# Written by studio's scripts/local-slurm.sh: a private single-node cluster for tests.
ClusterName=studiolocal
SlurmctldHost=${H}
SlurmctldPort=${PORT_CTLD}
SlurmdPort=$((PORT_CTLD + 1))
SlurmUser=root
# Our own munged; requeued jobs become eligible cred_expire seconds after the requeue (default 120).
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${D}/munge.socket,cred_expire=10
StateSaveLocation=${D}/state
SlurmdSpoolDir=${D}/spool
SlurmctldPidFile=${D}/slurmctld.pid
SlurmdPidFile=${D}/slurmd.pid
SlurmctldLogFile=${D}/log/slurmctld.log
SlurmdLogFile=${D}/log/slurmd.log
PlugStackConfig=${D}/plugstack.conf
# No cgroups, systemd or accounting database: plain /proc process tracking.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
# No batch start delay; the main scheduler every 2 s, so a requeued job restarts soon after.
SchedulerParameters=batch_sched_delay=0,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=30
MinJobAge=600
# Preemption: a job in 'high' requeues running jobs of 'debug'.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
${NODE} State=UNKNOWN
PartitionName=debug Nodes=${H} Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=high Nodes=${H} MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
CONF
  as_root touch "$D/plugstack.conf"
  as_root mv "$D/slurm.conf.tmp" "$D/slurm.conf"
  export SLURM_CONF="$D/slurm.conf"
  as_root env SLURM_CONF="$D/slurm.conf" /usr/sbin/slurmctld -i ||
    cannot "slurmctld did not start (see $D/log/slurmctld.log)"
  as_root env SLURM_CONF="$D/slurm.conf" /usr/sbin/slurmd ||
    cannot "slurmd did not start (see $D/log/slurmd.log)"
  for _ in $(seq 1 100); do
    [ "$(sinfo -h -n "$H" -p debug -o %t 2>/dev/null)" = idle ] && break
    sleep 0.2
  done
  state=$(sinfo -h -n "$H" -p debug -o %t 2>/dev/null || true)
  [ "$state" = idle ] || {
    tail -5 "$D/log/slurmctld.log" "$D/log/slurmd.log" >&2 || true
    stop_daemons
    cannot "the node did not become idle (state '${state:-none}')"
  }
  echo "export SLURM_CONF=$D/slurm.conf"
  ;;
down)
  stop_daemons
  left=""
  for f in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munged.pid"; do
    pid_alive "$f" && left="$left $(basename "$f" .pid)"
  done
  [ -z "$left" ] || { echo "local-slurm: still running:$left" >&2; exit 1; }
  as_root rm -rf "$D"
  ;;
status)
  pid_alive "$D/slurmctld.pid" && pid_alive "$D/slurmd.pid" && pid_alive "$D/munged.pid"
  ;;
*)
  echo "usage: $0 up|down|status   (folder: STUDIO_SLURM_DIR, default /tmp/studio-slurm)" >&2
  exit 2
  ;;
esac
