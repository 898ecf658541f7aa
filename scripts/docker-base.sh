#!/usr/bin/env bash
# Makes a local Debian base image with debootstrap, for machines that cannot pull one:
#   bash scripts/docker-base.sh bookworm mmocr-serve-base:bookworm   (Python 3.11, serving)
#   bash scripts/docker-base.sh bullseye mmocr-serve-base:bullseye   (Python 3.9, AIGES stand-in)
# Returns at once when the tag exists. Needs root, debootstrap and a running Docker engine.
set -euo pipefail
SUITE="$1"
TAG="$2"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKER="${DOCKER:-/usr/bin/docker}"

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
    echo "[docker-base] $TAG exists"
    exit 0
fi
ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/debootstrap-$SUITE.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT
echo "[docker-base $(date +%H:%M:%S)] debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
    || { tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"
# The public image's sources: the release, its updates and its security fixes.
SECURITY="http://deb.debian.org/debian-security"
cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
echo "[docker-base $(date +%H:%M:%S)] docker import as $TAG"
tar -C "$ROOTFS" -c . | "$DOCKER" import --change 'CMD ["bash"]' - "$TAG" >/dev/null
echo "[docker-base $(date +%H:%M:%S)] $TAG ready"
