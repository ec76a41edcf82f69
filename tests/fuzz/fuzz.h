/*
 * fuzz.h - what every fuzz target shares: the libFuzzer entry points, and
 * a check that aborts (so the fuzzer reports a crash) when a parser breaks
 * a promise its header makes.
 */
#ifndef SOCKSERV_FUZZ_H
#define SOCKSERV_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken promise is a crash, whatever the build's NDEBUG says. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            dprintf(2, "%s:%d: broken: %s\n", __FILE__, __LINE__, #cond);                          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* data as a NUL-terminated string in a buffer of its own (free it), so a
 * read past the input's end is caught. */
char *fuzz_string(const uint8_t *data, size_t size);

/* Write data to a fresh file under a private directory; returns its path
 * (static storage, the same file each call). */
const char *fuzz_file(const uint8_t *data, size_t size);

/* Every target links fuzz_util.c, which puts its own getaddrinfo in front
 * of the C library's: numeric hosts only, so no input makes a fuzzer ask a
 * name server anything. */

/* Point the stderr stream at /dev/null: parsers that print one line per
 * bad input would otherwise drown the fuzzer's own output. */
void fuzz_quiet(void);

#endif
