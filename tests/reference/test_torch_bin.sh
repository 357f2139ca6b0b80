#!/bin/sh
# tests/reference/test_torch_bin.sh — pytorch_model.bin files written by the
# reference PyTorch (torch.save of BERT state dicts in fp32, fp16 and bf16,
# pickle protocols 2 and 4, save_pretrained(safe_serialization=False), views
# into shared storages) load bit-exactly as the safetensors of the same
# tensors; predict, inspect-model and run give the same results from either
# directory; and files Python would run code from (a __reduce__ to
# os.system), legacy and repeated-element views are refused with no side
# effect. See test_torch_bin.py.
set -u
. "$(dirname "$0")/env.sh"
need_python_module torch transformers safetensors
[ -f "$BUILD/libbaton.a" ] || skip "$BUILD/libbaton.a missing (run: make BUILD=$BUILD test-unit)"
DRIVER="$BUILD/weights_driver"
SANF=""
[ "${SAN:-0}" = 1 ] && SANF="-fsanitize=address,undefined -fno-omit-frame-pointer"
if [ ! -x "$DRIVER" ] || [ "$ROOT/tests/reference/weights_driver.c" -nt "$DRIVER" ] || [ "$BUILD/libbaton.a" -nt "$DRIVER" ]; then
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -g -fopenmp -I"$ROOT" $SANF \
        $(pkg-config --cflags libarchive libcrypto inih jansson libutf8proc openblas) \
        -o "$DRIVER" "$ROOT/tests/reference/weights_driver.c" "$BUILD/libbaton.a" \
        $(pkg-config --libs libarchive libcrypto inih jansson libutf8proc openblas) -lm -lpthread -ldl -fopenmp $SANF \
        || { echo "FAIL: cannot build the weights driver" >&2; exit 1; }
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
M=""
[ -f "$MINILM/model.safetensors" ] && M="$MINILM"
"$PY" "$(dirname "$0")/test_torch_bin.py" "$BATON" "$DRIVER" "$WORK" $M || exit 1
[ -n "$M" ] || skip "all-MiniLM-L6-v2 cases not run: not found at $MINILM (run tests/reference/fetch_models.sh)"
