#!/usr/bin/env bash
# A single-node SLURM on this machine, for testing the slurm profile without a cluster.
#
#   eval "$(workflow/slurm/localslurm.sh start /tmp/darts-slurm)"   # prints the exports to use it
#   workflow/slurm/install-profile.sh && snakemake --profile slurm   # a workspace or the project root
#   squeue --me -o "%.10i %.40k %.8T %.10M"                         # the rule is in the comment (%k)
#   workflow/slurm/localslurm.sh stop /tmp/darts-slurm
#
# Needs Debian's slurm-wlm and munge (installed by .ci/run; this script installs nothing). Runs
# munged, slurmctld and slurmd in the background with everything (config, key, sockets, state,
# logs, pid files) under STATE_DIR; no systemd, no cgroups. One GPU-less node in partition `gpu`
# (the slurm profile's default) with $DARTS_SLURM_GPUS (default 2) fake `gpu` GRES, so `--gpus=1`
# jobs run, and a `--gres=gpu:2` job is given 2 "GPUs" (SLURM_GPUS_ON_NODE=2: `darts train`
# starts 2 CPU processes). `stop` ends only the processes whose pid files it wrote.
# Ports: $DARTS_SLURM_PORT and the next one (6817).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status STATE_DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
state=$(mkdir -p "$2" && cd "$2" && pwd)
conf="$state/slurm.conf"
port=${DARTS_SLURM_PORT:-6817}
gpus=${DARTS_SLURM_GPUS:-2}
node=$(hostname -s)

need() { command -v "$1" >/dev/null || { echo "localslurm: '$1' not found (apt-get install slurm-wlm munge)" >&2; exit 3; }; }

write_config() {
  local cpus mem_mb
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc alone follows OMP_NUM_THREADS
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
  mkdir -p "$state/ctld" "$state/spool" "$state/log"
  cat >"$conf" <<EOF
ClusterName=darts-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge.socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1000
MinJobAge=300
ReturnToService=2
SlurmdTimeout=300
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$gpus State=UNKNOWN
PartitionName=gpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  # Each fake GPU needs a distinct device file; harmless ones stand in (no cgroups constrain them).
  local files=(/dev/null /dev/zero /dev/full /dev/urandom)
  (( gpus >= 1 && gpus <= ${#files[@]} )) || { echo "localslurm: DARTS_SLURM_GPUS must be 1..${#files[@]}" >&2; exit 2; }
  for f in "${files[@]:0:gpus}"; do echo "NodeName=$node Name=gpu File=$f"; done >"$state/gres.conf"
  # The Snakemake jobstep plugin strips SLURM_* variables (SLURM_CONF too) before its `srun`; a
  # real cluster has its config at the default path, this one finds it through this wrapper.
  mkdir -p "$state/bin"
  printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$conf" "$(command -v srun)" >"$state/bin/srun"
  chmod +x "$state/bin/srun"
}

start() {
  need munged; need slurmctld; need slurmd; need sinfo
  stop_all 2>/dev/null || true
  write_config
  if [[ ! -f "$state/munge.key" ]]; then
    dd if=/dev/urandom of="$state/munge.key" bs=1024 count=1 status=none
    chmod 400 "$state/munge.key"
  fi
  munged --force --key-file="$state/munge.key" --socket="$state/munge.socket" \
    --pid-file="$state/munged.pid" --log-file="$state/log/munged.log" --seed-file="$state/munge.seed"
  slurmctld -f "$conf"
  slurmd -f "$conf" -N "$node"
  for _ in $(seq 1 60); do
    if SLURM_CONF="$conf" sinfo -h -o %t 2>/dev/null | grep -qx "idle"; then
      echo "export SLURM_CONF=$conf"
      echo "export PATH=$state/bin:\$PATH"
      return 0
    fi
    sleep 0.5
  done
  echo "localslurm: the node did not come up; logs in $state/log" >&2
  tail -n 20 "$state"/log/*.log >&2 || true
  exit 1
}

stop_one() {
  local pidfile="$state/$1.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" || true
  fi
  rm -f "$pidfile"
}

stop_all() { stop_one slurmd; stop_one slurmctld; stop_one munged; }

case $action in
  start) start ;;
  stop) stop_all ;;
  status) SLURM_CONF="$conf" sinfo ;;
  *) usage ;;
esac
