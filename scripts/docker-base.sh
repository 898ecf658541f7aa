#!/usr/bin/env bash
# Makes a local Debian base image with debootstrap, for machines that cannot pull one:
#   bash scripts/docker-base.sh bookworm mmocr-serve-base:bookworm   (Python 3.11, serving)
#   bash scripts/docker-base.sh bullseye mmocr-serve-base:bullseye   (Python 3.9, AIGES stand-in)
# Returns at once when the tag exists. Needs root, debootstrap and a running Docker engine.
# The image takes its packages from the Debian mirrors this machine's apt-get uses
# (/etc/apt/sources.list and sources.list.d/), or from DEBIAN_MIRROR and
# DEBIAN_SECURITY_MIRROR when they are set.
set -euo pipefail
SUITE="$1"
TAG="$2"
DOCKER="${DOCKER:-/usr/bin/docker}"

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
    echo "[docker-base] $TAG exists"
    exit 0
fi

apt_mirror() {  # $1: a pattern for the release; the first Debian archive apt serves it from
    apt-get indextargets --format '$(ORIGIN) $(RELEASE) $(REPO_URI)' 'Identifier: Packages' \
        2>/dev/null | awk -v release="$1" \
        '$1 == "Debian" && $2 ~ release { sub("/$", "", $3); print $3; exit }'
}
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror '^[a-z]+$')}"
SECURITY="${DEBIAN_SECURITY_MIRROR:-$(apt_mirror '-security$')}"
if [ -z "$MIRROR" ]; then
    echo "[docker-base] apt knows no Debian archive (Origin: Debian): run apt-get update," \
         "or set DEBIAN_MIRROR" >&2
    exit 1
fi
ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/debootstrap-$SUITE.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT
echo "[docker-base $(date +%H:%M:%S)] debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
    || { tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"
# As the public image: the release, its updates and (where known) its security fixes.
{
    echo "deb $MIRROR $SUITE main"
    echo "deb $MIRROR $SUITE-updates main"
    [ -z "$SECURITY" ] || echo "deb $SECURITY $SUITE-security main"
} >"$ROOTFS/etc/apt/sources.list"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
echo "[docker-base $(date +%H:%M:%S)] docker import as $TAG"
tar -C "$ROOTFS" -c . | "$DOCKER" import --change 'CMD ["bash"]' - "$TAG" >/dev/null
echo "[docker-base $(date +%H:%M:%S)] $TAG ready"
