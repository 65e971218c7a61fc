# kq: plain Makefile. See README.md.
#   make               host build: build/host/kq (on an aarch64 machine: build/aarch64/kq, native)
#   make ARCH=aarch64  cross build with aarch64-linux-gnu-gcc: build/aarch64/kq, static, run under qemu
#   make test          all tests: host, then aarch64 under qemu (-cpu neoverse-n1 and -cpu cortex-a72)
#   make validate      the main job (see README.md)
#   make SANITIZE=1    host build with ASan + UBSan

UNAME_M := $(shell uname -m)
ifeq ($(UNAME_M),aarch64)
  NATIVE_ARCH := aarch64
else
  NATIVE_ARCH := host
endif
ARCH ?= $(NATIVE_ARCH)

ifeq ($(ARCH),aarch64)
  ifeq ($(UNAME_M),aarch64)
    CC ?= gcc
    CROSS := 0
  else
    CC := aarch64-linux-gnu-gcc
    CROSS := 1
  endif
  AARCH64 := 1
else ifeq ($(ARCH),host)
  AARCH64 := 0
  CROSS := 0
else
  $(error ARCH must be host or aarch64, not '$(ARCH)')
endif

# gcc's default CC from make is "cc"; keep it unless overridden.
BUILD := build/$(ARCH)
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
  BUILD := build/$(ARCH)-sanitize
endif

WARN := -Wall -Wextra -Werror
# -ffp-contract=off: no fused multiply-add behind our back (DESIGN.md: rounding is the specification).
OPT := -O2 -ffp-contract=off -fno-fast-math -fno-strict-aliasing
CPPFLAGS := -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Ireference -Ioptimized -Ioptimized/neon -Iconvert -Iengine \
            -Ivalidation -Ifixtures -Icli -Itests
CFLAGS_BASE := -std=c11 $(WARN) $(OPT) -g -MMD -MP
LDLIBS := -lm -lpthread

# Optional libraries: the static cross build has neither GSL nor cJSON (Debian ships no static arm64
# versions beside the host's), so what needs them is left out and `kq --version` says so.
ifeq ($(CROSS),1)
  HAVE_GSL := 0
  HAVE_CJSON := 0
  LDFLAGS += -static
else
  HAVE_GSL := $(shell printf '\043include <gsl/gsl_rng.h>\nint main(void){return 0;}' | $(CC) -x c - -o /dev/null -lgsl -lgslcblas -lm >/dev/null 2>&1 && echo 1 || echo 0)
  HAVE_CJSON := $(shell printf '\043include <cjson/cJSON.h>\nint main(void){return 0;}' | $(CC) -x c - -o /dev/null -lcjson >/dev/null 2>&1 && echo 1 || echo 0)
endif
CPPFLAGS += -DKQ_HAVE_GSL=$(HAVE_GSL) -DKQ_HAVE_CJSON=$(HAVE_CJSON)
ifeq ($(HAVE_GSL),1)
  LDLIBS += -lgsl -lgslcblas
endif
ifeq ($(HAVE_CJSON),1)
  LDLIBS += -lcjson
endif

ifeq ($(SANITIZE),1)
  CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif

# aarch64: one binary for the whole fleet. Baseline ARMv8-A everywhere; the Kunpeng 920 paths
# (SDOT) live in *_dotprod.c, compiled for tsv110 with dotprod, and are chosen at run time (HWCAP).
ifeq ($(AARCH64),1)
  ARCH_CFLAGS := -march=armv8-a -mtune=tsv110
  DOTPROD_CFLAGS := -mcpu=tsv110+dotprod
else
  ARCH_CFLAGS :=
  DOTPROD_CFLAGS :=
endif

KQ_VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

LIB_SRC := $(wildcard reference/*.c) $(wildcard optimized/*.c) $(wildcard convert/*.c) $(wildcard engine/*.c) \
           $(wildcard validation/*.c) $(wildcard fixtures/*.c) $(filter-out cli/main.c,$(wildcard cli/*.c))
ifeq ($(AARCH64),1)
  LIB_SRC += $(wildcard optimized/neon/*.c)
endif
TEST_SRC := $(wildcard tests/test_*.c)
TEST_SUPPORT_SRC := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))

LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
TEST_SUPPORT_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SUPPORT_SRC))
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
LIB := $(BUILD)/libkq.a
KQ := $(BUILD)/kq

.PHONY: all kq tests deps fuzz fuzz-build test test-host test-aarch64 validate clean check-long \
        kunpeng-cycles fixtures help
.DEFAULT_GOAL := all

all: $(KQ)
kq: $(KQ)
tests: $(TEST_BIN) $(KQ)

$(BUILD)/obj/optimized/neon/%_dotprod.o: optimized/neon/%_dotprod.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_BASE) -O3 $(DOTPROD_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/optimized/neon/%.o: optimized/neon/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_BASE) -O3 $(ARCH_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_BASE) $(ARCH_CFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# The version and git revision live in a generated header rewritten only when they change, so
# `kq --version` is never stale and nothing else recompiles.
.PHONY: FORCE
$(BUILD)/kq_version.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define KQ_VERSION "%s"\n#define KQ_GIT_REV "%s"\n' '$(KQ_VERSION)' '$(GIT_REV)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@
$(BUILD)/obj/cli/main.o: $(BUILD)/kq_version.h
$(BUILD)/obj/cli/main.o: CPPFLAGS += -I$(BUILD)

$(KQ): $(BUILD)/obj/cli/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- set-up -------------------------------------------------------------------------------------
deps:
	@sh tools/deps.sh

# ---- tests ---------------------------------------------------------------------------------------
# Host tests, then the same aarch64 binaries under qemu on two CPUs: neoverse-n1 (ARMv8.2 + dotprod +
# fp16, like Kunpeng 920's tsv110) and cortex-a72 (ARMv8.0, like Kunpeng 916). Never qemu's default
# CPU: it has SVE and i8mm, which Kunpeng 920 lacks.
# SANITIZE=1 applies to the host build only (the static cross build cannot link the sanitizers).
ifeq ($(NATIVE_ARCH),aarch64)
test: deps
	$(MAKE) tests
	sh tests/run_all.sh $(BUILD) native
else
test: deps
	$(MAKE) ARCH=host tests
	$(MAKE) ARCH=aarch64 SANITIZE=0 tests
ifeq ($(SANITIZE),1)
	$(MAKE) SANITIZE=0 fuzz-build
	KQ_FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) sh tests/run_all.sh build/host-sanitize host build/aarch64 qemu
else
	sh tests/run_all.sh build/host host build/aarch64 qemu
endif
endif

check-long: deps
	$(MAKE) tests
	KQ_LONG=1 sh tests/run_all.sh $(BUILD) $(if $(filter aarch64,$(NATIVE_ARCH)),native,host)

# ---- fuzzing (libFuzzer, clang): one harness per parser in tests/fuzz/fuzz_NAME.c, corpus in
# tests/fuzz/corpus/NAME/. `make fuzz FUZZ_SECONDS=600` runs each for that long; make test SANITIZE=1
# runs each briefly.
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_LIB_SRC := $(wildcard reference/*.c) optimized/dispatch.c $(wildcard convert/*.c)
FUZZ_CFLAGS := -std=c11 -g -O1 -ffp-contract=off -fsanitize=fuzzer,address,undefined \
               $(filter-out -DKQ_HAVE_GSL=% -DKQ_HAVE_CJSON=%,$(CPPFLAGS)) \
               -DKQ_HAVE_GSL=0 -DKQ_HAVE_CJSON=$(HAVE_CJSON)
build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRC) -lm -lpthread $(if $(filter 1,$(HAVE_CJSON)),-lcjson)
fuzz-build: $(FUZZ_BIN)
fuzz: deps fuzz-build
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p tests/fuzz/corpus/$$n; \
	  echo "== $$n: $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 tests/fuzz/corpus/$$n || exit 1; done

# ---- the main job -------------------------------------------------------------------------------
validate: deps
	$(MAKE) ARCH=$(NATIVE_ARCH) all
ifneq ($(NATIVE_ARCH),aarch64)
	$(MAKE) ARCH=aarch64 all
endif
	sh validation/validate.sh "$(MODEL)"

kunpeng-cycles: deps
	sh validation/kunpeng_cycles.sh build/kunpeng-cycles

fixtures: deps all
	$(KQ) fixtures

clean:
	rm -rf build

help:
	@sed -n '1,8p' Makefile
