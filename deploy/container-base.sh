#!/usr/bin/env bash
# A local stand-in for the Dockerfile's base image (python:3.11-slim) where no container
# registry can be reached: Debian bookworm (whose python3 is 3.11) bootstrapped from Debian's
# package mirror into a folder and imported into podman's storage as
# localhost/datasync-local-base:bookworm. Made to look like python:3.11-slim where the
# Dockerfile relies on it: `python` and `pip` on PATH, and pip allowed to install system-wide
# (bookworm marks its Python "externally managed"; the official image has no such marker).
# Build with it:  podman build --build-arg BASE=localhost/datasync-local-base:bookworm .
# Idempotent: does nothing when the image exists. Needs root (debootstrap), podman and
# debootstrap; `make container-base` installs them and runs this.
set -euo pipefail
IMAGE=${IMAGE:-localhost/datasync-local-base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
if podman image exists "$IMAGE"; then
    echo "$IMAGE exists"
    exit 0
fi
work=$(mktemp -d /var/tmp/datasync-local-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
root=$work/rootfs
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
ln -sf python3 "$root/usr/bin/python"
ln -sf pip3 "$root/usr/bin/pip"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
echo "$IMAGE imported"
