# switchyard — one plain Makefile.
#
#   make            optimized build: build/rel/switchyard
#   make test       sanitizer build (ASan+UBSan) of everything, then every test through prove
#   make asan       sanitizer build only
#   make bench      benchmarks (tables on stdout)
#   make fuzz       libFuzzer targets (clang)
#   make lint       clang-format check
#   make run        install what is missing, build, serve on the default config
#
# Sources: src/<layer>/**/*.c. Each layer becomes one static archive, and a test
# tests/test_<layer>_*.c links its own layer and the layers it may use (DESIGN.md §1),
# so a layer can be built and tested on its own.

LAYERS  := base engine route net tier store api
PKGS    := libcurl libcjson yaml-0.1 libhs sqlite3 libpq libcrypto
CC      ?= cc
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CSTD    := -std=gnu11 -D_GNU_SOURCE
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LLHTTP_DIR := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
INC     := -Isrc -I$(LLHTTP_INC) $(PKG_CFLAGS)
LIBS    := $(PKG_LIBS) -lpthread -lm
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

MODE ?= rel
ifeq ($(MODE),asan)
  OPT := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  LDOPT := -fsanitize=address,undefined
else
  OPT := -O2 -g -DNDEBUG
  LDOPT :=
endif
CFLAGS_ALL := $(CSTD) $(WARN) $(OPT) $(INC) -DSY_VERSION='"$(VERSION)"' $(CFLAGS)
B ?= build/$(MODE)

# SIMD kernels live in files named *_avx2.c and are compiled for AVX2/FMA/F16C;
# the rest of the code stays baseline x86-64 and picks kernels at run time.
SIMD_FLAGS := -mavx2 -mfma -mf16c

layer_srcs = $(shell find src/$(1) -name '*.c' 2>/dev/null | sort)
layer_objs = $(patsubst src/%.c,$(B)/obj/%.o,$(call layer_srcs,$(1)))
# A layer may use the layers listed before it.
layer_deps = $(wordlist 1,$(words $(1)),$(LAYERS))
pos = $(words $(shell echo $(LAYERS) | sed 's/\b$(1)\b.*//') x)
deps_of = $(wordlist 1,$(call pos,$(1)),$(LAYERS))
rev = $(if $(1),$(call rev,$(wordlist 2,$(words $(1)),$(1))) $(firstword $(1)))
libs_of = $(foreach l,$(call rev,$(call deps_of,$(1))),$(B)/lib$(l).a)

LLHTTP_OBJS := $(B)/obj/llhttp/llhttp.o $(B)/obj/llhttp/api.o $(B)/obj/llhttp/http.o

ALL_LIBS := $(foreach l,$(LAYERS),$(B)/lib$(l).a)
CLI_SRCS := $(wildcard src/cli/*.c)
CLI_OBJS := $(patsubst src/%.c,$(B)/obj/%.o,$(CLI_SRCS))
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRCS))
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(B)/tools/%,$(TOOL_SRCS))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRCS))

.PHONY: all asan tests test bench fuzz lint format run clean deps
.SECONDARY:

all: $(B)/switchyard $(TOOL_BINS)

$(B)/switchyard: $(CLI_OBJS) $(ALL_LIBS)
	$(CC) $(LDOPT) -o $@ $(CLI_OBJS) $(call rev,$(ALL_LIBS)) $(LIBS)

$(B)/obj/%_avx2.o: src/%_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(SIMD_FLAGS) -MMD -MP -c -o $@ $<

$(B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

# The dashboard page (ui/index.html) is compiled in as a byte array (xxd -i).
$(B)/gen/ui_page.h: ui/index.html
	@mkdir -p $(dir $@)
	xxd -i $< > $@.tmp && mv $@.tmp $@
$(B)/obj/api/ui.o: $(B)/gen/ui_page.h
$(B)/obj/api/ui.o: CFLAGS_ALL += -I$(B)/gen

# llhttp is compiled in from the C sources Debian ships (node-llhttp).
$(B)/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(OPT) -w -I$(LLHTTP_INC) -c -o $@ $<

define layer_rule
$(B)/lib$(1).a: $(call layer_objs,$(1)) $(if $(filter net,$(1)),$(LLHTTP_OBJS))
	@mkdir -p $$(dir $$@)
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach l,$(LAYERS),$(eval $(call layer_rule,$(l))))

# tests/test_<layer>_<name>.c links its layer and those above it.
test_layer = $(word 2,$(subst _, ,$(notdir $(1))))
.SECONDEXPANSION:
$(B)/tests/%: tests/%.c $$(call libs_of,$$(call test_layer,$$*))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -o $@ $< $(call libs_of,$(call test_layer,$*)) $(LIBS) -lcmocka -lpcre2-8 $(LDOPT)

$(B)/tools/%: tests/tools/%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -o $@ $< $(call rev,$(ALL_LIBS)) $(LIBS) $(LDOPT)

$(B)/bench/%: bench/%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(call rev,$(ALL_LIBS)) $(LIBS) $(LDOPT)

asan:
	$(MAKE) MODE=asan all tests

tests: $(TEST_BINS) $(TOOL_BINS) $(B)/switchyard

# The test run: every cmocka suite (TAP) and every black-box script, through prove.
test:
	$(MAKE) MODE=asan tests
	$(MAKE) MODE=rel all
	@./tests/run-tests.sh build/asan

bench:
	$(MAKE) MODE=rel all $(BENCH_BINS)
	@./bench/run-all.sh build/rel

FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
fuzz:
	$(MAKE) MODE=fuzz CC=clang OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
	    LDOPT="-fsanitize=address,undefined" $(foreach l,$(LAYERS),build/fuzz/lib$(l).a)
	@mkdir -p build/fuzz/bin
	@for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	  echo "fuzz: $$n"; \
	  clang $(CSTD) -O1 -g -fsanitize=fuzzer,address,undefined $(INC) -o build/fuzz/bin/$$n $$f \
	    $(call rev,$(foreach l,$(LAYERS),build/fuzz/lib$(l).a)) $(LIBS) || exit 1; done

# The project's own C files (tracked by git; never node_modules or build output).
OWN_C = $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]' 'bench/*.[ch]' 'fuzz/*.[ch]')

lint:
	@bad=0; for f in $(OWN_C); do \
	  clang-format --dry-run --Werror $$f 2>/dev/null || { echo "lint: $$f is not clang-formatted"; bad=1; }; \
	done; exit $$bad

format:
	@clang-format -i $(OWN_C)

run:
	./scripts/install-deps.sh
	$(MAKE) MODE=rel all
	./build/rel/switchyard serve -c configs/default.yaml

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
