#!/usr/bin/env bash
# A one-machine SLURM cluster (munged, slurmctld and slurmd on 127.0.0.1) for trying and testing the SLURM
# launcher. Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge) and root (slurmd starts job
# steps as their user). No systemd and no cgroups: processes are tracked by /proc (proctrack/linuxproc).
#
#   scripts/local_slurm.sh start    # config, key and state under $SLURM_LOCAL_DIR; prints `export SLURM_CONF=...`
#   scripts/local_slurm.sh status   # the daemons' pids and sinfo
#   scripts/local_slurm.sh stop     # stops the daemons and removes $SLURM_LOCAL_DIR
#
# The node's CPUs and memory are read from this machine. Requeued jobs start again after cred_expire
# (5 s here; SLURM's default 120 s), and the scheduler runs every second, so a test cluster answers quickly.
# Time limits are checked every 30 s (fixed in slurmctld): a --signal=SIG@T warning comes at the first check
# within T + 30 s of a job's limit, and the job is ended at the first check past it (KillWait after SIGTERM).
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/resnet-train-slurm}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-16817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-16818}
NODE=$(hostname -s)

die() { echo "local_slurm.sh: $*" >&2; exit 1; }

pid_of() { [ -s "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null && cat "$DIR/$1.pid"; }

write_config() {
    local cpus mem_mb
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc honours OMP_NUM_THREADS; the node does not
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$DIR/spool/ctld" "$DIR/spool/d" "$DIR/log" "$DIR/munge"
    chmod 700 "$DIR/munge"
    cat >"$DIR/slurm.conf" <<EOF
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=5
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
ReturnToService=2
JobRequeue=1
MinJobAge=300
KillWait=10
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
    [ -n "$what" ]
}

fail_with_log() {
    echo "local_slurm.sh: $1; the end of $2:" >&2
    tail -n 15 "$2" >&2 2>/dev/null || true
    exit 1
}

start() {
    command -v slurmctld >/dev/null || PATH=$PATH:/usr/sbin
    for tool in munged slurmctld slurmd sbatch; do
        command -v $tool >/dev/null || die "$tool not found: apt-get install slurm-wlm munge"
    done
    [ "$(id -u)" = 0 ] || die "needs root (slurmd runs jobs as their user)"
    if pid_of slurmctld >/dev/null; then
        echo "export SLURM_CONF=$DIR/slurm.conf"
        return
    fi
    write_config
    [ -s "$DIR/munge/munge.key" ] || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
    munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"
    wait_for 10 munge munge -n -S "$DIR/munge/munge.socket" || fail_with_log "munged did not answer" "$DIR/log/munged.log"
    export SLURM_CONF=$DIR/slurm.conf
    slurmctld -i -f "$SLURM_CONF" || fail_with_log "slurmctld did not start" "$DIR/log/slurmctld.log"
    wait_for 20 slurmctld scontrol ping || fail_with_log "slurmctld did not answer" "$DIR/log/slurmctld.log"
    slurmd -f "$SLURM_CONF" -N "$NODE" || fail_with_log "slurmd did not start" "$DIR/log/slurmd.log"
    idle() { sinfo -h -n "$NODE" -o %t | grep -qx idle; }
    wait_for 30 slurmd idle || fail_with_log "the node did not become idle ($(sinfo -h -o %t))" "$DIR/log/slurmd.log"
    echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
    export SLURM_CONF=$DIR/slurm.conf
    local pid
    if pid_of slurmctld >/dev/null; then  # end the jobs first: their processes outlive the daemons
        scancel --full --signal=KILL --partition=local 2>/dev/null || true
        no_jobs() { [ -z "$(squeue -h -o %i)" ]; }
        wait_for 30 jobs no_jobs || echo "local_slurm.sh: jobs still listed: $(squeue -h -o %i | xargs)" >&2
    fi
    for daemon in slurmd slurmctld munged; do
        if pid=$(pid_of $daemon); then
            kill "$pid"
            wait_for 15 $daemon bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$DIR"
}

status() {
    export SLURM_CONF=$DIR/slurm.conf
    local running=0
    for daemon in munged slurmctld slurmd; do
        if pid=$(pid_of $daemon); then echo "$daemon: pid $pid"; else echo "$daemon: not running"; running=1; fi
    done
    [ $running = 0 ] && sinfo
    return $running
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status (state in \$SLURM_LOCAL_DIR, default /tmp/resnet-train-slurm)" ;;
esac
