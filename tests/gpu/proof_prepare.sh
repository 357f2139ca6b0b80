# tests/gpu/proof_prepare.sh — `tests/gpu/proof.sh --prepare`: the offline kit
# (sourced by proof.sh; see its header).
#
# Owns: the kit's layout, made on a machine with network (for the model) and
# the Debian packages (for the bundle and the prebuilt parity binary):
#   KIT/models/all-MiniLM-L6-v2/  config.json, vocab.txt, tokenizer files, and
#                                 model.safetensors in fp16 (--weights fp16,
#                                 the default; 45 MB), fp32 (91 MB) or none
#   KIT/data/sst2-{train,dev}.tsv the first 2000 / 500 rows of SST-2
#   KIT/baton-bundle.tar.gz       kaggle/bundle.sh of a CPU build (--no-bundle: none)
#   KIT/libbaton-cuda.so          a CUDA 13 backend for PREP_ARCHS (default 90)
#   KIT/gpu_ops_parity, KIT/gpu_engine_parity
#                                 tests/gpu/{ops,engine}_parity.c linked against
#                                 libbaton-cuda.so by name (--no-parity-bin: none)
#   KIT/MANIFEST.txt              what is there, sizes, SHA-256
# Must not: write outside KIT and build/, or put anything of ../shared/data in
# git (KIT is under build/, which git ignores).

prepare_kit() {
    say_p() { echo "prepare: $*"; }
    mkdir -p "$KIT/models/all-MiniLM-L6-v2" "$KIT/data" || return 74
    KIT=$(cd "$KIT" && pwd)
    src=${BATON_MODELS:-$ROOT/build/models}/all-MiniLM-L6-v2
    if [ ! -f "$src/model.safetensors" ]; then
        say_p "fetching all-MiniLM-L6-v2 (tests/reference/fetch_models.sh)"
        BATON_MODELS=$(dirname "$src") sh "$ROOT/tests/reference/fetch_models.sh" || { say_p "cannot fetch the model"; return 69; }
    fi
    m=$KIT/models/all-MiniLM-L6-v2
    for f in config.json vocab.txt tokenizer_config.json special_tokens_map.json; do
        [ ! -f "$src/$f" ] || cp "$src/$f" "$m/"
    done
    rm -f "$m/model.safetensors"
    case "$WEIGHTS" in
        fp32) cp "$src/model.safetensors" "$m/" ;;
        fp16) "$PY" - "$src/model.safetensors" "$m/model.safetensors" <<'EOF' || { say_p "cannot convert the weights to fp16"; return 70; }
import json, struct, sys
src, dst = sys.argv[1:3]
data = open(src, "rb").read()
(n,) = struct.unpack("<Q", data[:8])
head = json.loads(data[8:8 + n])
out, blobs, off = {}, [], 0
for name, t in head.items():
    if name == "__metadata__":
        continue
    b, e = t["data_offsets"]
    raw = data[8 + n + b:8 + n + e]
    if t["dtype"] == "F32":
        try:
            import numpy as np
            raw = np.frombuffer(raw, dtype=np.float32).astype(np.float16).tobytes()
        except ImportError:
            vals = struct.unpack("<%df" % (len(raw) // 4), raw)
            raw = struct.pack("<%de" % len(vals), *vals)
        t = dict(t, dtype="F16")
    out[name] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
h = json.dumps(out, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs:
        f.write(b)
EOF
            ;;
        none) ;;
    esac
    d=${BATON_DATA:-$ROOT/../shared/data}/sst2
    if [ -f "$d/train.tsv" ]; then
        head -n 2001 "$d/train.tsv" >"$KIT/data/sst2-train.tsv"
        head -n 501 "$d/dev.tsv" >"$KIT/data/sst2-dev.tsv"
    else
        say_p "no SST-2 at $d: the proof will use synthetic sentences"
    fi
    pb=$ROOT/build/proof-prep
    if [ "$BUNDLE" = 1 ] || [ "$PARITY_BIN" = 1 ]; then
        make -s CUDA=0 BUILD="$pb" BIN="$pb/baton" -j"$NPROC" || { say_p "make of baton failed"; return 70; }
    fi
    if [ "$BUNDLE" = 1 ]; then
        sh "$ROOT/kaggle/bundle.sh" -b "$pb/baton" -o "$KIT/baton-bundle.tar.gz" >"$pb/bundle.log" 2>&1 ||
            { say_p "kaggle/bundle.sh failed ($pb/bundle.log)"; return 70; }
    fi
    if command -v nvcc >/dev/null 2>&1; then
        archs=${PREP_ARCHS:-90}
        cb=$ROOT/build/proof-prep-cuda
        make -s CUDA=1 CUDA_ARCHS="$archs" BUILD="$cb" "$cb/libbaton-cuda.so" -j"$NPROC" || { say_p "make of libbaton-cuda.so failed"; return 70; }
        cp "$cb/libbaton-cuda.so" "$KIT/libbaton-cuda.so"
        if [ "$PARITY_BIN" = 1 ]; then
            BUILD=$cb CUDA_ARCHS="$archs" CUDA_LIB="$cb/libbaton-cuda.so" LINK_ONLY=1 sh "$ROOT/tests/gpu/run.sh" ||
                { say_p "cannot link tests/gpu/ops_parity.c"; return 70; }
            cp "$cb/tests/gpu_ops_parity" "$cb/tests/gpu_engine_parity" "$KIT/"
        fi
    else
        say_p "no nvcc here: the kit gets no libbaton-cuda.so and no parity programs"
    fi
    (cd "$KIT" && find . -type f ! -name MANIFEST.txt | LC_ALL=C sort | while read -r f; do
        printf '%12s  %s  %s\n' "$(wc -c <"$f")" "$(sha256sum "$f" | cut -c1-64)" "$f"; done) >"$KIT/MANIFEST.txt"
    kit_b=$(du -sb "$KIT" | cut -f1)
    tree_b=$(cd "$ROOT" && git ls-files -z 2>/dev/null | xargs -0 cat 2>/dev/null | wc -c)
    cat "$KIT/MANIFEST.txt"
    say_p "kit: $KIT, $((kit_b / 1048576)) MiB; with the working tree ($((tree_b / 1048576)) MiB) $(((kit_b + tree_b) / 1048576)) MiB"
    if [ $((kit_b + tree_b)) -gt $((64 * 1048576)) ]; then
        say_p "that is over the 64 MiB a lent GPU machine of this workplace takes with one call: use --weights none" \
              "(random weights of the same shape) or --no-bundle where the GPU machine can build baton"
    fi
    return 0
}
