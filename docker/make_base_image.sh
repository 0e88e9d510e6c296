#!/usr/bin/env bash
# Make the CPU base image `mlbench/debian-python:3.11` with no registry: debootstrap + docker import.
#
#   docker/make_base_image.sh [--force] [TAG]        # TAG default: mlbench/debian-python:3.11
#
# A minimal Debian bookworm root file system (debootstrap --variant=minbase) with Python 3.11
# (bookworm's python3; pyproject.toml's requires-python allows 3.11-3.13, and CI runs 3.11),
# python3-venv (the Dockerfiles install into a venv: Debian marks its own Python externally
# managed, PEP 668) and CA certificates, imported as a one-layer image labelled
# org.mlbench.accelerator=cpu (so `invoke docker-build` gives its images tensorflow-cpu). Needs
# root, debootstrap and a Debian mirror (MLBENCH_DEBIAN_MIRROR, default deb.debian.org; a
# snapshot.debian.org URL pins the packages to a date). MLBENCH_DEBIAN_SUITE=trixie gives Python
# 3.13 instead (name it with TAG, e.g. mlbench/debian-python:3.13). Idempotent: an existing TAG is
# kept unless --force.
#
# The benchmark Dockerfiles take it with `--build-arg BASE_IMAGE=mlbench/debian-python:3.11`
# (what `invoke docker-build --base-image mlbench/debian-python:3.11` passes).
set -euo pipefail

force=0
if [[ "${1:-}" == "--force" ]]; then
    force=1
    shift
fi
tag="${1:-mlbench/debian-python:3.11}"
suite="${MLBENCH_DEBIAN_SUITE:-bookworm}"
mirror="${MLBENCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if ! docker info >/dev/null 2>&1; then
    echo "error: no Docker engine answers: start one with docker/start_engine.sh" >&2
    exit 1
fi
if [[ "${force}" == 0 ]] && docker image inspect "${tag}" >/dev/null 2>&1; then
    echo "${tag} already exists (docker/make_base_image.sh --force remakes it)"
    exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
    echo "error: debootstrap needs root: run this script as root" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "installing debootstrap..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# On disk, not in a tmpfs: the root file system is ~200 MB before cleaning. mktemp makes it 0700,
# and tar records that mode for the image's `/`: a container run as a non-root user (what
# `invoke docker-run` does for a non-root caller) could then not even start, hence the chmod.
rootfs="$(mktemp -d /var/tmp/mlbench-rootfs.XXXXXX)"
trap 'rm -rf "${rootfs}"' EXIT
chmod 0755 "${rootfs}"

echo "debootstrap ${suite} from ${mirror} into ${rootfs} (a few minutes)..."
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "${suite}" "${rootfs}" "${mirror}" >"${rootfs}.log" 2>&1 || {
    echo "error: debootstrap failed; its log: ${rootfs}.log" >&2
    exit 1
}
rm -f "${rootfs}.log"

# What a registry image would not carry: downloaded .debs, package lists, logs.
rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/* \
       "${rootfs}"/var/log/* "${rootfs}"/tmp/* "${rootfs}"/root/.cache
python_version="$(chroot "${rootfs}" python3 -c 'import platform; print(platform.python_version())')"
if [[ ! "${python_version}" =~ ^3\.(11|12|13)\. ]]; then
    echo "error: ${suite} gave Python ${python_version}; pyproject.toml supports 3.11-3.13" >&2
    exit 1
fi

echo "docker import as ${tag} (Python ${python_version})..."
tar --numeric-owner -C "${rootfs}" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --change 'LABEL org.mlbench.accelerator=cpu' \
    --message "debootstrap --variant=minbase ${suite} + python3 ${python_version}, python3-venv, ca-certificates" \
    - "${tag}" >/dev/null
docker image ls "${tag}"
