# baton — build, test, demo, deps, bench.
#
#   make              ./baton (objects under build/); CUDA backend too when nvcc is on PATH
#   make CUDA=0       CPU-only build
#   make test         every CMocka unit test, integration script and reference test
#   make test SAN=1   the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-tsan    the watchdog, signal and stall tests under ThreadSanitizer
#                     (build/tsan; part of make test); make test TSAN=1: every test
#   make deps         install missing Debian packages (no-op when present)
#   make bench        benchmarks against the peers (see docs/performance.md)
#   make fuzz         build the fuzz targets (clang + libFuzzer)
#   make soak         kill/resume and fault injection at scale (not part of make test; minutes)
#
# Variables: BUILD (object dir), BIN (binary path), T (run only tests whose
# name contains T), CUDA_ARCHS (GPU targets), JOBS, SOAK_KILLS / SOAK_FAULTS /
# SOAK_SEED (make soak: at least that many SIGKILLs and injected faults).

CUDA ?= $(if $(shell command -v nvcc 2>/dev/null),1,0)
SAN ?= 0
TSAN ?= 0
ifeq ($(SAN)$(TSAN),11)
$(error SAN=1 and TSAN=1 exclude each other (AddressSanitizer and ThreadSanitizer cannot share a process): pick one)
endif
ifeq ($(SAN),1)
BUILD ?= build/san
BIN ?= $(BUILD)/baton
else ifeq ($(TSAN),1)
BUILD ?= build/tsan
BIN ?= $(BUILD)/baton
else
BUILD ?= build
BIN ?= baton
endif

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0-dev)
PKGS := libarchive libcrypto inih jansson libutf8proc openblas cmocka
# pkg-config is asked when the Makefile is parsed. `make demo`, `make test` and
# `make bench` therefore install missing packages first (`deps`) and then run
# make again, so the second make parses after the packages exist.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs libarchive libcrypto inih jansson libutf8proc openblas 2>/dev/null)
PKG_MISSING := $(shell pkg-config --exists $(PKGS) 2>/dev/null || echo 1)

CC ?= gcc
OPT ?= -O2
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Wno-unused-parameter -fopenmp -march=x86-64-v2 -I.
ifeq ($(SAN),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
endif
# ThreadSanitizer (`make test-tsan`, docs/development.md). libgomp is not
# instrumented: the tests run with OMP_NUM_THREADS=1 under it (tests/run.sh).
ifeq ($(TSAN),1)
CFLAGS_BASE += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS_SAN := -fsanitize=thread
endif
CFLAGS := $(CFLAGS_BASE) $(PKG_CFLAGS) -DBATON_VERSION='"$(VERSION)"' -DBATON_CUDA=$(CUDA)
CFLAGS += -DBATON_CFLAGS='"$(strip $(OPT) SAN=$(SAN) $(if $(filter 1,$(TSAN)),TSAN=1 )CUDA=$(CUDA))"'
LDLIBS := $(PKG_LIBS) -lm -lpthread -fopenmp $(LDFLAGS_SAN)

# CUDA: fatbins for sm_60..90 plus PTX for forward compatibility.
NVCC ?= nvcc
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v nvcc 2>/dev/null))
# The wanted targets, intersected with what this nvcc supports (CUDA 13 dropped
# sm_60/sm_70: build with a CUDA 12 toolkit for P100/V100; see docs/building.md).
CUDA_WANT_ARCHS ?= 60 70 75 80 86 89 90
CUDA_ARCHS ?= $(if $(filter 1,$(CUDA)),$(filter $(CUDA_WANT_ARCHS),$(patsubst sm_%,%,$(shell $(NVCC) --list-gpu-code 2>/dev/null))),)
NVCC_GENCODE := $(foreach a,$(CUDA_ARCHS),-gencode=arch=compute_$(a),code=sm_$(a)) \
                -gencode=arch=compute_$(lastword $(CUDA_ARCHS)),code=compute_$(lastword $(CUDA_ARCHS))
NVCCFLAGS ?= -O3 -std=c++17 -I. -lineinfo $(NVCC_GENCODE) -Xcompiler -fPIC -Wno-deprecated-gpu-targets -Xfatbin -compress-all
# The portable backend's build directory and targets (`make cuda-portable`).
PORTABLE ?= build/cuda-portable
PORTABLE_ARCHS ?= 60 70 75 80 86 89 90
# Headers (cublasLt.h for the loader shim) and the static CUDA runtime.
CUDA_INC ?= $(CUDA_HOME)/include
CUDA_LIBDIR ?= $(CUDA_HOME)/lib64

LIB_SRC := $(filter-out runner/main.c,$(wildcard util/*.c state/*.c engine/*.c kernels/*.c kernels/cpu/*.c runner/*.c))
CU_SRC := $(wildcard kernels/cuda/*.cu)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
# The CUDA backend is a shared library loaded at run time (kernels/backend.c),
# so a CUDA build starts on machines without the CUDA runtime and trains on
# the CPU there; it takes baton's own symbols from the executable (-rdynamic).
# It needs no CUDA library at load time: the CUDA runtime is linked
# statically and cuBLASLt is found and loaded on first use
# (kernels/cuda/cuda_blas_dl.c), so one build serves CUDA 11, 12 and 13;
# NCCL likewise (kernels/cuda/nccl_dl.c), only for several GPUs.
ifeq ($(CUDA),1)
CU_OBJ := $(CU_SRC:%.cu=$(BUILD)/%.cu.o) $(BUILD)/kernels/cuda/cuda_blas_dl.o $(BUILD)/kernels/cuda/cuda_dl_find.o \
          $(BUILD)/kernels/cuda/nccl_dl.o
CUDA_SO := $(BUILD)/libbaton-cuda.so
CUDA_LIBS := -L$(CUDA_LIBDIR) -l:libcudart_static.a -ldl -lrt -lpthread -lstdc++
CFLAGS += -DBATON_CUDA_LIB_BUILD='"$(abspath $(CUDA_SO))"'
endif
# every build can load a CUDA backend built later (`make cuda-portable`)
CFLAGS += -DBATON_CUDA_LIB_PORTABLE='"$(abspath $(PORTABLE))/libbaton-cuda.so"'
LDLIBS += -rdynamic -ldl
MAIN_OBJ := $(BUILD)/runner/main.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test test-unit bench fuzz demo clean models test-run demo-run bench-run need-pkgs cuda-portable soak soak-run \
        test-tsan test-tsan-run
all: $(BIN)

# A build without the packages says what to do instead of failing on a header.
need-pkgs:
ifeq ($(PKG_MISSING),1)
	@echo "baton: the build needs Debian packages that are missing (pkg-config: $(PKGS))." >&2
	@echo "       Run 'make deps' (installs them with apt-get), or 'make demo' / 'make test', which do it first." >&2
	@exit 1
endif

$(BIN): $(LIB_OBJ) $(MAIN_OBJ) | $(CUDA_SO)
	$(CC) -o $@ $^ $(LDLIBS)

ifeq ($(CUDA),1)
$(CUDA_SO): $(CU_OBJ)
	$(CC) -shared -o $@ $^ $(CUDA_LIBS)

# the CUDA objects for programs that link them directly (tests/gpu, bench/bench_gpu_ops.sh)
$(BUILD)/libbaton-cuda.a: $(CU_OBJ)
	@rm -f $@
	ar rcs $@ $^
endif

$(BUILD)/libbaton.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c | need-pkgs
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -DBATON_CUDA=1 -MD -MP -MF $(@:.o=.d) -c $< -o $@

# the run-time loaders of cuBLASLt and NCCL (plain C; -I. for kernels/cuda/cuda_dl_find.h)
$(BUILD)/kernels/cuda/%.o: kernels/cuda/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -fPIC -I. -I$(CUDA_INC) -MMD -MP -c $< -o $@

# The portable CUDA backend (docs/building.md): CUDA 11.8 from Debian, code
# for sm_60 (P100) to sm_90 plus PTX, static runtime, no CUDA library needed
# at load time. It installs the pinned toolkit when missing.
cuda-portable:
	@sh kernels/cuda/toolkit_portable.sh $(PORTABLE)/toolkit
	@$(MAKE) --no-print-directory CUDA=1 BUILD=$(PORTABLE) NVCC=$(abspath $(PORTABLE))/toolkit/nvcc \
	    CUDA_ARCHS="$(PORTABLE_ARCHS)" CUDA_INC=$(abspath $(PORTABLE))/toolkit/include \
	    CUDA_LIBDIR=/usr/lib/x86_64-linux-gnu $(PORTABLE)/libbaton-cuda.so
	@sh kernels/cuda/check_portable.sh $(PORTABLE)/libbaton-cuda.so $(PORTABLE_ARCHS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libbaton.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libbaton.a $(LDLIBS) $(shell pkg-config --libs cmocka)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

deps:
	@sh tests/deps.sh

# make soak: tests/soak/soak.sh (kill/resume chains of `baton run`, then
# tests/soak/soak_faults.c on their archives); prints the damaged-load and
# non-identical-final-weights counts, both must be 0 (docs/checkpoints.md).
SOAK_KILLS ?= 1000
SOAK_FAULTS ?= 10000
SOAK_SEED ?=
$(BUILD)/soak/soak_faults: tests/soak/soak_faults.c $(BUILD)/libbaton.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libbaton.a $(LDLIBS)

test-unit: $(UNIT_BIN)

# the real all-MiniLM-L6-v2 under build/models/ (jobs/sst2.ini, benchmarks)
models:
	@sh tests/reference/fetch_models.sh

# deps first, then a fresh make that sees the installed packages.
# (a plain `make test` also runs test-tsan, about a minute and a half)
test: deps
	@$(MAKE) --no-print-directory test-run
ifeq ($(SAN)$(TSAN),00)
	@$(MAKE) --no-print-directory test-tsan
endif
demo: deps
	@$(MAKE) --no-print-directory demo-run
bench: deps
	@$(MAKE) --no-print-directory bench-run
soak: deps
	@$(MAKE) --no-print-directory soak-run

test-run: $(BIN) $(UNIT_BIN)
	@BATON=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) SAN=$(SAN) TSAN=$(TSAN) T='$(T)' sh tests/run.sh

# The tests of the code that runs on more than one thread (the watchdog's stall
# thread, signal handlers, status.json, the replicas of runtime.devices) under
# ThreadSanitizer, CPU-only, in
# build/tsan; any report fails the test it came from (tests/run.sh).
TSAN_TESTS ?= unit/test_watchdog unit/test_replicas unit/test_replicas_par integration/test_run_devices_par.sh \
              integration/test_run_signals.sh \
              integration/test_run_stall.sh
test-tsan:
	@$(MAKE) --no-print-directory TSAN=1 SAN=0 CUDA=0 BUILD=build/tsan BIN=build/tsan/baton test-tsan-run
test-tsan-run: $(BIN) $(patsubst unit/%,$(BUILD)/tests/%,$(filter unit/%,$(TSAN_TESTS)))
	@BATON=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) SAN=0 TSAN=1 T='$(TSAN_TESTS)' sh tests/run.sh

demo-run: $(BIN)
	@sh jobs/demo.sh $(abspath $(BIN))

bench-run: $(BIN)
	@BATON=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) sh bench/run.sh

soak-run: $(BIN) $(BUILD)/soak/soak_faults
	@BATON=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) SAN=$(SAN) SOAK_KILLS=$(SOAK_KILLS) SOAK_FAULTS=$(SOAK_FAULTS) \
	    BATON_TEST_SEED=$(SOAK_SEED) sh tests/soak/soak.sh

fuzz:
	@$(MAKE) -f tests/fuzz/Makefile

clean:
	rm -rf build baton
