#!/bin/sh
# kaggle/bundle.sh — packs a built baton and the shared libraries it needs
# into baton-bundle.tar.gz, for machines that cannot install packages
# (Kaggle with internet off, a bare spot instance).
#
# Owns: the bundle layout and how the bundled binary finds its libraries.
# Must not: build baton (it packs what `make` built), or modify the input
# binary (it patches a copy).
#
#   sh kaggle/bundle.sh [-b BINARY] [-o OUT.tar.gz] [--cuda-lib SO] [--no-glibc]
#
# Layout of the archive (one top-level directory):
#   baton-bundle/baton              the binary, RUNPATH=$ORIGIN/lib
#   baton-bundle/lib/*.so*          every library `ldd` lists except the glibc
#                                   family; each has RUNPATH=$ORIGIN so the
#                                   libraries' own dependencies resolve inside
#                                   lib/ too
#   baton-bundle/lib/libbaton-cuda.so  the GPU backend, when one was built
#   baton-bundle/lib/glibc/         the build machine's glibc and loader (not
#                                   used by `baton` itself; see baton-glibc)
#   baton-bundle/baton-glibc        launcher that runs baton under the bundled
#                                   glibc, for hosts whose glibc is older than
#                                   the build's (Kaggle's image has been older
#                                   than Debian 12's 2.36; BUNDLE-INFO says
#                                   what this bundle needs)
#   baton-bundle/BUNDLE-INFO        version, glibc needed, libraries and sizes
#
# The GPU backend: libbaton-cuda.so, loaded by baton when it trains on a GPU.
# The portable build (`make cuda-portable`: sm_60..sm_90, any driver >= 450)
# is taken when it exists, else the one `make` built with nvcc, else the one
# --cuda-lib names. It needs no CUDA library at load time (static runtime;
# cuBLASLt is found at run time in the machine's Python packages, where
# Kaggle's PyTorch keeps it, or on its library path), so no CUDA library is
# bundled: cuBLASLt alone is hundreds of MB. Without a GPU or cuBLASLt baton
# still starts and trains on the CPU. The driver (libcuda.so.1) is never
# bundled.
#
# Needs: ldd, patchelf (installed with apt-get when missing and running as
# root), tar, gzip. Exit: 0 written, 64 usage, 66 binary missing, 69 a needed
# tool is missing, 70 the bundled binary does not start.
set -eu

bin=""
out="baton-bundle.tar.gz"
cuda_so=""
glibc=1
while [ $# -gt 0 ]; do
    case "$1" in
        -b) bin=$2; shift 2 ;;
        -o) out=$2; shift 2 ;;
        --with-cuda-libs) echo "bundle.sh: --with-cuda-libs is gone: the GPU backend loads cuBLASLt from the" \
                              "machine (Python packages or library path) and links the CUDA runtime statically," \
                              "so a bundle needs no CUDA library; drop the option" >&2; exit 64 ;;
        --cuda-lib) cuda_so=$2; shift 2 ;;
        --no-glibc) glibc=0; shift ;;
        -h|--help) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bundle.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$bin" ]; then
    for c in "$root/baton" "$root/build/baton"; do
        [ -x "$c" ] && { bin=$c; break; }
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "bundle.sh: no baton binary (build with 'make', or pass -b BINARY)" >&2; exit 66; }
command -v ldd >/dev/null || { echo "bundle.sh: ldd not found (install libc-bin)" >&2; exit 69; }
if ! command -v patchelf >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bundle.sh: installing patchelf"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >/dev/null; } || true
    fi
    command -v patchelf >/dev/null || { echo "bundle.sh: patchelf not found (apt-get install patchelf)" >&2; exit 69; }
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/baton-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
b="$stage/baton-bundle"
mkdir -p "$b/lib"
cp "$bin" "$b/baton"
chmod 755 "$b/baton"

# glibc and its loader: present on every Linux, and must match each other, so
# baton uses the host's. Everything else ldd lists is bundled.
is_glibc() {
    case "$1" in
        libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libresolv.so.*|\
        libutil.so.*|libanl.so.*|libnsl.so.*|libnss_*|libthread_db.so.*|libBrokenLocale.so.*|\
        libc_malloc_debug.so.*|ld-linux*|ld64.so*|linux-vdso*|linux-gate*) return 0 ;;
    esac
    return 1
}
is_cuda() {
    case "$1" in
        libcudart.so*|libcublas.so*|libcublasLt.so*|libnvrtc*|libnvJitLink*) return 0 ;;
    esac
    return 1
}
is_driver() { case "$1" in libcuda.so*|libnvidia*) return 0 ;; esac; return 1; }

# The GPU backend library: --cuda-lib, beside the binary, the portable build
# of this tree, or where `make` put it. The binary says which one it loads
# (`baton version`: "(from PATH)"); the compiled-in paths are not reliably
# greppable (the compiler may store a constant path as immediate stores).
if [ -z "$cuda_so" ]; then
    d=$(dirname "$bin")
    loaded=$("$bin" version 2>/dev/null | sed -n 's/^ *(from \(.*libbaton-cuda\.so\))$/\1/p' | head -n 1)
    for c in "$d/lib/libbaton-cuda.so" "$d/libbaton-cuda.so" ${loaded:+"$loaded"} \
             "$root/build/cuda-portable/libbaton-cuda.so" "$d/build/libbaton-cuda.so" \
             $(grep -a -o '/[[:print:]]*/libbaton-cuda\.so' "$bin" 2>/dev/null || true); do
        [ -f "$c" ] && { cuda_so=$c; break; }
    done
fi
if [ -z "$cuda_so" ] && "$bin" version 2>/dev/null | grep -q 'CUDA=1'; then
    echo "bundle.sh: $bin is a CUDA build but no libbaton-cuda.so was found (build it, or pass --cuda-lib PATH)" >&2
    exit 66
fi
if [ -n "$cuda_so" ]; then
    [ -f "$cuda_so" ] || { echo "bundle.sh: --cuda-lib $cuda_so: no such file" >&2; exit 66; }
    cp "$cuda_so" "$b/lib/libbaton-cuda.so"
fi

ldd_out=$(ldd "$bin") || { echo "bundle.sh: ldd failed on $bin (is it a dynamic executable?)" >&2; exit 66; }
if [ -n "$cuda_so" ]; then
    ldd_out="$ldd_out
$(ldd "$cuda_so")" || { echo "bundle.sh: ldd failed on $cuda_so" >&2; exit 66; }
fi
# unresolved libraries stop the bundle
missing=$(echo "$ldd_out" | grep "not found" || true)
if [ -n "$missing" ]; then
    echo "$missing" >&2
    echo "bundle.sh: $bin has unresolved libraries on this machine" >&2; exit 66
fi

glibc_files=""
# lines: "libfoo.so.1 => /path/libfoo.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
echo "$ldd_out" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3} $1 ~ /^\// {n=$1; sub(/.*\//, "", n); print n, $1}' | sort -u >"$stage/libs"
while read -r name path; do
    if is_glibc "$name"; then
        glibc_files="$glibc_files $name:$path"
    elif is_driver "$name"; then
        :
    elif is_cuda "$name"; then
        echo "bundle.sh: $cuda_so links $name: an old CUDA build; rebuild it (make, or make cuda-portable)" >&2
        exit 66
    else
        cp -L "$path" "$b/lib/$name"
    fi
done <"$stage/libs"

patchelf --set-rpath '$ORIGIN/lib' "$b/baton"
for l in "$b"/lib/*.so*; do
    [ -f "$l" ] || continue
    chmod 644 "$l"
    patchelf --set-rpath '$ORIGIN' "$l"
done

if [ $glibc = 1 ]; then
    mkdir -p "$b/lib/glibc"
    for nf in $glibc_files; do
        name=${nf%%:*}; path=${nf#*:}
        cp -L "$path" "$b/lib/glibc/$name"
    done
    loader=$(cd "$b/lib/glibc" && ls ld-linux* ld64.so* 2>/dev/null | head -n1)
    [ -n "$loader" ] || { echo "bundle.sh: no dynamic loader in ldd output" >&2; exit 70; }
    cat >"$b/baton-glibc" <<EOF
#!/bin/sh
# Runs the bundled baton under the bundled glibc (for hosts whose glibc is
# older than the build machine's). Written by kaggle/bundle.sh.
d=\$(dirname "\$(readlink -f "\$0")")
exec "\$d/lib/glibc/$loader" --library-path "\$d/lib/glibc:\$d/lib" "\$d/baton" "\$@"
EOF
    chmod 755 "$b/baton-glibc"
fi

# What the bundle needs from the host: the highest GLIBC_x.y symbol version.
need_glibc=$(for f in "$b/baton" "$b"/lib/*.so*; do
    [ -f "$f" ] && objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*'
done | sed 's/GLIBC_//' | sort -u -t. -k1,1n -k2,2n -k3,3n | tail -n1)
[ -n "$need_glibc" ] || need_glibc="unknown (objdump missing)"

version=$(env -i "$b/baton" version 2>/dev/null | head -n1) ||
    { echo "bundle.sh: the bundled binary does not start:" >&2; env -i "$b/baton" version >&2 || true; exit 70; }
{
    echo "$version"
    echo "built on: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), glibc $(ldd --version | head -n1 | awk '{print $NF}')"
    echo "needs host glibc >= $need_glibc (else run ./baton-glibc, which brings its own)"
    if [ -n "$cuda_so" ]; then
        archs=$(cuobjdump --list-elf "$b/lib/libbaton-cuda.so" 2>/dev/null | sed -n 's/.*\.\(sm_[0-9]*\)\..*/\1/p' | sort -u | tr '\n' ' ')
        echo "cuda: backend lib/libbaton-cuda.so (${archs:-architectures not listed: no cuobjdump here}); cuBLASLt is" \
             "loaded from the host (Python packages' nvidia/cublas/lib, the library path, or \$BATON_CUDA_LIBS)"
    else
        echo "cuda: none (CPU only)"
    fi
    echo "libraries:"
    (cd "$b/lib" && for f in *.so* glibc/*; do [ -f "$f" ] && printf '  %-34s %10s bytes\n' "$f" "$(wc -c <"$f")"; done)
} >"$b/BUNDLE-INFO"

case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage" -cf - baton-bundle | gzip -9n >"$out.partial"
mv "$out.partial" "$out"
cat "$b/BUNDLE-INFO"
echo "bundle: $out ($(wc -c <"$out") bytes)"
