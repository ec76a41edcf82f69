/*
 * fuzz_users.c - the users file ("name:HASH[:home[:settings]]" lines).
 * The input is the file. Promises checked: a file that loads gives every
 * account a home that is relative and free of "..", and logins on a file
 * that failed to load find nobody.
 */
#include "fuzz.h"

#include <string.h>

#include "../../ftpd/auth.c"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path;

    if (size > 65536)
        return 0;
    path = fuzz_file(data, size);
    if (auth_load(path) == 0) {
        for (size_t i = 0; i < naccounts; i++) {
            const char *home = accounts[i].settings.home;

            FUZZ_CHECK(home[0] != '/');
            FUZZ_CHECK(strcmp(home, "..") != 0 && strncmp(home, "../", 3) != 0);
            FUZZ_CHECK(strstr(home, "/../") == NULL);
            FUZZ_CHECK(strlen(home) < 3 || strcmp(home + strlen(home) - 3, "/..") != 0);
            FUZZ_CHECK(accounts[i].hash[0] == '$');
        }
        auth_free();
    }
    FUZZ_CHECK(naccounts == 0 && accounts == NULL);
    return 0;
}
