/*
 * throttle.c - failed-login budgets per address and per account name.
 */
#include "throttle.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "defs.h"
#include "netaddr.h"

enum { KIND_FREE = 0, KIND_ADDR, KIND_NAME };

typedef struct entry {
    unsigned char kind;
    char key[FTPD_USER_MAX]; /* 16 address bytes, or a NUL-terminated name */
    unsigned fails;
    long long window_start; /* monotonic seconds of the first counted failure */
    long long banned_until; /* 0 = not banned */
    long long last;         /* last use, for reuse of the idlest entry */
} entry;

typedef struct table {
    pthread_mutex_t lock;
    entry e[THROTTLE_SLOTS];
} table;

static table *tab;
static unsigned max_fails;
static long long ban_secs;
static unsigned prefix6;

static long long now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

int throttle_init(unsigned fails, unsigned ban_time, unsigned ipv6_prefix)
{
    pthread_mutexattr_t attr;
    void *p;

    max_fails = fails;
    ban_secs = ban_time;
    prefix6 = ipv6_prefix;
    if (fails == 0)
        return 0;
    p = mmap(NULL, sizeof(table), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    tab = p;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&tab->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return 0;
}

static void lock(void)
{
    /* A session process that died holding the lock left the table as it
     * was between two whole-field writes: usable as it is. */
    if (pthread_mutex_lock(&tab->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&tab->lock);
}

static void unlock(void)
{
    pthread_mutex_unlock(&tab->lock);
}

static void make_key(int kind, const struct sockaddr *addr, const char *name,
                     char key[FTPD_USER_MAX])
{
    memset(key, 0, FTPD_USER_MAX);
    if (kind == KIND_ADDR) {
        unsigned char k[16];
        netaddr_key(addr, prefix6, k);
        memcpy(key, k, sizeof(k));
    } else {
        size_t n = strnlen(name, FTPD_USER_MAX - 1);
        memcpy(key, name, n);
    }
}

/* An entry whose window and ban are over counts for nothing. */
static bool stale(const entry *x, long long now)
{
    return x->banned_until <= now && now - x->window_start >= ban_secs;
}

/* The entry of key, or with create a fresh one (reusing a free or stale
 * entry, else the idlest unbanned one, else the idlest). */
static entry *find(int kind, const char key[FTPD_USER_MAX], bool create, long long now)
{
    entry *reuse = NULL;
    int reuse_rank = 4;

    for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
        entry *x = &tab->e[i];
        int rank;

        if (x->kind == kind && memcmp(x->key, key, FTPD_USER_MAX) == 0)
            return x;
        if (!create)
            continue;
        rank = x->kind == KIND_FREE ? 0 : stale(x, now) ? 1 : x->banned_until <= now ? 2 : 3;
        if (rank < reuse_rank || (rank == reuse_rank && x->last < reuse->last)) {
            reuse = x;
            reuse_rank = rank;
        }
    }
    if (!create || reuse == NULL)
        return NULL;
    memset(reuse, 0, sizeof(*reuse));
    reuse->kind = (unsigned char)kind;
    memcpy(reuse->key, key, FTPD_USER_MAX);
    reuse->window_start = now;
    return reuse;
}

static bool banned_locked(int kind, const struct sockaddr *addr, const char *name, long long now)
{
    char key[FTPD_USER_MAX];
    entry *x;

    make_key(kind, addr, name, key);
    x = find(kind, key, false, now);
    return x != NULL && x->banned_until > now;
}

bool throttle_banned(const struct sockaddr *addr, const char *name)
{
    long long now = now_s();
    bool banned;

    if (tab == NULL)
        return false;
    lock();
    banned = banned_locked(KIND_ADDR, addr, NULL, now) ||
             (name != NULL && banned_locked(KIND_NAME, NULL, name, now));
    unlock();
    return banned;
}

/* Take one attempt from an entry's budget: false when it is banned or its
 * budget is spent (attempts still being checked count). */
static bool take(int kind, const struct sockaddr *addr, const char *name, long long now)
{
    char key[FTPD_USER_MAX];
    entry *x;

    make_key(kind, addr, name, key);
    x = find(kind, key, true, now);
    if (x == NULL)
        return true;
    x->last = now;
    if (x->banned_until > now)
        return false;
    if (now - x->window_start >= ban_secs) {
        x->window_start = now;
        x->fails = 0;
    }
    if (x->fails >= max_fails)
        return false;
    x->fails++;
    return true;
}

/* Settle an attempt taken from an entry: a success gives it back (name:
 * clears the budget); a failure stays counted, and the last one of the
 * budget starts a ban. Returns true if a ban starts. */
static bool settle(int kind, const struct sockaddr *addr, const char *name, bool ok, long long now)
{
    char key[FTPD_USER_MAX];
    entry *x;

    make_key(kind, addr, name, key);
    x = find(kind, key, false, now);
    if (x == NULL || x->banned_until > now)
        return false;
    if (ok) {
        if (kind == KIND_NAME)
            x->fails = 0;
        else if (x->fails > 0)
            x->fails--;
        return false;
    }
    if (x->fails < max_fails)
        return false;
    x->banned_until = now + ban_secs;
    x->fails = 0;
    x->window_start = now;
    return true;
}

bool throttle_attempt(const struct sockaddr *addr, const char *name)
{
    long long now = now_s();
    bool ok;

    if (tab == NULL)
        return true;
    lock();
    ok = take(KIND_ADDR, addr, NULL, now);
    if (ok && !take(KIND_NAME, NULL, name, now)) {
        settle(KIND_ADDR, addr, NULL, true, now);
        ok = false;
    }
    unlock();
    return ok;
}

int throttle_done(const struct sockaddr *addr, const char *name, bool ok)
{
    long long now = now_s();
    int bans = 0;

    if (tab == NULL)
        return 0;
    lock();
    if (settle(KIND_ADDR, addr, NULL, ok, now))
        bans |= THROTTLE_BAN_ADDR;
    if (settle(KIND_NAME, NULL, name, ok, now))
        bans |= THROTTLE_BAN_NAME;
    unlock();
    return bans;
}
