/*
 * fuzz_config.c - sockserv-ftpd's settings: the config file (-c FILE,
 * "key = value" lines) when the first input byte is even, else a command
 * line (the rest split at newlines into arguments). Promises checked for
 * settings that are accepted: the root is an absolute path, the passive
 * range is ordered, per-address limits do not exceed the total.
 */
#include "fuzz.h"

#include <string.h>

#include "../../ftpd/config.h"

#define ARGS_MAX 32

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ftpd_config c;
    char *args[ARGS_MAX + 3];
    char *text;
    int argc = 0, rc;

    if (size < 1 || size > 16384)
        return 0;
    text = fuzz_string(data + 1, size - 1);
    args[argc++] = "sockserv-ftpd";
    if ((data[0] & 1) == 0) {
        args[argc++] = "-c";
        args[argc++] = (char *)fuzz_file(data + 1, size - 1);
    } else {
        for (char *p = text; p != NULL && argc < ARGS_MAX;) {
            char *nl = strchr(p, '\n');

            if (nl != NULL)
                *nl++ = '\0';
            /* --help and --version print to stdout: not what is fuzzed. */
            if (strcmp(p, "--help") != 0 && strcmp(p, "-h") != 0 && strcmp(p, "--version") != 0)
                args[argc++] = p;
            p = nl;
        }
    }
    args[argc] = NULL;
    rc = config_parse_args(&c, argc, args);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FUZZ_CHECK(c.root[0] == '/');
        FUZZ_CHECK(c.pasv_lo <= c.pasv_hi);
        FUZZ_CHECK(c.max_per_ip <= c.max_clients);
        FUZZ_CHECK(memchr(c.listen, '\0', sizeof(c.listen)) != NULL);
    }
    free(text);
    return 0;
}
