#!/usr/bin/env bash
# Stop the one-node SLURM cluster that scripts/slurm/start.sh started: exactly the daemons named in its
# pid files (after cancelling the jobs still on that cluster), nothing else.
#
# Usage:  scripts/slurm/stop.sh [--wipe]     --wipe also deletes the state folder (job ids restart at 1)
# Environment: SAM3_ANGIO_SLURM_DIR (state folder, default /tmp/sam3-angio-slurm)
set -uo pipefail

STATE=${SAM3_ANGIO_SLURM_DIR:-/tmp/sam3-angio-slurm}
CONF=$STATE/etc/slurm.conf
export SLURM_CONF=$CONF
WIPE=0
[[ ${1:-} == --wipe ]] && WIPE=1

say() { printf 'slurm/stop: %s\n' "$*"; }

pid_of() {  # pid_of NAME PIDFILE: print the pid if it is a running NAME process
    local pid
    [[ -s $2 ]] || return 1
    pid=$(<"$2")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$1" ]] && echo "$pid"
}

if [[ ! -d $STATE ]]; then
    say "nothing to stop ($STATE does not exist)"
    exit 0
fi

# Jobs first: their slurmstepd processes would outlive slurmd otherwise.
if pid_of slurmctld "$STATE/run/slurmctld.pid" >/dev/null; then
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
        say "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
fi

status=0
# stop_group "NAME PIDFILE" ...: SIGTERM to each, wait up to 20 s for all, SIGKILL what is left.
stop_group() {
    local entry name file pid pids=() names=() i
    for entry in "$@"; do
        read -r name file <<<"$entry"
        pid=$(pid_of "$name" "$STATE/$file") || continue
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid") && names+=("$name")
    done
    for i in "${!pids[@]}"; do
        for ((t = 0; t < 200; t++)); do
            [[ -d /proc/${pids[$i]} ]] || break
            sleep 0.1
        done
        if [[ -d /proc/${pids[$i]} ]]; then
            say "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for 20 s; sending SIGKILL"
            kill -KILL "${pids[$i]}" 2>/dev/null
            sleep 0.5
            [[ -d /proc/${pids[$i]} ]] && { say "${names[$i]} (pid ${pids[$i]}) still running"; status=1; }
        fi
        say "stopped ${names[$i]} (pid ${pids[$i]})"
    done
}
# Dependents first: slurmctld reports to slurmdbd, which writes to MariaDB; all of them use munge.
stop_group "slurmd run/slurmd.pid" "slurmctld run/slurmctld.pid"
stop_group "slurmdbd run/slurmdbd.pid"
stop_group "mariadbd mysql-run/mariadbd.pid" "munged munge/munged.pid"

# slurmstepd of a job that was killed with its slurmd: stop the ones that belong to this cluster.
for d in /proc/[0-9]*; do
    [[ $(cat "$d/comm" 2>/dev/null) == slurmstepd ]] || continue
    if tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qx "SLURM_CONF=$CONF"; then
        kill -KILL "${d#/proc/}" 2>/dev/null && say "killed leftover slurmstepd ${d#/proc/}"
    fi
done

if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$CONF" ]]; then
    rm -f /etc/slurm/slurm.conf && say "removed link /etc/slurm/slurm.conf"
fi
if ((WIPE)) && ((status == 0)); then
    rm -rf "$STATE" && say "wiped $STATE"
fi
exit $status
