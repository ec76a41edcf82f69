# tests/fuzz/fuzz.mk - fuzz targets for every parser of untrusted input
# (included by the top-level Makefile).
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_PARALLEL=1] [FUZZ_TARGETS="control path"]
#       builds each target with clang's libFuzzer under ASan+UBSan (in
#       build/fuzz) and runs it for FUZZ_SECONDS over its seed corpus
#       (tests/fuzz/corpus/NAME) and the inputs that once crashed
#       (tests/fuzz/regressions/NAME); fails on the first crash.
#   make test (any SANITIZE) replays both folders through every target
#       built without libFuzzer ($(BUILD)/fuzz-replay/fuzz_NAME), so an
#       input that once crashed stays a regression test.

FUZZ_ALL      := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_util.c,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_TARGETS  ?= $(FUZZ_ALL)
FUZZ_SECONDS  ?= 60
FUZZ_PARALLEL ?= 1
FUZZ_CC       ?= clang
FUZZ_BUILD    := build/fuzz
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   := -std=c11 -D_GNU_SOURCE -g -O1 -pthread $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                 -Iinclude -Isrc -Itests/fuzz
FUZZ_FTPD_SRC := $(filter-out ftpd/main.c,$(FTPD_SRC))

# The fuzzer build: the library and the server's modules as archives, so a
# target that includes a module's source (to see its statics) replaces it.
FUZZ_LIB_OBJ  := $(LIB_SRC:src/%.c=$(FUZZ_BUILD)/obj/src/%.o)
FUZZ_FTPD_OBJ := $(FUZZ_FTPD_SRC:ftpd/%.c=$(FUZZ_BUILD)/obj/ftpd/%.o)
FUZZ_BIN      := $(FUZZ_ALL:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/obj/src/%.o: src/%.c include/sockserv.h src/internal.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/obj/ftpd/%.o: ftpd/%.c $(wildcard ftpd/*.h) include/sockserv.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/libsockserv.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/libftpd.a: $(FUZZ_FTPD_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.c tests/fuzz/fuzz.h \
                      $(FUZZ_BUILD)/libftpd.a $(FUZZ_BUILD)/libsockserv.a $(wildcard ftpd/*.c ftpd/*.h)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< tests/fuzz/fuzz_util.c \
	    $(FUZZ_BUILD)/libftpd.a $(FUZZ_BUILD)/libsockserv.a $(FTPD_LIBS) -ldl

fuzz-bin: $(FUZZ_BIN)

fuzz:
	@sh scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-bin
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_PARALLEL=$(FUZZ_PARALLEL) \
	    sh tests/fuzz/run-fuzz.sh $(FUZZ_TARGETS)

# The replay build: the same targets with tests/fuzz/replay.c as main,
# in the build of the moment (plain, ASan, TSan), run by make test.
FUZZ_REPLAY_BIN := $(FUZZ_ALL:%=$(BUILD)/fuzz-replay/fuzz_%)
FUZZ_REPLAY_FTPD_OBJ := $(FUZZ_FTPD_SRC:ftpd/%.c=$(BUILD)/obj/ftpd/%.o)

$(BUILD)/fuzz-replay/libftpd.a: $(FUZZ_REPLAY_FTPD_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz_util.c \
                             tests/fuzz/fuzz.h $(BUILD)/fuzz-replay/libftpd.a $(LIB_A) \
                             $(wildcard ftpd/*.c ftpd/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Isrc -Itests/fuzz -DFUZZ_CORPUS='"tests/fuzz/corpus/$*"' \
	    -DFUZZ_REGRESSIONS='"tests/fuzz/regressions/$*"' $(ALL_LDFLAGS) -o $@ $< \
	    tests/fuzz/replay.c tests/fuzz/fuzz_util.c $(BUILD)/fuzz-replay/libftpd.a $(LIB_A) \
	    $(FTPD_LIBS) -ldl

TEST_BIN += $(FUZZ_REPLAY_BIN)

.PHONY: fuzz fuzz-bin
