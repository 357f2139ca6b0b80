# tests/reference/build_driver.sh — sourced by the engine reference tests:
# compiles tests/reference/engine_driver.c against $BUILD/libbaton.a into
# $BUILD/engine_driver (same flags as the Makefile) and sets $DRIVER.
[ -f "$BUILD/libbaton.a" ] || skip "$BUILD/libbaton.a missing (run: make BUILD=$BUILD test-unit)"
DRIVER="$BUILD/engine_driver"
SANF=""
[ "${SAN:-0}" = 1 ] && SANF="-fsanitize=address,undefined -fno-omit-frame-pointer"
if [ ! -x "$DRIVER" ] || [ "$ROOT/tests/reference/engine_driver.c" -nt "$DRIVER" ] || [ "$BUILD/libbaton.a" -nt "$DRIVER" ]; then
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -g -fopenmp -march=x86-64-v2 -I"$ROOT" $SANF \
        $(pkg-config --cflags libarchive libcrypto inih jansson libutf8proc openblas) \
        -o "$DRIVER" "$ROOT/tests/reference/engine_driver.c" "$BUILD/libbaton.a" \
        $(pkg-config --libs libarchive libcrypto inih jansson libutf8proc openblas) -lm -lpthread -ldl -fopenmp $SANF \
        || { echo "FAIL: cannot build the engine driver" >&2; exit 1; }
fi
