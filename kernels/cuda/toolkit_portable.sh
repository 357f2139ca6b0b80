#!/bin/sh
# kernels/cuda/toolkit_portable.sh DIR — the pinned toolkit of `make
# cuda-portable`: Debian bookworm's nvidia-cuda-toolkit 11.8 (contrib and
# non-free), installed when missing, and DIR/nvcc, a wrapper that makes it
# usable beside a newer CUDA the machine image installs system-wide.
#
# Why 11.8 (docs/building.md): it is the newest nvcc a Debian package offers,
# the last CUDA line that compiles for sm_60 (P100) and sm_70 (V100) as well
# as sm_75..sm_90, and code it builds with its static runtime runs on any
# driver >= 450 (CUDA 11 minor-version compatibility), Kaggle's CUDA 12 one
# included. It accepts no gcc newer than 11, so the host compiler is clang-14.
#
# The wrapper puts Debian's tools first (ptxas, fatbinary, nvlink and cudafe++
# live in /usr/bin, behind /usr/local/cuda/bin on PATH) and Debian's CUDA
# headers first (DIR/include: links to the nvidia-cuda-dev headers, since
# /usr/local/include may hold another CUDA's).
set -eu
dir=${1:?usage: toolkit_portable.sh DIR}
tk=/usr/lib/nvidia-cuda-toolkit/bin/nvcc
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if ! [ -x "$tk" ] || ! have nvidia-cuda-dev || ! have clang-14; then
    echo "cuda-portable: installing Debian's nvidia-cuda-toolkit 11.8 and clang-14 (about 3 GB, once)"
    src=/etc/apt/sources.list.d/baton-cuda-toolkit.sources
    if ! apt-cache policy nvidia-cuda-toolkit 2>/dev/null | grep -q 'Candidate: 11\.8'; then
        printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: bookworm bookworm-updates" \
            "Components: contrib non-free" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
            $SUDO tee "$src" >/dev/null
    fi
    log=$(mktemp)
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
            --no-install-recommends nvidia-cuda-toolkit nvidia-cuda-dev clang-14; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "cuda-portable: could not install nvidia-cuda-toolkit 11.8 (log: $log); it comes from Debian bookworm's" \
             "contrib/non-free components" >&2
        exit 69
    fi
    rm -f "$log"
fi
"$tk" --version | grep -q 'release 11\.8' ||
    { echo "cuda-portable: $tk is not CUDA 11.8: $("$tk" --version | tail -n 1)" >&2; exit 69; }

mkdir -p "$dir/bin" "$dir/include"
for t in ptxas fatbinary nvlink cudafe++ bin2c nvprune cuobjdump; do
    [ -e "/usr/bin/$t" ] && ln -sf "/usr/bin/$t" "$dir/bin/$t"
done
dpkg -L nvidia-cuda-dev | while read -r f; do
    case "$f" in /usr/include/*) ;; *) continue ;; esac
    [ -f "$f" ] || continue
    rel=${f#/usr/include/}
    mkdir -p "$dir/include/$(dirname "$rel")"
    ln -sf "$f" "$dir/include/$rel"
done
cat >"$dir/nvcc" <<WRAP
#!/bin/sh
# nvcc of CUDA 11.8 with its own tools and headers first (kernels/cuda/toolkit_portable.sh)
PATH="$(cd "$dir" && pwd)/bin:/usr/lib/nvidia-cuda-toolkit/bin:\$PATH" exec $tk -ccbin clang-14 \
    -I"$(cd "$dir" && pwd)/include" "\$@"
WRAP
chmod 755 "$dir/nvcc"
