/*
 * replay.c - runs a fuzz target over files without libFuzzer, so every
 * build (gcc, the sanitizers) checks the seed corpus and the inputs that
 * once crashed. With no arguments it replays the directories compiled in
 * as FUZZ_CORPUS and FUZZ_REGRESSIONS; otherwise the files and folders
 * given. Exits 0 when every input ran.
 */
#include "fuzz.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path, unsigned *count)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t size = 0, cap = 0;
    size_t n;

    if (f == NULL) {
        perror(path);
        return -1;
    }
    do {
        if (size == cap) {
            cap = cap == 0 ? 4096 : cap * 2;
            data = realloc(data, cap);
            if (data == NULL)
                abort();
        }
        n = fread(data + size, 1, cap - size, f);
        size += n;
    } while (n > 0);
    fclose(f);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    (*count)++;
    return 0;
}

static int run_path(const char *path, unsigned *count)
{
    struct stat st;
    struct dirent **names;
    int n, rc = 0;

    if (stat(path, &st) < 0)
        return 0; /* a target with no regressions yet has no folder */
    if (!S_ISDIR(st.st_mode))
        return run_file(path, count);
    n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        perror(path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char sub[4096];

        if (names[i]->d_name[0] != '.' &&
            snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name) < (int)sizeof(sub) &&
            run_path(sub, count) < 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int rc = 0;

    LLVMFuzzerInitialize(&argc, &argv);
    if (argc < 2) {
        rc |= run_path(FUZZ_CORPUS, &count);
        rc |= run_path(FUZZ_REGRESSIONS, &count);
    }
    for (int i = 1; i < argc; i++)
        rc |= run_path(argv[i], &count);
    printf("%s: %u inputs replayed\n", argv[0], count);
    return rc == 0 && count > 0 ? 0 : 1;
}
