#!/bin/sh
# tests/deps.sh — `make deps`: install the Debian packages baton builds against,
# only those missing (a no-op when everything is present).
set -e
need=""
for p in build-essential pkg-config libarchive-dev libssl-dev libinih-dev libcmocka-dev \
         libjansson-dev libutf8proc-dev libopenblas-dev patchelf; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "make deps: installing$need"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need
