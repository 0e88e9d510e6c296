#!/usr/bin/env bash
# Start a Docker engine where none runs: a sandbox, a CI runner, a fresh VM (as root).
#
#   docker/start_engine.sh            # idempotent: returns at once if `docker info` already answers
#
# What it does: installs Debian's `docker.io` package if `dockerd` is missing, starts
# `dockerd --storage-driver=vfs` in the background (log: /var/log/mlbench-dockerd.log), and waits
# until the engine answers. vfs is the storage driver that works everywhere, inside a container or
# on any file system, because it copies whole layers instead of stacking them; it is slow and
# disk-hungry with multi-GB images (see docker/README.md). Where overlay2 works (a plain ext4 or
# xfs host), `MLBENCH_DOCKER_STORAGE_DRIVER=overlay2 docker/start_engine.sh` is much lighter.
#
# On a machine with systemd and a packaged Docker, use `systemctl start docker` instead.
set -euo pipefail

storage_driver="${MLBENCH_DOCKER_STORAGE_DRIVER:-vfs}"
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

# A dockerd that is running but not answering yet (started a moment ago) is waited for, not doubled.
if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "starting dockerd --storage-driver=${storage_driver} (log: ${log_file})"
    mkdir -p "$(dirname "${log_file}")"
    # setsid + nohup: the engine outlives this shell and the session that ran it.
    setsid nohup dockerd --storage-driver="${storage_driver}" >>"${log_file}" 2>&1 < /dev/null &
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
