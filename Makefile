# sockserv - top-level GNU Makefile
#   make                 library (static + shared), examples, sockserv-ftpd
#   make test            all tests (installs missing Debian packages first)
#   make test SANITIZE=address|thread   the same, under ASan+UBSan or TSan
#   make run             start sockserv-ftpd on 127.0.0.1:2121 (sample folder)
#   make run-udp         start udp-upper-server on 127.0.0.1:8003
#   make bench           side-by-side benchmarks (QUICK=1: one short round)
#   make scale-test      10,000 concurrent connections in threading mode
#   make lint            clang-format (check only) and clang-tidy
#   make fault           failure injection over the example servers and sockserv-ftpd
#   make fuzz [FUZZ_SECONDS=60]   libFuzzer over every parser of untrusted input
#   make install PREFIX=/usr/local [DESTDIR=...]   library, examples, sockserv-ftpd
#                        (sbin), man pages, example config, systemd unit

CC       ?= cc
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
BINDIR   ?= $(PREFIX)/bin
SBINDIR  ?= $(PREFIX)/sbin
SYSCONFDIR ?= $(PREFIX)/etc
UNITDIR  ?= $(PREFIX)/lib/systemd/system
MANDIR   ?= $(PREFIX)/share/man
SANITIZE ?=
QUICK    ?=

VERSION  := 0.1.0
SOMAJOR  := 0

ifeq ($(SANITIZE),)
BUILD    ?= build
OPT      ?= -O2
else
BUILD    ?= build/$(SANITIZE)
OPT      ?= -O1
endif

WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter
HARDEN   := -fstack-protector-strong -D_FORTIFY_SOURCE=2
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) -pthread -fPIC $(CFLAGS) -Iinclude
ALL_LDFLAGS := -pthread -Wl,-z,relro,-z,now $(LDFLAGS)

ifeq ($(SANITIZE),address)
ALL_CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ALL_LDFLAGS += -fsanitize=address,undefined
else ifeq ($(SANITIZE),thread)
ALL_CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=thread
else ifneq ($(SANITIZE),)
$(error SANITIZE must be address or thread)
endif

LIB_SRC  := $(wildcard src/*.c)
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/src/%.o)
LIB_A    := $(BUILD)/libsockserv.a
LIB_SO   := $(BUILD)/libsockserv.so.$(VERSION)

EX_COMMON_SRC := $(wildcard examples/common/*.c)
EX_COMMON_OBJ := $(EX_COMMON_SRC:examples/common/%.c=$(BUILD)/obj/examples/common/%.o)
EX_SRC   := $(wildcard examples/*.c)
EX_BIN   := $(patsubst examples/%.c,$(BUILD)/bin/%,$(subst _,-,$(EX_SRC)))

FTPD_SRC := $(wildcard ftpd/*.c)
FTPD_OBJ := $(FTPD_SRC:ftpd/%.c=$(BUILD)/obj/ftpd/%.o)
FTPD_BIN := $(if $(FTPD_SRC),$(BUILD)/bin/sockserv-ftpd)
FTPD_LIBS := -lcrypt -lssl -lcrypto

BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bin/%,$(subst _,-,$(BENCH_SRC)))

TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_HELPER_SRC := $(filter-out $(TEST_SRC),$(wildcard tests/unit/*.c))
.DEFAULT_GOAL := all
include tests/fuzz/fuzz.mk
TEST_HELPER_OBJ := $(TEST_HELPER_SRC:tests/unit/%.c=$(BUILD)/obj/tests/%.o)

# The failure-injection interposer (tests/fault), for the plain build only:
# a sanitizer runtime replaces malloc itself and must come first.
FAULT_LIB := $(if $(SANITIZE),,$(BUILD)/tests/libfaultinject.so)

.PHONY: all lib examples ftpd bench-bin test unit e2e run run-udp bench install uninstall clean deps check-banned scale-test \
        lint fault
.SECONDARY:
.SECONDEXPANSION:

all: lib examples ftpd

lib: $(LIB_A) $(LIB_SO) $(BUILD)/libsockserv.so $(BUILD)/sockserv.pc
examples: $(EX_BIN)
ftpd: $(FTPD_BIN)
bench-bin: $(BENCH_BIN)

$(BUILD)/obj/src/%.o: src/%.c include/sockserv.h src/internal.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -Isrc -c -o $@ $<

$(LIB_A): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libsockserv.so.$(SOMAJOR) $(ALL_LDFLAGS) -o $@ $^

$(BUILD)/libsockserv.so: $(LIB_SO)
	ln -sf libsockserv.so.$(VERSION) $(BUILD)/libsockserv.so.$(SOMAJOR)
	ln -sf libsockserv.so.$(VERSION) $@

$(BUILD)/sockserv.pc: sockserv.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(BUILD)/obj/examples/%.o: examples/%.c include/sockserv.h $(wildcard examples/common/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Iexamples/common -c -o $@ $<

$(BUILD)/bin/%: $(BUILD)/obj/examples/$$(subst -,_,%).o $(EX_COMMON_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -pie -o $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/bench/$$(subst -,_,%).o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -pie -o $@ $^

$(BUILD)/obj/bench/%.o: bench/%.c include/sockserv.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/ftpd/%.o: ftpd/%.c include/sockserv.h $(wildcard ftpd/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/bin/sockserv-ftpd: $(FTPD_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -pie -o $@ $^ $(FTPD_LIBS)

$(BUILD)/obj/tests/%.o: tests/unit/%.c include/sockserv.h $(wildcard tests/unit/*.h) src/internal.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Isrc -Itests/unit -c -o $@ $<

# The ftpd unit tests include the ftpd sources they test.
FTPD_TEST_OBJ := $(patsubst tests/unit/%.c,$(BUILD)/obj/tests/%.o,$(wildcard tests/unit/test_ftpd_*.c))
$(FTPD_TEST_OBJ): $(wildcard ftpd/*.c ftpd/*.h)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_HELPER_OBJ) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcmocka $(FTPD_LIBS)

$(BUILD)/tests/libfaultinject.so: tests/fault/faultinject.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fPIC -shared -fvisibility=hidden -o $@ $< -ldl

deps:
	@sh scripts/deps.sh

check-banned:
	@sh scripts/check-banned.sh

lint:
	@sh scripts/deps.sh lint
	@sh scripts/lint.sh

test: deps check-banned all $(TEST_BIN) bench-bin $(FAULT_LIB)
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) sh scripts/run-tests.sh $(TEST_BIN)

unit: all $(TEST_BIN)
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) UNIT_ONLY=1 sh scripts/run-tests.sh $(TEST_BIN)

e2e: all
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) E2E_ONLY=1 sh scripts/run-tests.sh

# 10,000 concurrent connections in threading mode (tests/e2e/test_10k_threading.py).
scale-test: all bench-bin
	@SOCKSERV_SCALE=1 SOCKSERV_BIN=$$(cd $(BUILD)/bin && pwd) SANITIZE=$(SANITIZE) \
	    python3 tests/e2e/test_10k_threading.py

fault: all $(FAULT_LIB)
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) FAULT_ONLY=1 sh scripts/run-tests.sh

run: deps all
	@sh scripts/run.sh $(BUILD)

run-udp: deps all
	@sh scripts/run.sh $(BUILD) udp

bench: deps all bench-bin
	@BUILD=$(BUILD) QUICK=$(QUICK) sh bench/run.sh

install: lib examples ftpd
	install -d $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man8
	install -m 644 include/sockserv.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf libsockserv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsockserv.so.$(SOMAJOR)
	ln -sf libsockserv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsockserv.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCDIR@|$(INCDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' sockserv.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/sockserv.pc
	for f in docs/*.3; do [ -f "$$f" ] && install -m 644 "$$f" $(DESTDIR)$(MANDIR)/man3/ || true; done
	for f in docs/*.8; do [ -f "$$f" ] && install -m 644 "$$f" $(DESTDIR)$(MANDIR)/man8/ || true; done
	# sockserv-ftpd: a system daemon (sbin), its example settings, its unit
	# with the paths of this PREFIX.
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR) $(DESTDIR)$(UNITDIR)
	install -m 755 $(FTPD_BIN) $(DESTDIR)$(SBINDIR)/
	install -m 644 docs/ftpd.conf.example $(DESTDIR)$(SYSCONFDIR)/sockserv-ftpd.conf.example
	sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/usr/local/etc/|$(SYSCONFDIR)/|g' \
	    docs/sockserv-ftpd.service > $(DESTDIR)$(UNITDIR)/sockserv-ftpd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/sockserv-ftpd.service

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/sockserv.h $(DESTDIR)$(LIBDIR)/libsockserv.a \
	    $(DESTDIR)$(LIBDIR)/libsockserv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsockserv.so.$(SOMAJOR) \
	    $(DESTDIR)$(LIBDIR)/libsockserv.so $(DESTDIR)$(LIBDIR)/pkgconfig/sockserv.pc \
	    $(DESTDIR)$(SBINDIR)/sockserv-ftpd $(DESTDIR)$(SYSCONFDIR)/sockserv-ftpd.conf.example \
	    $(DESTDIR)$(UNITDIR)/sockserv-ftpd.service
	for f in docs/*.3; do rm -f $(DESTDIR)$(MANDIR)/man3/$${f#docs/}; done
	for f in docs/*.8; do rm -f $(DESTDIR)$(MANDIR)/man8/$${f#docs/}; done

clean:
	rm -rf build
