/*
 * fuzz_listargs.c - the options clients put before a path in LIST, NLST
 * and STAT ("-la dir"). Promise checked: the path returned is NULL or a
 * suffix of the argument, so nothing outside the input is ever read.
 */
#include "fuzz.h"

#include <string.h>

#include "../../ftpd/cmd.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    listing_opts o;
    const char *rest;
    char *s;

    if (size > 8192)
        return 0;
    s = fuzz_string(data, size);
    memset(&o, 0, sizeof(o));
    rest = cmd_list_args(s, &o);
    if (rest != NULL) {
        FUZZ_CHECK(rest >= s && rest <= s + size);
        FUZZ_CHECK(*rest != '\0');
    }
    free(s);
    return 0;
}
