/*
 * pasvshare.c - passive listeners per client address, shared by threads
 * and forked sessions, with the entries of dead sessions reclaimed.
 */
#include "pasvshare.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "netaddr.h"
#include "sysio.h"

typedef struct share_entry {
    unsigned char key[16]; /* the address as netaddr_key makes it */
    pid_t pid;             /* the holder; 0 = a free entry */
} share_entry;

typedef struct share_table {
    pthread_mutex_t lock;
    unsigned slots;
    share_entry e[]; /* slots of them */
} share_table;

/* Set before any session starts, then only read (forked sessions inherit
 * the mapping and these values). */
static share_table *tab;
static unsigned share_max;
static unsigned share_prefix6 = 128;

int pasvshare_init(unsigned slots, unsigned share, unsigned prefix6)
{
    pthread_mutexattr_t attr;
    size_t size = sizeof(share_table) + (size_t)slots * sizeof(share_entry);
    void *p;

    share_max = share;
    share_prefix6 = prefix6;
    tab = NULL;
    if (share == 0)
        return 0;
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    tab = p;
    tab->slots = slots;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&tab->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return 0;
}

static void lock(void)
{
    /* A session process that died holding the lock left at most one entry
     * half-written: its key is written before its pid, so such an entry is
     * still free, and the table is usable as it is. */
    if (pthread_mutex_lock(&tab->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&tab->lock);
}

static void unlock(void)
{
    pthread_mutex_unlock(&tab->lock);
}

/* Is pid a process that can still give its entry back? A zombie cannot: it
 * has ended and only waits for the server to reap it. A pid the system
 * gave to a new process meanwhile counts as alive; that entry comes free
 * when that process ends. */
static bool holder_alive(pid_t pid)
{
    char path[64], stat[256];
    const char *end;
    ssize_t n;
    int fd;

    if (pid == getpid())
        return true;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return false;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    n = sysio_read(fd, stat, sizeof(stat) - 1);
    close(fd);
    if (n <= 0)
        return true;
    stat[n] = '\0';
    /* "pid (comm) S ...": the state follows the last ')'. */
    end = strrchr(stat, ')');
    return end == NULL || end[1] != ' ' || end[2] != 'Z';
}

/* Free the entries of processes that have ended; with key, only that
 * address's. Under the lock. */
static void reclaim(const unsigned char *key)
{
    for (unsigned i = 0; i < tab->slots; i++) {
        share_entry *x = &tab->e[i];

        if (x->pid == 0 || (key != NULL && memcmp(x->key, key, sizeof(x->key)) != 0))
            continue;
        if (!holder_alive(x->pid))
            x->pid = 0;
    }
}

static unsigned count_of(const unsigned char *key)
{
    unsigned n = 0;

    for (unsigned i = 0; i < tab->slots; i++)
        if (tab->e[i].pid != 0 && memcmp(tab->e[i].key, key, sizeof(tab->e[i].key)) == 0)
            n++;
    return n;
}

static share_entry *free_entry(void)
{
    for (unsigned i = 0; i < tab->slots; i++)
        if (tab->e[i].pid == 0)
            return &tab->e[i];
    return NULL;
}

int pasvshare_acquire(const struct sockaddr *addr)
{
    unsigned char key[16];
    share_entry *x;
    int rc = -1;

    if (tab == NULL)
        return 0;
    netaddr_key(addr, share_prefix6, key);
    lock();
    if (count_of(key) >= share_max) {
        reclaim(key);
        if (count_of(key) >= share_max)
            goto out;
    }
    x = free_entry();
    if (x == NULL) {
        reclaim(NULL);
        x = free_entry();
        if (x == NULL)
            goto out;
    }
    memcpy(x->key, key, sizeof(x->key));
    x->pid = getpid();
    rc = 1;
out:
    unlock();
    if (rc < 0)
        errno = EUSERS;
    return rc;
}

void pasvshare_release(const struct sockaddr *addr)
{
    unsigned char key[16];
    pid_t me = getpid();

    if (tab == NULL)
        return;
    netaddr_key(addr, share_prefix6, key);
    lock();
    for (unsigned i = 0; i < tab->slots; i++) {
        share_entry *x = &tab->e[i];

        if (x->pid == me && memcmp(x->key, key, sizeof(x->key)) == 0) {
            x->pid = 0;
            break;
        }
    }
    unlock();
}
