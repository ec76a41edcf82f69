/*
 * limits.c - connection accounting: max_connections and max_per_peer.
 *
 * The serving thread counts a request in after verify_request and before the
 * mode runs it (ss__limits_admit); the request's end gives the slot back
 * (ss__limits_leave, from whichever thread ends it), or, in forking mode,
 * the parent when it reaps the child (ss__limits_release). One mutex guards
 * a total and a small hash table of per-peer counts; a peer's entry lives
 * while it has requests running, so the table never holds more entries than
 * requests run. A server with neither limit has no table and pays nothing.
 *
 * Peers choose their addresses, so the table is keyed with SipHash under a
 * random key: nobody can line up addresses that all land in one bucket.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

#define LIMITS_MIN_BUCKETS 16

typedef struct peer_entry {
    ss__peer_key key;
    unsigned count;
    struct peer_entry *next;
} peer_entry;

struct ss__limits {
    pthread_mutex_t mu;
    unsigned max_total;
    unsigned max_peer;
    unsigned prefix6;
    unsigned total;
    peer_entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t nentries;
    uint64_t k0, k1; /* hash key */
};

/* ---- keys ---------------------------------------------------------------- */

int ss__peer_key_of(const struct sockaddr *sa, socklen_t len, unsigned prefix6, ss__peer_key *key)
{
    memset(key, 0, sizeof *key);
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key->family = 4;
        memcpy(key->addr, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            /* A dual-stack socket's IPv4 client is the same peer as on an
             * IPv4 socket. */
            key->family = 4;
            memcpy(key->addr, &in6->sin6_addr.s6_addr[12], 4);
            return 0;
        }
        key->family = 6;
        memcpy(key->addr, &in6->sin6_addr, 16);
        unsigned bits = prefix6 > 128 ? 128 : prefix6;
        for (unsigned i = bits / 8; i < 16; i++) {
            unsigned keep = i == bits / 8 ? bits % 8 : 0;
            key->addr[i] &= (unsigned char)(0xffu << (8 - keep));
        }
        return 0;
    }
    return -1;
}

static bool key_equal(const ss__peer_key *a, const ss__peer_key *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* ---- SipHash-2-4 over a key (Aumasson and Bernstein) --------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash(const ss__limits *l, const unsigned char *in, size_t n)
{
    uint64_t v0 = l->k0 ^ 0x736f6d6570736575ULL, v1 = l->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = l->k0 ^ 0x6c7967656e657261ULL, v3 = l->k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)n << 56, m;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        m = load64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < n; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static size_t bucket_of(const ss__limits *l, const ss__peer_key *key)
{
    unsigned char buf[17];
    buf[0] = key->family;
    memcpy(buf + 1, key->addr, 16);
    return (size_t)siphash(l, buf, sizeof buf) & (l->nbuckets - 1);
}

static void random_key(ss__limits *l)
{
    uint64_t k[2];
    if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        /* No entropy yet (early boot): the clock and an address are still
         * unknown to a remote peer. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)l;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[1] = (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ULL ^ (uint64_t)ts.tv_nsec;
    }
    l->k0 = k[0];
    l->k1 = k[1];
}

/* ---- the table (l->mu held) ----------------------------------------------- */

static peer_entry *find(const ss__limits *l, const ss__peer_key *key, peer_entry ***link)
{
    peer_entry **pp = &l->buckets[bucket_of(l, key)];
    while (*pp != NULL && !key_equal(&(*pp)->key, key))
        pp = &(*pp)->next;
    if (link != NULL)
        *link = pp;
    return *pp;
}

/* Double the buckets when there are more entries than buckets. A failed
 * allocation only leaves the chains longer. */
static void grow(ss__limits *l)
{
    size_t n = l->nbuckets * 2;
    peer_entry **nb = calloc(n, sizeof(peer_entry *));
    if (nb == NULL)
        return;
    peer_entry **old = l->buckets;
    size_t oldn = l->nbuckets;
    l->buckets = nb;
    l->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        peer_entry *e = old[i];
        while (e != NULL) {
            peer_entry *next = e->next;
            size_t b = bucket_of(l, &e->key);
            e->next = nb[b];
            nb[b] = e;
            e = next;
        }
    }
    free(old);
}

static void drop_one(ss__limits *l, const ss__peer_key *key)
{
    if (l->total > 0)
        l->total--;
    if (key->family == 0)
        return;
    peer_entry **link;
    peer_entry *e = find(l, key, &link);
    if (e == NULL)
        return;
    if (--e->count == 0) {
        *link = e->next;
        l->nentries--;
        free(e);
    }
}

/* ---- the module's interface ----------------------------------------------- */

int ss__limits_init(ss_server *srv)
{
    if (srv->opt.max_connections == 0 && srv->opt.max_per_peer == 0)
        return 0;
    ss__limits *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -1;
    l->buckets = calloc(LIMITS_MIN_BUCKETS, sizeof(peer_entry *));
    if (l->buckets == NULL) {
        free(l);
        errno = ENOMEM;
        return -1;
    }
    l->nbuckets = LIMITS_MIN_BUCKETS;
    l->max_total = srv->opt.max_connections;
    l->max_peer = srv->opt.max_per_peer;
    l->prefix6 = srv->opt.peer_prefix6;
    random_key(l);
    pthread_mutex_init(&l->mu, NULL);
    srv->limits = l;
    return 0;
}

void ss__limits_free(ss_server *srv)
{
    ss__limits *l = srv->limits;
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        peer_entry *e = l->buckets[i];
        while (e != NULL) {
            peer_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(l->buckets);
    pthread_mutex_destroy(&l->mu);
    free(l);
    srv->limits = NULL;
}

int ss__limits_admit(ss_server *srv, ss_request *req)
{
    ss__limits *l = srv->limits;
    peer_entry *e = NULL;
    ss_reject_reason reason = SS_REJECT_NONE;

    req->reject_reason = SS_REJECT_NONE;
    if (ss__peer_key_of((const struct sockaddr *)&req->addr, req->addrlen, l->prefix6, &req->key) <
        0)
        req->key.family = 0; /* Unix peers: only the total counts */
    pthread_mutex_lock(&l->mu);
    if (l->max_total > 0 && l->total >= l->max_total) {
        reason = SS_REJECT_MAX_CONNECTIONS;
        goto out;
    }
    if (req->key.family != 0) {
        e = find(l, &req->key, NULL);
        if (e != NULL && l->max_peer > 0 && e->count >= l->max_peer) {
            reason = SS_REJECT_MAX_PER_PEER;
            goto out;
        }
        if (e == NULL) {
            e = calloc(1, sizeof *e);
            if (e == NULL) {
                pthread_mutex_unlock(&l->mu);
                errno = ENOMEM;
                return -1;
            }
            e->key = req->key;
            size_t b = bucket_of(l, &e->key);
            e->next = l->buckets[b];
            l->buckets[b] = e;
            if (++l->nentries > l->nbuckets)
                grow(l);
        }
        e->count++;
    }
    l->total++;
    req->counted = true;
out:
    pthread_mutex_unlock(&l->mu);
    req->reject_reason = reason;
    return reason == SS_REJECT_NONE ? 0 : -1;
}

void ss__limits_release(ss_server *srv, const ss__peer_key *key)
{
    ss__limits *l = srv->limits;
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    drop_one(l, key);
    pthread_mutex_unlock(&l->mu);
}

void ss__limits_leave(ss_request *req)
{
    if (!req->counted)
        return;
    req->counted = false;
    /* A forked child's table is a copy taken at the fork (its mutex may even
     * have been held by another thread then): the parent releases the slot
     * when it reaps the child. */
    if (req->srv->in_request_child)
        return;
    ss__limits_release(req->srv, &req->key);
}

unsigned ss_server_peer_count(ss_server *srv, const struct sockaddr *addr, socklen_t len)
{
    ss__peer_key key;
    unsigned n = 0;

    if (srv == NULL || srv->limits == NULL)
        return 0;
    ss__limits *l = srv->limits;
    if (ss__peer_key_of(addr, len, l->prefix6, &key) < 0)
        return 0;
    if (srv->in_request_child) {
        /* The copy from the fork: readable unless another thread held the
         * lock at that moment (then it may be half-changed; say 0). */
        if (pthread_mutex_trylock(&l->mu) != 0)
            return 0;
    } else {
        pthread_mutex_lock(&l->mu);
    }
    peer_entry *e = find(l, &key, NULL);
    if (e != NULL)
        n = e->count;
    pthread_mutex_unlock(&l->mu);
    return n;
}

ss_reject_reason ss_request_reject_reason(const ss_request *req)
{
    return req == NULL ? SS_REJECT_NONE : req->reject_reason;
}
