#!/usr/bin/env bash
# Start a Docker engine where none runs: a sandbox, a CI runner, a fresh VM (as root).
#
#   docker/start_engine.sh            # idempotent: returns at once if `docker info` already answers
#
# What it does: installs Debian's `docker.io` package if `dockerd` is missing, starts `dockerd` in
# the background (log: /var/log/mlbench-dockerd.log), and waits until the engine answers.
# Storage driver: overlay2 where the file system under /var/lib/docker supports it (a plain ext4 or
# xfs host or VM), else vfs. vfs works everywhere, inside a container or on any file system, because
# it copies whole layers instead of stacking them, but it is slow and disk-hungry with multi-GB
# images (each layer is a full copy: ~32 GB of disk for one benchmark's two images; docker/README.md).
# `MLBENCH_DOCKER_STORAGE_DRIVER=vfs|overlay2` forces one.
#
# On a machine with systemd and a packaged Docker, use `systemctl start docker` instead.
set -euo pipefail

storage_driver="${MLBENCH_DOCKER_STORAGE_DRIVER:-auto}"
log_file="${MLBENCH_DOCKERD_LOG:-/var/log/mlbench-dockerd.log}"
wait_seconds="${MLBENCH_DOCKERD_WAIT:-120}"

engine_answers() { docker info >/dev/null 2>&1; }

if engine_answers; then
    echo "Docker engine already running ($(docker info --format '{{.Driver}}' 2>/dev/null) storage)"
    exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
    echo "error: no Docker engine answers and starting one needs root: run this script as root" >&2
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "installing Debian's docker.io (dockerd, containerd, runc)..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! command -v docker >/dev/null 2>&1; then
    echo "error: docker.io is installed but no \`docker\` client is on PATH" >&2
    exit 1
fi

start_dockerd() {
    echo "starting dockerd --storage-driver=$1 (log: ${log_file})"
    mkdir -p "$(dirname "${log_file}")"
    # setsid + nohup: the engine outlives this shell and the session that ran it.
    setsid nohup dockerd --storage-driver="$1" >>"${log_file}" 2>&1 < /dev/null &
}

# Whether overlay2 can work here: the kernel mounts an overlay whose layers sit on the file system
# of /var/lib/docker (it cannot on an overlay root, as inside most containers, nor on some network
# file systems). dockerd itself would only say so in its log and exit.
overlay_mounts() {
    local root=/var/lib/docker probe
    mkdir -p "${root}"
    probe="$(mktemp -d "${root}/.overlay-probe.XXXXXX")" || return 1
    mkdir -p "${probe}"/{lower,upper,work,merged}
    if mount -t overlay overlay -o "lowerdir=${probe}/lower,upperdir=${probe}/upper,workdir=${probe}/work" \
            "${probe}/merged" 2>/dev/null; then
        umount "${probe}/merged"
        rm -rf "${probe}"
        return 0
    fi
    rm -rf "${probe}"
    return 1
}

# A dockerd that is running but not answering yet (started a moment ago) is waited for, not doubled.
if ! pgrep -x dockerd >/dev/null 2>&1; then
    if [[ "${storage_driver}" == auto ]]; then
        if overlay_mounts; then storage_driver=overlay2; else storage_driver=vfs; fi
    fi
    start_dockerd "${storage_driver}"
fi

for ((second = 0; second < wait_seconds; second++)); do
    if engine_answers; then
        echo "Docker engine ready after ${second} s ($(docker info --format '{{.ServerVersion}}, {{.Driver}} storage'))"
        exit 0
    fi
    sleep 1
done
echo "error: dockerd did not answer within ${wait_seconds} s; its log: ${log_file}" >&2
tail -n 20 "${log_file}" >&2 || true
exit 1
