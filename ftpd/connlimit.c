/*
 * connlimit.c - session counters shared by threads and forked sessions.
 */
#include "connlimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>

#include "netaddr.h"

typedef struct ip_slot {
    unsigned char addr[16]; /* IPv4 addresses are stored v4-mapped */
    unsigned count;         /* 0 = free slot */
    unsigned pasv;          /* passive listeners its sessions hold */
} ip_slot;

typedef struct limits_shm {
    pthread_mutex_t lock;
    unsigned max_clients;
    unsigned max_per_ip;
    unsigned total;
    ip_slot slots[]; /* max_clients of them: never more addresses than sessions */
} limits_shm;

static limits_shm *shm;
/* Set before any session starts, then only read (forked sessions inherit it). */
static unsigned ipv6_prefix = 128;

int connlimit_init(unsigned max_clients, unsigned max_per_ip, unsigned prefix6)
{
    pthread_mutexattr_t attr;
    size_t size = sizeof(limits_shm) + (size_t)max_clients * sizeof(ip_slot);
    void *p;

    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    shm = p;
    ipv6_prefix = prefix6;
    shm->max_clients = max_clients;
    shm->max_per_ip = max_per_ip;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&shm->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return 0;
}

static void key_of(const struct sockaddr *sa, unsigned char key[16])
{
    netaddr_key(sa, ipv6_prefix, key);
}

static ip_slot *find_slot(const unsigned char key[16], bool create)
{
    ip_slot *free_slot = NULL;

    for (unsigned i = 0; i < shm->max_clients; i++) {
        ip_slot *s = &shm->slots[i];

        if (s->count > 0 && memcmp(s->addr, key, 16) == 0)
            return s;
        if (s->count == 0 && free_slot == NULL)
            free_slot = s;
    }
    if (create && free_slot != NULL)
        memcpy(free_slot->addr, key, 16);
    return create ? free_slot : NULL;
}

int connlimit_acquire(const struct sockaddr *addr)
{
    unsigned char key[16];
    ip_slot *s;
    int rc = -1;

    if (shm == NULL)
        return 0;
    key_of(addr, key);
    pthread_mutex_lock(&shm->lock);
    if (shm->total >= shm->max_clients)
        goto out;
    s = find_slot(key, true);
    if (s == NULL || s->count >= shm->max_per_ip)
        goto out;
    s->count++;
    shm->total++;
    rc = 0;
out:
    pthread_mutex_unlock(&shm->lock);
    if (rc < 0)
        errno = EAGAIN;
    return rc;
}

void connlimit_release(const struct sockaddr *addr)
{
    unsigned char key[16];
    ip_slot *s;

    if (shm == NULL)
        return;
    key_of(addr, key);
    pthread_mutex_lock(&shm->lock);
    s = find_slot(key, false);
    if (s != NULL && s->count > 0) {
        s->count--;
        shm->total--;
    }
    pthread_mutex_unlock(&shm->lock);
}

/* A passive listener belongs to a running session, so its address has a
 * slot already (count > 0): the slot is looked up, never created, and is
 * not freed while listeners are counted in it. */
int connlimit_pasv_acquire(const struct sockaddr *addr, unsigned max)
{
    unsigned char key[16];
    ip_slot *s;
    int rc = -1;

    if (shm == NULL)
        return 0;
    key_of(addr, key);
    pthread_mutex_lock(&shm->lock);
    s = find_slot(key, false);
    if (s == NULL || (max > 0 && s->pasv >= max))
        goto out;
    s->pasv++;
    rc = 0;
out:
    pthread_mutex_unlock(&shm->lock);
    if (rc < 0)
        errno = EUSERS;
    return rc;
}

void connlimit_pasv_release(const struct sockaddr *addr)
{
    unsigned char key[16];
    ip_slot *s;

    if (shm == NULL)
        return;
    key_of(addr, key);
    pthread_mutex_lock(&shm->lock);
    s = find_slot(key, false);
    if (s != NULL && s->pasv > 0)
        s->pasv--;
    pthread_mutex_unlock(&shm->lock);
}
