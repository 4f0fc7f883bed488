#!/usr/bin/env bash
# A throw-away one-node SLURM cluster on localhost, for tests/workflow/test_slurm.py (and by hand).
#
#   tests/workflow/slurm/cluster.sh install        apt-get install slurm-wlm and munge when missing (root)
#   tests/workflow/slurm/cluster.sh start STATE    write STATE/slurm.conf + gres.conf from the templates beside this
#                                         script, start munged, slurmctld and slurmd, wait for the node
#   tests/workflow/slurm/cluster.sh stop STATE     cancel every job of that cluster, stop the three daemons it started
#
# Everything lives under STATE (config, state, spool, logs, pid files, a private munge key and socket), the
# ports are free ones picked at start, and SLURM's commands find the cluster through SLURM_CONF:
#   export SLURM_CONF=STATE/slurm.conf PATH="STATE/bin:$PATH"     (STATE/bin: an srun shim, see start)
# `stop` only signals the pids `start` recorded (STATE/run/*.started) while their command line still names
# STATE, so a system SLURM or munge, or another test's cluster, is never touched.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DAEMONS=(slurmd slurmctld munged)   # stop order

die() { echo "cluster.sh: $*" >&2; exit 1; }

have_slurm() {
    command -v sbatch && command -v squeue && command -v sinfo && command -v scontrol && command -v srun \
        && command -v slurmctld && command -v slurmd && command -v munged
} >/dev/null 2>&1

install() {
    if have_slurm; then
        echo "cluster.sh: SLURM and munge are installed"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "installing slurm-wlm needs root"
    command -v apt-get >/dev/null || die "apt-get not found: install slurm-wlm and munge by hand"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # The packages' postinst scripts do not start daemons in a container (policy-rc.d / no systemd);
    # this script starts its own anyway, with its own configuration.
    apt-get install -y -q --no-install-recommends slurm-wlm munge
    have_slurm || die "slurm-wlm installed, but its commands are not on PATH"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The pid a daemon of this STATE recorded at start, if that process is still the daemon (its command line
# names STATE; a pid alone may have been reused). Empty otherwise.
daemon_pid() {
    local state="$1" daemon="$2" pid
    [ -s "$state/run/$daemon.started" ] || return 0
    pid="$(cat "$state/run/$daemon.started")"
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$state/"; then
        echo "$pid"
    fi
}

# start_daemon STATE NAME ARGS...: NAME forks into the background and writes STATE/run/NAME.pid; that pid is
# copied to STATE/run/NAME.started, where `stop` finds it (a daemon deletes its own pid file when it exits).
# Its stdio goes to a file, never to the caller's pipes (a caller capturing output would wait for it to exit).
start_daemon() {
    local state="$1" name="$2" tries=0
    shift 2
    "$name" "$@" </dev/null >>"$state/log/daemons.out" 2>&1 || die "$name failed to start (see $state/log/)"
    while [ ! -s "$state/run/$name.pid" ] && [ "$tries" -lt 100 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    [ -s "$state/run/$name.pid" ] || die "$name wrote no pid file (see $state/log/)"
    cp "$state/run/$name.pid" "$state/run/$name.started"
}

start() {
    local state="$1"
    have_slurm || die "SLURM is not installed (run: $0 install)"
    mkdir -p "$state"
    state="$(cd "$state" && pwd)"
    mkdir -p "$state"/{munge,slurmctld,slurmd,run,log,dev,bin}
    # munged wants a key only root can read, and a socket directory others may enter but not write.
    chmod 711 "$state" "$state/munge"
    if [ ! -s "$state/munge/munge.key" ]; then
        head -c 1024 /dev/urandom >"$state/munge/munge.key"
        chmod 400 "$state/munge/munge.key"
    fi
    ln -sfn /dev/null "$state/dev/nvidia0"   # the stand-in GPU device of gres.conf (a character device)
    : >"$state/plugstack.conf"       # no SPANK plugins (the system's plugstack.conf is not ours)

    local node cpus memory_mb
    node="$(hostname -s)"
    # The cores this machine gives us: nproc would honour an OMP_NUM_THREADS set for the computations of a test.
    cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
    # 90 % of the machine's memory: slurmd drains a node whose RealMemory exceeds what it finds.
    memory_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 9 / 10 / 1024 ))
    local ctld_port slurmd_port
    ctld_port="$(free_port)"
    slurmd_port="$(free_port)"
    while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port="$(free_port)"; done

    local template
    for template in slurm.conf gres.conf; do
        sed -e "s|@STATE@|$state|g" -e "s|@NODE@|$node|g" -e "s|@CPUS@|$cpus|g" \
            -e "s|@MEMORY_MB@|$memory_mb|g" -e "s|@CTLD_PORT@|$ctld_port|g" -e "s|@SLURMD_PORT@|$slurmd_port|g" \
            "$HERE/$template.in" >"$state/$template"
    done
    export SLURM_CONF="$state/slurm.conf"
    # The executor's job step (snakemake-executor-plugin-slurm-jobstep 0.6) clears every SLURM_* variable but
    # the job's ids before it calls srun, SLURM_CONF included: srun would then look for /etc/slurm/slurm.conf
    # (a real cluster's place, which this throw-away one must not take). An srun first on PATH puts it back.
    printf '#!/bin/sh\nSLURM_CONF="%s" exec "%s" "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$state/bin/srun"
    chmod 755 "$state/bin/srun"

    # --force: munged refuses to run as root otherwise.
    start_daemon "$state" munged --force --socket="$state/munge/munge.socket" \
        --key-file="$state/munge/munge.key" --pid-file="$state/run/munged.pid" \
        --log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed"
    start_daemon "$state" slurmctld -f "$SLURM_CONF"
    start_daemon "$state" slurmd -f "$SLURM_CONF" -N "$node"

    # Wait until the node takes jobs.
    local waited=0 node_state=""
    while [ "$waited" -lt 60 ]; do
        node_state="$(sinfo -h -n "$node" -o %T 2>/dev/null || true)"
        case "$node_state" in
            idle|mixed|allocated) break ;;   # not idle* (= not responding) or unknown
        esac
        sleep 1
        waited=$((waited + 1))
    done
    case "$node_state" in
        idle|mixed|allocated) ;;
        *)
            echo "cluster.sh: node $node not ready after ${waited}s (state '${node_state}'); logs:" >&2
            tail -n 20 "$state"/log/*.log >&2 || true
            exit 1 ;;
    esac
    echo "cluster.sh: node $node $node_state after ${waited}s (slurmctld port $ctld_port, slurmd port $slurmd_port)"
    echo "SLURM_CONF=$SLURM_CONF"
    echo "PATH_PREFIX=$state/bin"
}

stop() {
    local state="$1"
    [ -d "$state" ] || return 0
    state="$(cd "$state" && pwd)"
    export SLURM_CONF="$state/slurm.conf"
    # Jobs first (their slurmstepd would outlive slurmd), while slurmctld can still cancel them.
    if [ -n "$(daemon_pid "$state" slurmctld)" ] && [ -f "$SLURM_CONF" ]; then
        scancel --user "$(id -un)" 2>/dev/null || true
        local waited=0
        while [ "$waited" -lt 15 ] && [ -n "$(squeue -h -t running,completing,pending 2>/dev/null)" ]; do
            sleep 1
            waited=$((waited + 1))
        done
    fi
    local daemon pid waited
    for daemon in "${DAEMONS[@]}"; do
        pid="$(daemon_pid "$state" "$daemon")"
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
        waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 20 ]; do
            sleep 0.5
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "cluster.sh: stopped $daemon ($pid)"
        rm -f "$state/run/$daemon.started"
    done
}

case "${1:-}" in
    install) install ;;
    start) [ $# -eq 2 ] || die "usage: $0 start STATE_DIR"; start "$2" ;;
    stop) [ $# -eq 2 ] || die "usage: $0 stop STATE_DIR"; stop "$2" ;;
    *) die "usage: $0 install | start STATE_DIR | stop STATE_DIR" ;;
esac
