#!/usr/bin/env bash
# Start a real one-node SLURM cluster (munge, MariaDB + slurmdbd, slurmctld, slurmd) for tests and CI.
# Daemons run directly (no systemd); all state, logs and pid files live under one folder.
#
# Usage:  scripts/slurm/start.sh          (idempotent: daemons already running are left as they are)
#         scripts/slurm/stop.sh           (stops exactly the daemons this script started)
#
# Environment (all optional):
#   SAM3_ANGIO_SLURM_DIR         state folder                                  [/tmp/sam3-angio-slurm]
#   SAM3_ANGIO_SLURM_PORT        slurmctld port; slurmd, slurmdbd and MariaDB
#                                use the next three ports                       [6817]
#   SAM3_ANGIO_SLURM_ACCOUNTING  1: run slurmdbd + MariaDB so that `sacct` (which submitit polls)
#                                knows every job; 0: no accounting (a job that dies without writing
#                                its result then makes submitit's job.result() wait forever)   [1]
#   SAM3_ANGIO_SLURM_LINK_ETC    1: symlink /etc/slurm/slurm.conf to the generated file when no
#                                slurm.conf is there, so sbatch/squeue/sacct work without
#                                SLURM_CONF (stop.sh removes the link)            [1]
#   SAM3_ANGIO_SLURM_INSTALL     1: apt-get install missing Debian packages      [1]
#   SAM3_ANGIO_SLURM_REQUEUE_S   seconds a requeued job waits before it may start again (SLURM's
#                                AuthInfo cred_expire; SLURM's default is 120)    [20]
#
# Exit status: 0 cluster up (node idle or running jobs); 3 the daemons cannot run on this machine
# (not root, packages missing and not installable); 1 anything else (a real failure: read the logs).
set -euo pipefail

STATE=${SAM3_ANGIO_SLURM_DIR:-/tmp/sam3-angio-slurm}
PORT=${SAM3_ANGIO_SLURM_PORT:-6817}
ACCOUNTING=${SAM3_ANGIO_SLURM_ACCOUNTING:-1}
LINK_ETC=${SAM3_ANGIO_SLURM_LINK_ETC:-1}
INSTALL=${SAM3_ANGIO_SLURM_INSTALL:-1}
REQUEUE_S=${SAM3_ANGIO_SLURM_REQUEUE_S:-20}
CLUSTER=sam3angio
PARTITION=debug
SLURMD_PORT=$((PORT + 1))
DBD_PORT=$((PORT + 2))
DB_PORT=$((PORT + 3))

ETC=$STATE/etc
RUN=$STATE/run
LOG=$STATE/log
CONF=$ETC/slurm.conf
export SLURM_CONF=$CONF

say() { printf 'slurm/start: %s\n' "$*"; }
cannot() { printf 'slurm/start: cannot start SLURM on this machine: %s\n' "$*" >&2; exit 3; }
die() { printf 'slurm/start: error: %s\n' "$*" >&2; exit 1; }

# alive NAME PIDFILE: the pid in PIDFILE is a running process whose command name is NAME.
alive() {
    local pid
    [[ -s $2 ]] || return 1
    pid=$(<"$2")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$1" ]]
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.2 s until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what did not come up in time (logs: $LOG)"
        sleep 0.2
    done
}

[[ $(uname -s) == Linux ]] || cannot "not Linux"

# ---------------------------------------------------------------- packages
need_bins=(munged mungekey slurmctld slurmd sbatch sacct srun scontrol)
need_pkgs=(munge slurmctld slurmd slurm-client)
if [[ $ACCOUNTING == 1 ]]; then
    need_bins+=(slurmdbd mariadbd mariadb-install-db mariadb)
    need_pkgs+=(slurmdbd mariadb-server)
fi
missing=()
for b in "${need_bins[@]}"; do command -v "$b" >/dev/null 2>&1 || missing+=("$b"); done
if ((${#missing[@]})); then
    [[ $INSTALL == 1 ]] || cannot "missing ${missing[*]} and SAM3_ANGIO_SLURM_INSTALL=0"
    [[ $EUID == 0 ]] || cannot "missing ${missing[*]}; installing needs root"
    command -v apt-get >/dev/null 2>&1 || cannot "missing ${missing[*]} and no apt-get"
    say "installing ${need_pkgs[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # Keep apt's postinst scripts from starting system-wide daemons we would not own.
    own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    t0=$(date +%s.%N)
    if ! apt-get install -y --no-install-recommends "${need_pkgs[@]}" >"/tmp/sam3-angio-slurm-apt.log" 2>&1; then
        apt-get update >>"/tmp/sam3-angio-slurm-apt.log" 2>&1 || true
        apt-get install -y --no-install-recommends "${need_pkgs[@]}" >>"/tmp/sam3-angio-slurm-apt.log" 2>&1 \
            || { ((own_policy)) && rm -f /usr/sbin/policy-rc.d; cannot "apt-get install ${need_pkgs[*]} failed (see /tmp/sam3-angio-slurm-apt.log)"; }
    fi
    ((own_policy)) && rm -f /usr/sbin/policy-rc.d
    say "installed in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
fi
[[ $EUID == 0 ]] || {
    # Not root: fine if the cluster is already up (someone else started it), otherwise we cannot.
    if [[ -r $CONF ]] && scontrol ping 2>/dev/null | grep -q UP; then say "already running (not root)"; exit 0; fi
    cannot "the daemons must be started as root (SlurmUser=root, munged as the munge user)"
}

mkdir -p "$ETC" "$RUN" "$LOG" "$STATE/state" "$STATE/spool"
chmod 755 "$STATE" "$ETC" "$RUN" "$LOG"

# ---------------------------------------------------------------- configuration
node=$(hostname -s)
RUN_PIDFILE_CTLD=$RUN/slurmctld.pid
# Rewrite the configuration whenever slurmctld is not running (a running one keeps the file it read).
if ! alive slurmctld "$RUN_PIDFILE_CTLD"; then
    hw=$(slurmd -C | head -1)
    field() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
    cpus=$(field CPUs) boards=$(field Boards) sockets=$(field SocketsPerBoard)
    cores=$(field CoresPerSocket) threads=$(field ThreadsPerCore) mem=$(field RealMemory)
    [[ -n $cpus && -n $mem ]] || die "could not read CPUs/RealMemory from 'slurmd -C': $hw"
    # Leave room for the OS and the daemons; without DefMemPerCPU every job would reserve the whole
    # node and jobs would run one at a time.
    real_mem=$((mem - mem / 20 - 256))
    def_mem=$((real_mem / cpus))
    {
        echo "# Generated by scripts/slurm/start.sh: one-node cluster for sam3-angio tests."
        echo "ClusterName=$CLUSTER"
        echo "SlurmctldHost=$node(127.0.0.1)"
        echo "SlurmUser=root"
        echo "SlurmdUser=root"
        echo "SlurmctldPort=$PORT"
        echo "SlurmdPort=$SLURMD_PORT"
        echo "AuthType=auth/munge"
        # cred_expire is also how long a requeued (preempted) job waits before it can start again.
        echo "AuthInfo=cred_expire=$REQUEUE_S"
        echo "StateSaveLocation=$STATE/state"
        echo "SlurmdSpoolDir=$STATE/spool/slurmd"
        echo "SlurmctldPidFile=$RUN/slurmctld.pid"
        echo "SlurmdPidFile=$RUN/slurmd.pid"
        echo "SlurmctldLogFile=$LOG/slurmctld.log"
        echo "SlurmdLogFile=$LOG/slurmd.log"
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "JobAcctGatherType=jobacct_gather/none"
        echo "SelectType=select/cons_tres"
        echo "SelectTypeParameters=CR_Core_Memory"
        echo "DefMemPerCPU=$def_mem"
        echo "SchedulerType=sched/backfill"
        # Scheduling passes every few seconds (defaults: 60 s main, 30 s backfill): a requeued job starts
        # again soon after cred_expire instead of waiting for the next minute's pass.
        echo "SchedulerParameters=sched_interval=3,bf_interval=3"
        # Refuse at submission what this node can never run (instead of pending for ever).
        echo "EnforcePartLimits=ALL"
        echo "MpiDefault=none"
        echo "MailProg=/bin/true"
        echo "ReturnToService=2"
        echo "KillWait=10"
        echo "MinJobAge=600"
        echo "SlurmdTimeout=300"
        echo "InactiveLimit=0"
        if [[ $ACCOUNTING == 1 ]]; then
            echo "AccountingStorageType=accounting_storage/slurmdbd"
            echo "AccountingStorageHost=127.0.0.1"
            echo "AccountingStoragePort=$DBD_PORT"
        fi
        echo "NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus Boards=${boards:-1} SocketsPerBoard=${sockets:-1}" \
            "CoresPerSocket=${cores:-$cpus} ThreadsPerCore=${threads:-1} RealMemory=$real_mem State=UNKNOWN"
        echo "PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
    } >"$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    say "wrote $CONF ($cpus CPUs, RealMemory=$real_mem MB, DefMemPerCPU=$def_mem MB)"
fi
grep -q "^SlurmctldHost=$node(" "$CONF" || die "$CONF was written for another host; run stop.sh, then start.sh"

if [[ $LINK_ETC == 1 ]]; then
    if [[ ! -e /etc/slurm/slurm.conf && ! -L /etc/slurm/slurm.conf ]]; then
        mkdir -p /etc/slurm && ln -s "$CONF" /etc/slurm/slurm.conf && say "linked /etc/slurm/slurm.conf -> $CONF"
    elif [[ $(readlink /etc/slurm/slurm.conf || true) != "$CONF" ]]; then
        say "note: /etc/slurm/slurm.conf belongs to another setup; export SLURM_CONF=$CONF to use this cluster"
    fi
fi

started=()

# ---------------------------------------------------------------- munge
# SLURM 22.05's clients reach slurmdbd through munge's default socket whatever AuthInfo says, so munged
# listens there. On one host any munged will do: one that someone else runs is used, never stopped.
MUNGE=$STATE/munge
MUNGE_SOCKET=/run/munge/munge.socket.2
if ! alive munged "$MUNGE/munged.pid"; then
    if [[ -S $MUNGE_SOCKET ]] && munge -n -S "$MUNGE_SOCKET" </dev/null >/dev/null 2>&1; then
        say "using the munged already serving $MUNGE_SOCKET"
    else
        mkdir -p "$MUNGE" /run/munge
        chown munge:munge "$MUNGE" /run/munge
        chmod 755 "$MUNGE" /run/munge
        [[ -s $MUNGE/munge.key ]] || runuser -u munge -- mungekey --create --keyfile="$MUNGE/munge.key"
        runuser -u munge -- munged --socket="$MUNGE_SOCKET" --key-file="$MUNGE/munge.key" \
            --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed" \
            || die "munged failed to start (log: $MUNGE/munged.log)"
        wait_for 10 munged alive munged "$MUNGE/munged.pid"
        started+=("munged pid $(<"$MUNGE/munged.pid") socket $MUNGE_SOCKET")
    fi
fi

# ---------------------------------------------------------------- accounting: MariaDB + slurmdbd
if [[ $ACCOUNTING == 1 ]]; then
    DB=$STATE/mysql DBRUN=$STATE/mysql-run
    DBCONF=$ETC/slurmdbd.conf
    if ! alive mariadbd "$DBRUN/mariadbd.pid"; then
        mkdir -p "$DB" "$DBRUN"
        chown mysql:mysql "$DB" "$DBRUN"
        if [[ ! -d $DB/mysql ]]; then
            mariadb-install-db --no-defaults --user=mysql --datadir="$DB" --skip-test-db \
                --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 \
                || die "mariadb-install-db failed (log: $LOG/mariadb-install.log)"
        fi
        # Small buffers: this database holds a handful of job records.
        setsid mariadbd --no-defaults --user=mysql --datadir="$DB" --socket="$DBRUN/mysqld.sock" \
            --pid-file="$DBRUN/mariadbd.pid" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
            --log-error="$LOG/mariadb.log" --innodb-buffer-pool-size=32M --innodb-use-native-aio=0 \
            --performance-schema=OFF </dev/null >>"$LOG/mariadb.log" 2>&1 &
        wait_for 60 MariaDB mariadb-admin --no-defaults --socket="$DBRUN/mysqld.sock" -uroot ping
        wait_for 10 "MariaDB pid file" alive mariadbd "$DBRUN/mariadbd.pid"
        started+=("mariadbd pid $(<"$DBRUN/mariadbd.pid") port $DB_PORT")
    fi
    if [[ ! -s $DBCONF ]]; then
        pass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
        {
            echo "# Generated by scripts/slurm/start.sh"
            echo "AuthType=auth/munge"
            echo "DbdAddr=127.0.0.1"
            echo "DbdHost=$node"
            echo "DbdPort=$DBD_PORT"
            echo "SlurmUser=root"
            echo "PidFile=$RUN/slurmdbd.pid"
            echo "LogFile=$LOG/slurmdbd.log"
            echo "StorageType=accounting_storage/mysql"
            echo "StorageHost=127.0.0.1"
            echo "StoragePort=$DB_PORT"
            echo "StorageUser=slurm"
            echo "StoragePass=$pass"
            echo "StorageLoc=slurm_acct_db"
        } >"$DBCONF.tmp"
        chmod 600 "$DBCONF.tmp"
        mv "$DBCONF.tmp" "$DBCONF"
    fi
    pass=$(sed -n 's/^StoragePass=//p' "$DBCONF")
    mariadb --no-defaults --socket="$DBRUN/mysqld.sock" -uroot -e \
        "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
         CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
         ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" \
        || die "could not create the accounting database user (log: $LOG/mariadb.log)"
    if ! alive slurmdbd "$RUN/slurmdbd.pid"; then
        slurmdbd || die "slurmdbd failed to start (log: $LOG/slurmdbd.log)"
        wait_for 30 slurmdbd sacctmgr -n show cluster
        started+=("slurmdbd pid $(<"$RUN/slurmdbd.pid") port $DBD_PORT")
    fi
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
    fi
fi

# ---------------------------------------------------------------- slurmctld + slurmd
if ! alive slurmctld "$RUN/slurmctld.pid"; then
    slurmctld -f "$CONF" || die "slurmctld failed to start (log: $LOG/slurmctld.log)"
    wait_for 30 slurmctld bash -c "scontrol ping | grep -q UP"
    started+=("slurmctld pid $(<"$RUN/slurmctld.pid") port $PORT")
fi
if ! alive slurmd "$RUN/slurmd.pid"; then
    slurmd -f "$CONF" || die "slurmd failed to start (log: $LOG/slurmd.log)"
    wait_for 10 slurmd alive slurmd "$RUN/slurmd.pid"
    started+=("slurmd pid $(<"$RUN/slurmd.pid") port $SLURMD_PORT")
fi

node_state() { sinfo -h -n "$node" -o %T 2>/dev/null | head -1; }
for ((i = 0; i < 150; i++)); do
    st=$(node_state)
    case $st in
        idle | mixed | allocated | completing) break ;;
        drained* | draining | drain*)
            scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
done
case $st in
    idle | mixed | allocated | completing) ;;
    *) die "node $node is '$st', not idle, after 30 s (logs: $LOG; scontrol show node $node)" ;;
esac

if ((${#started[@]})); then
    for s in "${started[@]}"; do say "started $s"; done
else
    say "already running"
fi
say "cluster $CLUSTER up: node $node $st, partition $PARTITION, accounting=$ACCOUNTING"
say "SLURM_CONF=$CONF  logs: $LOG  stop: scripts/slurm/stop.sh"
