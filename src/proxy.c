/*
 * proxy.c - the PROXY protocol (HAProxy's, versions 1 and 2): a load
 * balancer in front of a stream server sends, first on each connection, the
 * address of the client it relays. We read that header right after accept
 * (stream.c calls ss__proxy_accept), before verify_request and the
 * connection limits, so that everything after sees the real client.
 *
 * Only a trusted peer's bytes are ever read as a header: anybody else could
 * claim any address. The read has a deadline and a size bound (107 bytes for
 * a v1 line, 16 + 4096 for a v2 block), and it reads into the request's own
 * read buffer, so that the bytes after the header stay there for the
 * handler's reads.
 *
 * Version 1 is a text line: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n"
 * (TCP6 likewise, or "PROXY UNKNOWN ...\r\n", whose addresses are ignored).
 * Version 2 is a 16-byte block (a 12-byte signature, version and command,
 * family and transport, and a big-endian length) followed by the addresses
 * and optional TLVs, which we skip. The LOCAL command (a proxy's own health
 * check) keeps the connection's addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#define TRUSTED_MAX 1024     /* entries in proxy_trusted */
#define TRUSTED_ENTRY_MAX 64 /* characters in one entry */

typedef struct trusted_net {
    unsigned char family; /* 4 or 6 */
    unsigned char addr[16];
    unsigned prefix; /* bits that must match */
} trusted_net;

struct ss__proxy {
    ss_proxy_mode mode;
    size_t n; /* 0: every peer is trusted */
    trusted_net nets[];
};

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

/* ---- the trusted list --------------------------------------------------- */

/* One entry: an address, optionally in brackets (IPv6), optionally with a
 * /prefix. Returns 0 or -1. */
static int parse_net(const char *s, size_t len, trusted_net *net)
{
    char buf[TRUSTED_ENTRY_MAX + 1];
    if (len == 0 || len > TRUSTED_ENTRY_MAX)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';

    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash != NULL) {
        *slash = '\0';
        const char *p = slash + 1;
        if (*p == '\0' || strlen(p) > 3)
            return -1;
        prefix = 0;
        for (; *p != '\0'; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            prefix = prefix * 10 + (*p - '0');
        }
    }
    char *a = buf;
    size_t alen = strlen(a);
    if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
        a[alen - 1] = '\0';
        a++;
    }
    memset(net, 0, sizeof *net);
    if (inet_pton(AF_INET, a, net->addr) == 1) {
        net->family = 4;
        if (prefix > 32)
            return -1;
        net->prefix = prefix < 0 ? 32 : (unsigned)prefix;
    } else if (inet_pton(AF_INET6, a, net->addr) == 1) {
        net->family = 6;
        if (prefix > 128)
            return -1;
        net->prefix = prefix < 0 ? 128 : (unsigned)prefix;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(net->addr, mapped, sizeof mapped) == 0) {
            /* Peers are compared as IPv4 when mapped: so is the entry. */
            if (net->prefix < 96)
                return -1;
            memmove(net->addr, net->addr + 12, 4);
            memset(net->addr + 4, 0, 12);
            net->family = 4;
            net->prefix -= 96;
        }
    } else {
        return -1;
    }
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

int ss__proxy_init(ss_server *srv)
{
    const char *list = srv->opt.proxy_trusted;
    size_t cap = 0;

    if (srv->opt.proxy_protocol == SS_PROXY_OFF)
        return 0;
    if (srv->opt.type != SS_STREAM || (srv->opt.proxy_protocol != SS_PROXY_OPTIONAL &&
                                       srv->opt.proxy_protocol != SS_PROXY_REQUIRED)) {
        errno = EINVAL;
        return -1;
    }
    if (list != NULL) {
        cap = 1;
        for (const char *c = list; *c != '\0'; c++)
            cap += *c == ',';
    }
    if (cap > TRUSTED_MAX) {
        errno = EINVAL;
        return -1;
    }
    ss__proxy *p = calloc(1, sizeof *p + cap * sizeof p->nets[0]);
    if (p == NULL)
        return -1;
    p->mode = srv->opt.proxy_protocol;
    const char *c = list;
    while (c != NULL && *c != '\0') {
        const char *end = strchr(c, ',');
        if (end == NULL)
            end = c + strlen(c);
        const char *b = c, *e = end;
        while (b < e && is_space(*b))
            b++;
        while (e > b && is_space(e[-1]))
            e--;
        if (b == e) {
            /* An empty entry is allowed only as the whole list. */
            if (*end != '\0' || p->n > 0)
                goto bad;
        } else if (parse_net(b, (size_t)(e - b), &p->nets[p->n++]) < 0) {
            goto bad;
        }
        c = *end == ',' ? end + 1 : end;
        if (*end == ',' && *c == '\0')
            goto bad; /* a trailing comma */
    }
    srv->proxy = p;
    return 0;

bad:
    free(p);
    errno = EINVAL;
    return -1;
}

void ss__proxy_free(ss_server *srv)
{
    free(srv->proxy);
    srv->proxy = NULL;
}

static bool prefix_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool ss__proxy_trusted(const ss__proxy *p, const struct sockaddr *sa, socklen_t len)
{
    unsigned char addr[16];
    unsigned char family;

    if (p->n == 0)
        return true;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        family = 4;
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            memcpy(addr, in6->s6_addr + 12, 4);
            family = 4;
        } else {
            memcpy(addr, in6->s6_addr, 16);
            family = 6;
        }
    } else {
        return false; /* a Unix peer, with a list of IP addresses */
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->nets[i].family == family && prefix_match(p->nets[i].addr, addr, p->nets[i].prefix))
            return true;
    return false;
}

/* ---- the parser ----------------------------------------------------------- */

/* A v1 port: 1 to 5 digits, no leading zero, at most 65535. */
static int parse_port(const char *s, size_t len, unsigned *port)
{
    unsigned v = 0;
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = v;
    return 0;
}

/* The v1 line without its CRLF: "PROXY TCP4 a b p q" or "PROXY UNKNOWN...". */
static int parse_v1_line(const char *line, size_t len, ss__proxy_header *out)
{
    const char *f[6];
    size_t flen[6];
    size_t nf = 0, i = 0;

    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < len; k++)
        if ((unsigned char)line[k] < 0x20 || (unsigned char)line[k] > 0x7e)
            return -1; /* text only: no NUL, CR, LF or tabs inside */
    /* "PROXY UNKNOWN" ignores everything up to the CRLF. */
    if (len >= 13 && memcmp(line, "PROXY UNKNOWN", 13) == 0 && (len == 13 || line[13] == ' '))
        return 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && line[i] != ' ')
            i++;
        if (i == start || nf == 6)
            return -1; /* an empty field (two spaces) or too many */
        f[nf] = line + start;
        flen[nf] = i - start;
        nf++;
        i++; /* past the space, or past the end */
    }
    if (nf != 6)
        return -1;
    int af;
    if (flen[1] == 4 && memcmp(f[1], "TCP4", 4) == 0)
        af = AF_INET;
    else if (flen[1] == 4 && memcmp(f[1], "TCP6", 4) == 0)
        af = AF_INET6;
    else
        return -1;
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    if (flen[2] >= sizeof src || flen[3] >= sizeof dst)
        return -1;
    memcpy(src, f[2], flen[2]);
    src[flen[2]] = '\0';
    memcpy(dst, f[3], flen[3]);
    dst[flen[3]] = '\0';
    unsigned sport, dport;
    if (parse_port(f[4], flen[4], &sport) < 0 || parse_port(f[5], flen[5], &dport) < 0)
        return -1;
    unsigned char dbuf[16];
    if (af == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->src;
        if (inet_pton(AF_INET, src, &in->sin_addr) != 1 || inet_pton(AF_INET, dst, dbuf) != 1)
            return -1;
        in->sin_family = AF_INET;
        in->sin_port = htons((unsigned short)sport);
        out->srclen = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->src;
        if (inet_pton(AF_INET6, src, &in6->sin6_addr) != 1 || inet_pton(AF_INET6, dst, dbuf) != 1)
            return -1;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)sport);
        out->srclen = sizeof *in6;
    }
    out->with_address = true;
    return 0;
}

static ssize_t parse_v1(const unsigned char *buf, size_t len, ss__proxy_header *out)
{
    size_t look = len < SS__PROXY_V1_MAX ? len : SS__PROXY_V1_MAX;
    const unsigned char *lf = memchr(buf, '\n', look);
    if (lf == NULL)
        return len >= SS__PROXY_V1_MAX ? SS__PROXY_BAD : 0;
    size_t end = (size_t)(lf - buf); /* the LF's index */
    if (end < 1 || buf[end - 1] != '\r')
        return SS__PROXY_BAD;
    if (parse_v1_line((const char *)buf, end - 1, out) < 0)
        return SS__PROXY_BAD;
    return (ssize_t)(end + 1);
}

static ssize_t parse_v2(const unsigned char *buf, size_t len, ss__proxy_header *out)
{
    if (len < 16)
        return 0;
    unsigned version = buf[12] >> 4, command = buf[12] & 0x0fu;
    unsigned family = buf[13] >> 4, transport = buf[13] & 0x0fu;
    size_t body = ((size_t)buf[14] << 8) | buf[15];
    size_t total = 16 + body;

    if (version != 2 || command > 1 || family > 3 || transport > 2)
        return SS__PROXY_BAD;
    if (total > SS__PROXY_V2_MAX)
        return SS__PROXY_BAD;
    /* The address block's length is checked before waiting for it all. */
    if (command == 1 &&
        ((family == 1 && body < 12) || (family == 2 && body < 36) || (family == 3 && body < 216)))
        return SS__PROXY_BAD;
    if (len < total)
        return 0;
    memset(out, 0, sizeof *out);
    /* LOCAL (a health check), an unspecified family or transport, and Unix
     * addresses keep the connection's own endpoints. */
    if (command == 0 || transport != 1 || family == 0 || family == 3)
        return (ssize_t)total;
    const unsigned char *a = buf + 16;
    if (family == 1) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->src;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, a, 4);
        memcpy(&in->sin_port, a + 8, 2); /* both big-endian */
        out->srclen = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->src;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, a, 16);
        memcpy(&in6->sin6_port, a + 32, 2);
        out->srclen = sizeof *in6;
    }
    out->with_address = true;
    return (ssize_t)total;
}

ssize_t ss__proxy_parse(const unsigned char *buf, size_t len, ss__proxy_header *out)
{
    if (len == 0)
        return 0;
    size_t n1 = len < sizeof v1_sig - 1 ? len : sizeof v1_sig - 1;
    if (memcmp(buf, v1_sig, n1) == 0)
        return n1 < sizeof v1_sig - 1 ? 0 : parse_v1(buf, len, out);
    size_t n2 = len < sizeof v2_sig ? len : sizeof v2_sig;
    if (memcmp(buf, v2_sig, n2) == 0)
        return n2 < sizeof v2_sig ? 0 : parse_v2(buf, len, out);
    return SS__PROXY_NONE;
}

/* ---- reading it off a connection ----------------------------------------- */

static int refuse(ss_server *srv, ss_request *req, int err)
{
    if (err != 0)
        ss__handle_error(srv, req, err);
    return -1;
}

int ss__proxy_accept(ss_server *srv, ss_request *req)
{
    const ss__proxy *p = srv->proxy;
    ss__proxy_header h;

    req->proxy_addrlen = 0;
    if (p == NULL)
        return 0;
    if (!ss__proxy_trusted(p, (const struct sockaddr *)&req->addr, req->addrlen))
        return p->mode == SS_PROXY_OPTIONAL ? 0 : refuse(srv, req, EACCES);
    req->in_pos = 0; /* a fresh connection: nothing read yet */
    req->in_len = 0;
    if (req->in == NULL) {
        req->in = malloc(SS__RBUF_SIZE);
        if (req->in == NULL)
            return refuse(srv, req, ENOMEM);
        req->in_cap = SS__RBUF_SIZE;
    }
    double timeout = SS__PROXY_TIMEOUT;
    if (srv->opt.request_timeout > 0 && srv->opt.request_timeout < timeout)
        timeout = srv->opt.request_timeout;
    double deadline = ss__now() + timeout;

    /* Each turn either adds at least one byte to a bounded buffer or
     * waits towards the deadline: the loop ends. */
    ssize_t hlen;
    for (;;) {
        hlen = ss__proxy_parse((const unsigned char *)req->in, req->in_len, &h);
        if (hlen > 0)
            break;
        if (hlen == SS__PROXY_NONE)
            return p->mode == SS_PROXY_OPTIONAL ? 0 : refuse(srv, req, EPROTO);
        if (hlen == SS__PROXY_BAD || req->in_len == req->in_cap)
            return refuse(srv, req, EPROTO);
        /* Checked after every receive too, so that a peer sending a byte
         * at a time cannot stretch the wait. */
        int left = ss__ms_until(deadline);
        if (left == 0)
            return refuse(srv, req, ETIMEDOUT);
        int fds[2] = {req->fd, srv->wakefd};
        bool ready[2];
        int rc = ss__poll(fds, ready, 2, left);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return refuse(srv, req, errno);
        }
        if (rc > 0 && ready[1])
            return -1; /* the server stops: this request never starts */
        if (rc == 0 || !ready[0])
            continue;
        ssize_t n = recv(req->fd, req->in + req->in_len, req->in_cap - req->in_len, MSG_DONTWAIT);
        if (n == 0)
            return -1; /* closed before a header: a plain TCP health check */
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            /* A reset before a header is a health check too. */
            return refuse(srv, req, errno == ECONNRESET ? 0 : errno);
        }
        req->in_len += (size_t)n;
    }
    req->in_pos = (size_t)hlen;
    if (h.with_address) {
        req->proxy_addr = req->addr;
        req->proxy_addrlen = req->addrlen;
        memset(&req->addr, 0, sizeof req->addr);
        memcpy(&req->addr, &h.src, h.srclen);
        req->addrlen = h.srclen;
        req->peer[0] = '\0'; /* the text form is made again, for the client */
    }
    return 0;
}

const struct sockaddr *ss_request_proxy_address(const ss_request *req, socklen_t *len)
{
    if (req == NULL || req->proxy_addrlen == 0) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = req->proxy_addrlen;
    return (const struct sockaddr *)&req->proxy_addr;
}
