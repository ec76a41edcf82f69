/*
 * fuzz_proxy.c - the PROXY protocol (v1 and v2 headers) as a stream
 * server reads it off a connection, and the trusted-proxy list of the
 * options. The first byte picks: even, the rest is the start of a
 * connection; odd, the rest is a trusted list. Promises checked: a
 * header's length lies within the bytes given and does not change as
 * more bytes arrive; any shorter prefix of a header asks for more or is
 * already bad, never "no header"; a header that names a client gives an
 * IPv4 or IPv6 address of the matching length; the list either loads or
 * fails with EINVAL, and a loaded list answers for any address.
 */
#include "fuzz.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_header(const uint8_t *buf, size_t len)
{
    ss__proxy_header h;
    ssize_t n;

    memset(&h, 0, sizeof(h));
    n = ss__proxy_parse(buf, len, &h);
    FUZZ_CHECK(n == SS__PROXY_NONE || n == SS__PROXY_BAD || (n >= 0 && (size_t)n <= len));
    if (n > 0) {
        if (h.with_address)
            FUZZ_CHECK((h.src.ss_family == AF_INET && h.srclen == sizeof(struct sockaddr_in)) ||
                       (h.src.ss_family == AF_INET6 && h.srclen == sizeof(struct sockaddr_in6)));
        /* The same header with every byte that may follow it. */
        for (size_t more = (size_t)n; more <= len; more += 1 + (len - more) / 4) {
            ss__proxy_header h2;

            FUZZ_CHECK(ss__proxy_parse(buf, more, &h2) == n);
        }
        /* Its prefixes: never "no header at all". */
        for (size_t k = 1; k < (size_t)n; k += 1 + (size_t)n / 16) {
            ss__proxy_header h3;
            ssize_t r = ss__proxy_parse(buf, k, &h3);

            FUZZ_CHECK(r == 0 || r == SS__PROXY_BAD);
        }
    }
}

static void check_list(const uint8_t *data, size_t size)
{
    static ss_server srv; /* only the options are read */
    char *list = fuzz_string(data, size);
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000005)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};

    memset(&srv, 0, sizeof(srv));
    srv.opt.type = SS_STREAM;
    srv.opt.proxy_protocol = SS_PROXY_REQUIRED;
    srv.opt.proxy_trusted = list;
    errno = 0;
    if (ss__proxy_init(&srv) == 0) {
        FUZZ_CHECK(srv.proxy != NULL);
        (void)ss__proxy_trusted(srv.proxy, (struct sockaddr *)&a4, sizeof(a4));
        (void)ss__proxy_trusted(srv.proxy, (struct sockaddr *)&a6, sizeof(a6));
        ss__proxy_free(&srv);
    } else {
        FUZZ_CHECK(errno == EINVAL || errno == ENOMEM);
    }
    free(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;

    if (size < 1 || size > 8192)
        return 0;
    /* A buffer of exactly the input's size, so a read past it is caught. */
    copy = malloc(size - 1 > 0 ? size - 1 : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, data + 1, size - 1);
    if ((data[0] & 1) == 0)
        check_header(copy, size - 1);
    else
        check_list(data + 1, size - 1);
    free(copy);
    return 0;
}
