#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for testing sweeps on a real scheduler.
#
#   scripts/slurm_testbed.sh install   # as root: apt-get install slurm-wlm munge (Debian/Ubuntu)
#   scripts/slurm_testbed.sh start     # munged + slurmctld + slurmd; prints the SLURM_CONF to export
#                                      # (already running from the same dir: reused, exit 0)
#   scripts/slurm_testbed.sh status    # sinfo / squeue
#   scripts/slurm_testbed.sh stop      # stops the daemons it started and removes its state dir
#
# Everything lives in $LOSSBENCH_SLURM_DIR (default /tmp/lossbench-slurm): slurm.conf, the daemons'
# state, spool, logs and pid files. Clients (sbatch, squeue, scontrol, submitit) find the cluster via
# SLURM_CONF=$LOSSBENCH_SLURM_DIR/slurm.conf. Minimal on purpose: one node with this machine's CPUs
# and memory, one partition "cpu", munge authentication, proctrack/linuxproc and no cgroups (works in
# containers), no accounting database (so `sacct` is unavailable; submitit then tells finished jobs by
# their result files), requeue allowed, KillWait 10 s. Daemons run as root. Exit status 0 = the node
# is idle and accepts jobs.
set -euo pipefail

DIR=${LOSSBENCH_SLURM_DIR:-/tmp/lossbench-slurm}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)

die() { echo "slurm_testbed: $*" >&2; exit 1; }

install() {
    [ "$(id -u)" = 0 ] || die "install needs root (apt-get)"
    command -v apt-get >/dev/null || die "install needs apt-get (Debian/Ubuntu)"
    # A fresh machine has no package lists yet: fetch them only then.
    apt-cache policy slurm-wlm 2>/dev/null | grep -q 'Candidate: [0-9]' || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge
}

write_conf() {
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat > "$CONF" <<EOF
ClusterName=lossbench
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged is already serving this machine
    fi
    [ -r /etc/munge/munge.key ] || die "no /etc/munge/munge.key: run '$0 install' (the munge package creates it)"
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged || munged --force
    else
        munged --force
    fi
    munge -n | unmunge >/dev/null || die "munged started but a credential does not round-trip"
    echo started > "$DIR/munged.started-by-testbed"
}

wait_idle() {
    local i state
    for i in $(seq 1 60); do
        state=$(SLURM_CONF=$CONF sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true)
        case "$state" in
            idle|mix|alloc) return 0 ;;
        esac
        sleep 1
    done
    echo "--- slurmctld.log" >&2; tail -n 20 "$DIR/log/slurmctld.log" >&2 || true
    echo "--- slurmd.log" >&2; tail -n 20 "$DIR/log/slurmd.log" >&2 || true
    die "the node did not become idle within 60 s (sinfo state: '${state:-none}')"
}

start() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        || die "slurmctld/slurmd/munged not installed: run '$0 install' as root"
    [ "$(id -u)" = 0 ] || die "start needs root (the daemons run as root)"
    if running slurmctld && running slurmd; then  # started before from this dir: reuse it
        wait_idle
        echo "slurm_testbed: already running (state in $DIR), reused" >&2
        echo "export SLURM_CONF=$CONF"
        return
    fi
    if running slurmctld || running slurmd; then stop; fi  # half of an earlier start: clear it
    local other
    other=$( { pgrep -x slurmctld; pgrep -x slurmd; } | tr '\n' ' ' || true)
    [ -z "$other" ] || die "SLURM daemons not started from $DIR are running (pids $other); their ports would collide. \
Stop them, or point LOSSBENCH_SLURM_DIR at the dir they were started from"
    rm -rf "$DIR"
    write_conf
    start_munge
    slurmctld -f "$CONF" -c   # -c: a clean start, no old job state
    slurmd -f "$CONF"
    wait_idle
    echo "export SLURM_CONF=$CONF"
}

running() {  # running NAME: the daemon NAME started from $DIR is alive
    [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null
}

stop() {
    local name pid
    for name in slurmd slurmctld; do
        if [ -f "$DIR/$name.pid" ]; then
            pid=$(cat "$DIR/$name.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    if [ -f "$DIR/munged.started-by-testbed" ] && [ -f /run/munge/munged.pid ]; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}

status() {
    SLURM_CONF=$CONF sinfo && SLURM_CONF=$CONF squeue
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 install|start|status|stop" ;;
esac
