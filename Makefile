# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
#   make            release build: ./meshd and ./meshctl
#   make asan       AddressSanitizer + UndefinedBehaviorSanitizer build in build/asan/
#   make fuzz       libFuzzer targets in build/fuzz/, each run briefly over its corpus
#   make deps       install build and test dependencies and the pinned real peers
#   make check      deps, asan build, unit tests, fuzz smoke and end-to-end tests
#   make demo       a small tailnet in network namespaces: headscale, two meshd, one tailscaled
#   make bench      the benchmarks in tests/bench/

CC	?= cc
FUZZCC	?= clang
PKG_CONFIG ?= pkg-config
PREFIX	?= /usr/local
DESTDIR	?=

PKGS	:= libevent libevent_openssl openssl libsodium libmnl libnghttp2 json-c libzstd libcurl
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

WARN	:= -Wall -Wextra -Wshadow -Wformat=2 -Wvla -Wstrict-prototypes \
	   -Wmissing-prototypes -Wpointer-arith -Wno-unused-parameter
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE -I. $(WARN) $(PKG_CFLAGS) -MMD -MP
HARDEN	:= -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fPIE
HARDEN_LD := -pie -Wl,-z,relro,-z,now -Wl,--gc-sections

REL_CFLAGS  := $(BASE_CFLAGS) -O2 -g -ffunction-sections -fdata-sections $(HARDEN) $(CFLAGS)
ASAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	       -fno-omit-frame-pointer
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 -g $(ASAN_FLAGS) -DMESHD_SANITIZE $(CFLAGS)
FUZZ_CFLAGS := $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
	       -DMESHD_FUZZ -Wno-unknown-warning-option

# Every .c under these directories is library code; the mains live apart.
LIB_DIRS := common wg netlink dns agent agent/control agent/magicsock agent/filter agent/localapi
MESHD_SRC := agent/main.c
LIB_SRC  := $(filter-out $(MESHD_SRC),$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
MESHCTL_SRC := agent/cli/meshctl.c
UNIT_SRC := $(wildcard tests/unit/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

lib_objs = $(patsubst %.c,build/$(1)/obj/%.o,$(LIB_SRC))

REL_LIB  := $(call lib_objs,release)
ASAN_LIB := $(call lib_objs,asan)
FUZZ_LIB := $(call lib_objs,fuzz)

UNIT_BINS := $(patsubst tests/unit/%.c,build/asan/tests/%,$(UNIT_SRC))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))

.PHONY: all asan fuzz fuzz-build unit check deps demo bench install clean
.DEFAULT_GOAL := all

all: meshd meshctl

meshd: build/release/meshd
	cp $< $@
meshctl: build/release/meshctl
	cp $< $@

build/release/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(REL_CFLAGS) -c -o $@ $<
build/asan/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -c -o $@ $<
build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZCC) $(FUZZ_CFLAGS) -c -o $@ $<

build/release/meshd: $(REL_LIB) $(patsubst %.c,build/release/obj/%.o,$(MESHD_SRC))
	$(CC) $(REL_CFLAGS) $(HARDEN_LD) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)
build/release/meshctl: $(REL_LIB) $(patsubst %.c,build/release/obj/%.o,$(MESHCTL_SRC))
	$(CC) $(REL_CFLAGS) $(HARDEN_LD) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

build/asan/meshd: $(ASAN_LIB) $(patsubst %.c,build/asan/obj/%.o,$(MESHD_SRC))
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)
build/asan/meshctl: $(ASAN_LIB) $(patsubst %.c,build/asan/obj/%.o,$(MESHCTL_SRC))
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)
build/asan/tests/%: build/asan/obj/tests/unit/%.o $(ASAN_LIB)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS) $(LDFLAGS)

build/fuzz/%: build/fuzz/obj/tests/fuzz/%.o $(FUZZ_LIB)
	$(FUZZCC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS)

asan: build/asan/meshd build/asan/meshctl $(UNIT_BINS)

unit: $(UNIT_BINS)

fuzz-build: $(FUZZ_BINS)

# Each target runs over its committed seeds and then explores for FUZZ_SECONDS.
FUZZ_SECONDS ?= 10
fuzz: fuzz-build
	@for f in $(FUZZ_BINS); do \
		n=$${f#build/fuzz/fuzz_}; mkdir -p build/fuzz/corpus/$$n; \
		echo "fuzz $$n: $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
			build/fuzz/corpus/$$n tests/fuzz/corpus/$$n >build/fuzz/$$n.log 2>&1 \
			|| { tail -40 build/fuzz/$$n.log; exit 1; }; \
	done

deps:
	@scripts/deps.sh

check: deps
	$(MAKE) asan fuzz-build
	tests/run.sh

demo: deps all
	scripts/demo.sh

bench: deps all
	tests/bench/wg-throughput.sh
	tests/bench/mesh-throughput.sh

install: all
	install -D -m 0755 meshd $(DESTDIR)$(PREFIX)/sbin/meshd
	install -D -m 0755 meshctl $(DESTDIR)$(PREFIX)/bin/meshctl
	install -D -m 0644 packaging/meshd-wg@.service $(DESTDIR)/lib/systemd/system/meshd-wg@.service

clean:
	rm -rf build meshd meshctl

-include $(shell find build -name '*.d' 2>/dev/null)
