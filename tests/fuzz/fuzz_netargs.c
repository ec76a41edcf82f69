/*
 * fuzz_netargs.c - the arguments of PORT, EPRT and EPSV (RFC 959, RFC
 * 2428) as sockserv-ftpd parses them, with what the parsers promise: a
 * PORT address is IPv4, an EPRT address is of the family it names with a
 * length to match, and an accepted port is at most 65535.
 */
#include "fuzz.h"

#include <netinet/in.h>
#include <string.h>

#include "../../ftpd/netaddr.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char *s;

    if (size > 4096)
        return 0;
    s = fuzz_string(data, size);
    if (netaddr_parse_port(s, &sin) == 0) {
        FUZZ_CHECK(sin.sin_family == AF_INET);
        FUZZ_CHECK(strlen(s) >= 11); /* at least "1,2,3,4,5,6" */
    }
    memset(&ss, 0, sizeof(ss));
    if (netaddr_parse_eprt(s, &ss, &len) == NETADDR_EPRT_OK) {
        FUZZ_CHECK((ss.ss_family == AF_INET && len == sizeof(struct sockaddr_in)) ||
                   (ss.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6)));
        FUZZ_CHECK(netaddr_port(&ss) <= 65535);
    }
    switch (netaddr_parse_epsv(s)) {
    case NETADDR_EPSV_ANY:
        FUZZ_CHECK(s[0] == '\0');
        break;
    default:
        break;
    }
    free(s);
    return 0;
}
