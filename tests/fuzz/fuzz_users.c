/*
 * fuzz_users.c - the users file ("name:HASH[:home[:settings]]" lines).
 * The input is the file. Promises checked: a file that loads gives every
 * account a home that is relative and free of "..", and a crypt hash; and
 * after auth_free no account is left.
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
    if (auth_load(path) == 0 && current != NULL) {
        for (size_t i = 0; i < current->naccounts; i++) {
            const char *home = current->accounts[i].settings.home;

            FUZZ_CHECK(home[0] != '/');
            FUZZ_CHECK(strcmp(home, "..") != 0 && strncmp(home, "../", 3) != 0);
            FUZZ_CHECK(strstr(home, "/../") == NULL);
            FUZZ_CHECK(strlen(home) < 3 || strcmp(home + strlen(home) - 3, "/..") != 0);
            FUZZ_CHECK(current->accounts[i].hash[0] == '$');
        }
    }
    auth_free();
    FUZZ_CHECK(current == NULL && auth_count() == 0);
    return 0;
}
