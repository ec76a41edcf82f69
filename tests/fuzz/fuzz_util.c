/*
 * fuzz_util.c - helpers shared by the fuzz targets (see fuzz.h).
 */
#include "fuzz.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

char *fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

const char *fuzz_file(const uint8_t *data, size_t size)
{
    static char dir[64];
    static char path[96];

    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/sockserv-fuzz-XXXXXX");
        if (mkdtemp(dir) == NULL)
            abort();
        snprintf(path, sizeof(path), "%s/input", dir);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0)
        abort();
    while (size > 0) {
        ssize_t n = write(fd, data, size);

        if (n <= 0)
            abort();
        data += n;
        size -= (size_t)n;
    }
    close(fd);
    return path;
}

void fuzz_quiet(void)
{
    /* The stream, not the descriptor: the sanitizers and libFuzzer write
     * their reports to descriptor 2, and those must still be seen. */
    FILE *null = fopen("/dev/null", "w");

    if (null != NULL)
        stderr = null;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    static gai_fn real;
    struct addrinfo h;

    if (real == NULL)
        real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (real == NULL)
        return EAI_FAIL;
    if (hints != NULL)
        h = *hints;
    else
        memset(&h, 0, sizeof(h));
    h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    return real(node, service, &h, res);
}
