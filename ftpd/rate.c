/*
 * rate.c - token buckets per session and per user, and the wait that keeps
 * a transfer to its rate while the control connection is still served.
 */
#include "rate.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "control.h"
#include "defs.h"
#include "session.h"

typedef struct user_entry {
    bool used;
    char name[FTPD_USER_MAX]; /* "" = the anonymous sessions */
    rate_bucket b[2];         /* [0] down, [1] up */
    long long last_ns;        /* last use, to reuse the idlest entry */
} user_entry;

typedef struct user_table {
    pthread_mutex_t lock;
    user_entry e[RATE_SLOTS];
} user_table;

/* Made before any session starts; forked sessions inherit the mapping. */
static user_table *tab;

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int rate_init(const ftpd_config *cfg)
{
    pthread_mutexattr_t attr;
    void *p;

    (void)cfg;
    tab = NULL;
    p = mmap(NULL, sizeof(user_table), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
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
    /* A session process that died holding the lock left at worst one
     * bucket a chunk off: usable as it is. */
    if (pthread_mutex_lock(&tab->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&tab->lock);
}

static void unlock(void)
{
    pthread_mutex_unlock(&tab->lock);
}

double rate_burst(unsigned long long rate)
{
    double burst = (double)rate / 10.0;

    return burst < 1.0 ? 1.0 : burst;
}

long long rate_bucket_take(rate_bucket *b, unsigned long long rate, long long now, size_t bytes)
{
    double wait;

    if (rate == 0)
        return 0;
    if (b->last_ns == 0) {
        b->tokens = 0.0; /* a new bucket starts empty: no burst at the start */
        b->last_ns = now;
    } else if (now > b->last_ns) {
        double burst = rate_burst(rate);

        b->tokens += (double)rate * (double)(now - b->last_ns) / 1e9;
        if (b->tokens > burst)
            b->tokens = burst;
        b->last_ns = now;
    }
    b->tokens -= (double)bytes;
    if (b->tokens >= 0.0)
        return 0;
    wait = -b->tokens * 1e9 / (double)rate;
    return (long long)wait + 1;
}

unsigned long long rate_session_limit(const session *s, char direction)
{
    return direction == 'i' ? s->cfg->max_rate_up : s->cfg->max_rate_down;
}

unsigned long long rate_user_limit(const session *s, char direction)
{
    unsigned long long own = direction == 'i' ? s->account.rate_up : s->account.rate_down;

    if (!s->anonymous && own != 0)
        return own;
    return direction == 'i' ? s->cfg->max_user_rate_up : s->cfg->max_user_rate_down;
}

size_t rate_chunk(const session *s, char direction, size_t max)
{
    unsigned long long own = rate_session_limit(s, direction);
    unsigned long long user = rate_user_limit(s, direction);
    unsigned long long r = own != 0 && (user == 0 || own < user) ? own : user;
    unsigned long long chunk = r / 16;

    if (r == 0)
        return max;
    if (chunk < RATE_CHUNK_MIN)
        chunk = RATE_CHUNK_MIN;
    return chunk < max ? (size_t)chunk : max;
}

/* The shared entry of the session's user, found or made; the table lock
 * is held. NULL only when every entry is in use within the last second. */
static user_entry *user_entry_of(session *s, long long now)
{
    const char *name = s->anonymous ? "" : s->user;
    user_entry *reuse = NULL;
    int idx = s->rate.slot - 1;

    if (idx >= 0 && idx < RATE_SLOTS && tab->e[idx].used &&
        strncmp(tab->e[idx].name, name, FTPD_USER_MAX) == 0)
        return &tab->e[idx];
    for (int i = 0; i < RATE_SLOTS; i++) {
        user_entry *x = &tab->e[i];

        if (x->used && strncmp(x->name, name, FTPD_USER_MAX) == 0) {
            s->rate.slot = i + 1;
            return x;
        }
        if (!x->used) {
            if (reuse == NULL || reuse->used)
                reuse = x;
        } else if (reuse == NULL || (reuse->used && x->last_ns < reuse->last_ns)) {
            reuse = x;
        }
    }
    /* An entry used within the last second may be paying a debt: only an
     * older one is taken over (its user starts afresh, with no burst). */
    if (reuse == NULL || (reuse->used && now - reuse->last_ns < 1000000000LL))
        return NULL;
    memset(reuse, 0, sizeof(*reuse));
    reuse->used = true;
    snprintf(reuse->name, sizeof(reuse->name), "%s", name);
    s->rate.slot = (int)(reuse - tab->e) + 1;
    return reuse;
}

/* Sleep up to ns, or until the control connection has something to serve
 * (a command line, or its end) or the server starts to stop. */
static void pause_ns(session *s, long long ns)
{
    long long deadline = now_ns() + ns;
    ss_server *srv = ss_request_server(s->req);
    int stop_fd = ss_server_stop_fd(srv);
    bool stopping = ss_server_stopping(srv);

    /* With a command kept for after the transfer, its line stays unread,
     * so only the end of the connection counts (as in the transfer loop). */
    if (!s->have_pending && control_input_pending(s))
        return;
    /* Bounded by the deadline: each turn sleeps until it or returns. */
    for (;;) {
        struct pollfd p[2];
        nfds_t n = 0;
        long long left = deadline - now_ns();
        int r;

        if (left <= 0)
            return;
        p[n].fd = s->ctrl_fd;
        p[n].events = s->have_pending ? POLLRDHUP : POLLIN;
        p[n++].revents = 0;
        if (!stopping && stop_fd >= 0) {
            p[n].fd = stop_fd;
            p[n].events = POLLIN;
            p[n++].revents = 0;
        }
        r = poll(p, n, (int)((left + 999999) / 1000000));
        if (r > 0 || (r < 0 && errno != EINTR))
            return;
    }
}

void rate_wait(session *s, char direction, size_t bytes)
{
    int d = direction == 'i';
    unsigned long long own = rate_session_limit(s, direction);
    unsigned long long user = rate_user_limit(s, direction);
    long long now, wait = 0;

    if ((own == 0 && user == 0) || bytes == 0)
        return;
    now = now_ns();
    if (own != 0)
        wait = rate_bucket_take(&s->rate.own[d], own, now, bytes);
    if (user != 0 && tab != NULL) {
        user_entry *x;
        long long w = 0;

        lock();
        x = user_entry_of(s, now);
        if (x != NULL) {
            w = rate_bucket_take(&x->b[d], user, now, bytes);
            x->last_ns = now;
        }
        unlock();
        if (w > wait)
            wait = w;
    }
    if (wait > 0)
        pause_ns(s, wait);
}
