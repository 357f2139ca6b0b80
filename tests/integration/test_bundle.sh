#!/bin/sh
# tests/integration/test_bundle.sh — the offline bundle runs with none of the
# build machine's libraries reachable.
#
# Builds baton-bundle.tar.gz from $BATON with kaggle/bundle.sh, unpacks it into
# a minimal chroot that holds only the glibc family (loader, libc, libm,
# libpthread, libdl, librt) and /dev/null, and runs `baton version` and
# `baton demo-init` there, then two short segments of the demo job
# (jobs/demo.ini: `baton run`, exit 75; `baton run` again, resuming), `baton
# status` and `baton verify`. Then runs version, demo-init and a segment under
# the bundled glibc (lib/glibc) in an empty chroot with not even the host's libc.
#
# Needs root (chroot); skips (77) otherwise. Env: BATON, ROOT (from tests/run.sh).
set -u
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BATON=${BATON:-$ROOT/baton}
skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[ -x "$BATON" ] || fail "no baton binary at $BATON"
[ "$(id -u)" = 0 ] || skip "test_bundle needs root for chroot (uid $(id -u))"
command -v chroot >/dev/null || skip "chroot not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_bundle.XXXXXX")
mounted=""
cleanup() {
    for m in $mounted; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    # Never rm -rf across a mount that is still there.
    if grep -q " $tmp/" /proc/mounts 2>/dev/null; then
        echo "test_bundle: $tmp still has mounts; left in place" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
# glibc resolves $ORIGIN of the main program through /proc/self/exe, so the
# chroot needs /proc (every real machine has it). Where mounting is not
# permitted, LD_ORIGIN_PATH (glibc's documented fallback) stands in.
with_proc() { # chroot dir, bundle dir inside it
    mkdir -p "$1/proc"
    if mount -t proc proc "$1/proc" 2>/dev/null; then
        mounted="$mounted $1/proc"; origin_env=""
    else
        echo "note: cannot mount /proc in the chroot; using LD_ORIGIN_PATH=$2" >&2
        origin_env="LD_ORIGIN_PATH=$2"
    fi
}

sh "$ROOT/kaggle/bundle.sh" -b "$BATON" -o "$tmp/baton-bundle.tar.gz" >"$tmp/bundle.log" 2>&1
rc=$?
if [ $rc != 0 ]; then
    cat "$tmp/bundle.log" >&2
    [ $rc = 69 ] && skip "bundle.sh lacks a tool it needs (patchelf: apt-get install patchelf)"
    fail "bundle.sh exited $rc"
fi
cat "$tmp/bundle.log"

# The bundle's own claim: RUNPATH, not a wrapper.
tar -C "$tmp" -xzf "$tmp/baton-bundle.tar.gz" || fail "cannot unpack the bundle"
rp=$(readelf -d "$tmp/baton-bundle/baton" 2>/dev/null | grep -E 'RUNPATH|RPATH')
echo "$rp" | grep -q 'RUNPATH.*\$ORIGIN/lib' || fail "bundled binary has no RUNPATH \$ORIGIN/lib: $rp"
for l in "$tmp"/baton-bundle/lib/*.so*; do
    [ -f "$l" ] || continue
    case "$(basename "$l")" in libc.so*|libm.so*|libpthread*|libdl.so*|librt.so*|ld-linux*)
        fail "glibc library $(basename "$l") bundled in lib/ (belongs in lib/glibc only)" ;; esac
done

# --- chroot 1: host glibc only --------------------------------------------
r="$tmp/root"
mkdir -p "$r/dev" "$r/work" "$r/tmp" "$r/lib64"
ld=$(ldd "$BATON" | awk '$1 ~ /^\/.*ld-linux/ {print $1}')
[ -n "$ld" ] || fail "cannot find the dynamic loader in ldd $BATON"
libdir=$(dirname "$(ldd "$BATON" | awk '$1 == "libc.so.6" {print $3}')")
mkdir -p "$r$libdir" "$r$(dirname "$ld")"
cp -L "$ld" "$r$ld"
for n in libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1; do
    [ -e "$libdir/$n" ] && cp -L "$libdir/$n" "$r$libdir/$n"
done
mknod -m 666 "$r/dev/null" c 1 3 2>/dev/null || : >"$r/dev/null"
cp -a "$tmp/baton-bundle" "$r/bundle"
with_proc "$r" /bundle
chroot() { command env $origin_env chroot "$@"; }

chroot "$r" /bundle/baton --help >/dev/null 2>&1 || {
    # Distinguish "chroot not permitted here" from "the bundle is broken".
    chroot "$r" "$ld" --version >/dev/null 2>&1 || skip "chroot does not work here (not permitted in this container?)"
    chroot "$r" /bundle/baton version
    fail "bundled baton does not start in a chroot with only glibc"
}
# Nothing outside the bundle and glibc exists in the chroot:
[ -z "$(find "$r" -path "$r/proc" -prune -o -name 'libcrypto*' -not -path "$r/bundle/*" -print)" ] || fail "chroot leaks build libraries"

run_in_chroot() { # label, command... (runs inside $r)
    label=$1; shift
    out=$(chroot "$r" "$@" 2>&1); rc=$?
    echo "[$label] rc=$rc"; echo "$out" | sed 's/^/    /' | head -n 20
    return $rc
}
run_in_chroot "version" /bundle/baton version || fail "baton version failed in the chroot"
# A bundle with a GPU backend: the library needs no CUDA library to load (static
# runtime, cuBLASLt opened at run time), so it loads in the chroot, finds no GPU,
# and baton says so and trains on the CPU below.
if echo "$out" | grep -q 'CUDA=1'; then
    [ -f "$r/bundle/lib/libbaton-cuda.so" ] || fail "CUDA build: lib/libbaton-cuda.so missing from the bundle"
fi
if [ -f "$r/bundle/lib/libbaton-cuda.so" ]; then
    readelf -d "$r/bundle/lib/libbaton-cuda.so" | grep NEEDED | grep -i -E 'cuda|cublas' &&
        fail "the bundled GPU backend needs a CUDA library at load time"
    echo "$out" | grep -q "no usable device" ||
        fail "GPU backend in a chroot without a GPU: 'baton version' does not say there is no usable device"
fi
run_in_chroot "demo-init" /bundle/baton demo-init /work/demo || fail "baton demo-init failed in the chroot"
for f in model/config.json model/model.safetensors model/vocab.txt data/train.tsv data/eval.tsv; do
    [ -s "$r/work/demo/$f" ] || fail "demo-init in the chroot did not write $f"
done
# Same bytes as the build-tree binary writes outside the chroot.
"$BATON" demo-init "$tmp/demo-host" >/dev/null || fail "host demo-init failed"
cmp "$r/work/demo/model/model.safetensors" "$tmp/demo-host/model/model.safetensors" ||
    fail "demo model differs between the bundle in the chroot and the build tree"

# `baton run` of the demo job (jobs/demo.ini), laid out as in the source
# tree (its paths are relative to the job file: ../build/demo/...), but with
# the build tree and the -dev packages out of reach: only the bundle and glibc.
mkdir -p "$r/src/jobs"
cp "$ROOT/jobs/demo.ini" "$r/src/jobs/demo.ini" || fail "no jobs/demo.ini"
run_in_chroot "demo-init (build/demo)" /bundle/baton demo-init /src/build/demo >/dev/null || fail "demo-init /src/build/demo failed in the chroot"
run_in_chroot "run 1" /bundle/baton run /src/jobs/demo.ini -s runtime.threads=1 -s runtime.budget=4s
rc=$?
[ $rc = 75 ] || fail "baton run of the demo job in the chroot exited $rc (want 75: a 4 s segment does not finish it)"
ls "$r"/src/build/demo/out/ckpt-*.tar >/dev/null 2>&1 || fail "baton run in the chroot committed no archive"
step1=$(sed -n 's/.*"step": *\([0-9]*\).*/\1/p' "$r/src/build/demo/out/status.json" | head -n1)
[ -n "$step1" ] && [ "$step1" -gt 0 ] || fail "run 1 in the chroot made no progress (status.json step '$step1')"
# A second segment resumes from the first one's archive, still in the chroot.
out=$(chroot "$r" /bundle/baton run /src/jobs/demo.ini -s runtime.threads=1 -s runtime.budget=3s 2>&1); rc=$?
echo "[run 2] rc=$rc"; echo "$out" | grep -E "resumed|stopped|complete" | sed 's/^/    /'
[ $rc = 75 ] || [ $rc = 0 ] || fail "second baton run in the chroot exited $rc"
echo "$out" | grep -q "resumed from /src/build/demo/out/$(printf 'ckpt-%09d.tar' "$step1") at step $step1 " ||
    fail "second run in the chroot did not resume from step $step1"
run_in_chroot "status" /bundle/baton status /src/jobs/demo.ini --json || fail "baton status in the chroot failed"
run_in_chroot "verify" /bundle/baton verify /src/build/demo/out || fail "baton verify in the chroot failed"

# --- chroot 2: nothing from the host at all, the bundled glibc -------------
if [ -x "$tmp/baton-bundle/baton-glibc" ]; then
    e="$tmp/empty"
    mkdir -p "$e/dev" "$e/work"
    mknod -m 666 "$e/dev/null" c 1 3 2>/dev/null || : >"$e/dev/null"
    cp -a "$tmp/baton-bundle" "$e/bundle"
    with_proc "$e" /bundle
    bl=$(cd "$e/bundle/lib/glibc" && ls ld-linux* | head -n1)
    # What baton-glibc execs (the launcher itself needs /bin/sh, absent here).
    grep -q "lib/glibc/$bl\" --library-path" "$e/bundle/baton-glibc" || fail "baton-glibc does not use the bundled loader"
    out=$(chroot "$e" "/bundle/lib/glibc/$bl" --library-path /bundle/lib/glibc:/bundle/lib /bundle/baton version 2>&1) ||
        { echo "$out"; fail "baton under the bundled glibc failed in an empty chroot"; }
    echo "[bundled glibc] $out" | head -n 1
    chroot "$e" "/bundle/lib/glibc/$bl" --library-path /bundle/lib/glibc:/bundle/lib /bundle/baton demo-init /work/demo >/dev/null ||
        fail "demo-init under the bundled glibc failed"
    cmp "$e/work/demo/model/model.safetensors" "$tmp/demo-host/model/model.safetensors" ||
        fail "demo model differs under the bundled glibc"
    mkdir -p "$e/src/jobs" && cp "$ROOT/jobs/demo.ini" "$e/src/jobs/demo.ini"
    chroot "$e" "/bundle/lib/glibc/$bl" --library-path /bundle/lib/glibc:/bundle/lib /bundle/baton demo-init /src/build/demo >/dev/null ||
        fail "demo-init /src/build/demo under the bundled glibc failed"
    out=$(chroot "$e" "/bundle/lib/glibc/$bl" --library-path /bundle/lib/glibc:/bundle/lib /bundle/baton run /src/jobs/demo.ini -s runtime.threads=1 -s runtime.budget=3s 2>&1)
    rc=$?
    echo "[bundled glibc run] rc=$rc"; echo "$out" | tail -n 2 | sed 's/^/    /'
    [ $rc = 75 ] || fail "baton run under the bundled glibc exited $rc (want 75)"
    ls "$e"/src/build/demo/out/ckpt-*.tar >/dev/null 2>&1 || fail "baton run under the bundled glibc committed no archive"
    # And the launcher script itself, outside a chroot.
    "$tmp/baton-bundle/baton-glibc" version >/dev/null || fail "baton-glibc launcher failed"
fi
echo "test_bundle: ok"
