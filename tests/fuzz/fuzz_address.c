/*
 * fuzz_address.c - ss_parse_address, the library's address strings
 * ("host:port", "[v6]:port", "unix:/path", "@abstract", ...). The first
 * byte picks the socket type. A parsed address must fit what *len says and
 * format back to text.
 */
#include "fuzz.h"

#include <sockserv.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage addr;
    socklen_t len = 0;
    char *s;
    char text[256];
    int type;

    if (size < 1 || size > 512)
        return 0;
    type = (data[0] & 1) ? SOCK_DGRAM : SOCK_STREAM;
    s = fuzz_string(data + 1, size - 1);
    /* Host names would go to the resolver: the fuzzer is for the syntax. */
    if (strchr(s, '.') == NULL || strspn(s, "0123456789.:[]%abcdefABCDEF/@unix") == strlen(s)) {
        memset(&addr, 0xa5, sizeof(addr));
        if (ss_parse_address(s, type, &addr, &len) == 0) {
            FUZZ_CHECK(len > 0 && len <= sizeof(addr));
            FUZZ_CHECK(addr.ss_family == AF_INET || addr.ss_family == AF_INET6 ||
                       addr.ss_family == AF_UNIX);
            if (addr.ss_family != AF_UNIX)
                FUZZ_CHECK(ss_format_address((struct sockaddr *)&addr, len, text, sizeof(text)) !=
                           NULL);
        }
    }
    free(s);
    return 0;
}
