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
log=$(mktemp)
if $SUDO apt-get update -qq >"$log" 2>&1 &&
   DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >>"$log" 2>&1; then
    rm -f "$log"
    echo "make deps: installed$need"
    exit 0
fi
tail -n 20 "$log" >&2
echo "make deps: apt-get failed (full log: $log). Install these Debian packages by hand:$need" >&2
exit 1
