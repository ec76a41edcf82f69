/*
 * listbudget.c - one listing-memory counter for all threads and processes.
 *
 * The counter is a lock-free C11 atomic in a MAP_SHARED anonymous mapping
 * made before the server starts: forked sessions inherit the mapping, and a
 * lock-free atomic works across processes (one that needs a lock would use
 * a process-local lock table, hence the assertion below).
 */
#include "listbudget.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <sys/mman.h>

_Static_assert(ATOMIC_LONG_LOCK_FREE == 2, "the shared budget needs a lock-free atomic long");

typedef struct budget_shm {
    atomic_ulong used;
    atomic_ulong limit;
} budget_shm;

static budget_shm *shm;

int listbudget_init(unsigned long long limit)
{
    void *p;

    if (limit > ULONG_MAX)
        limit = ULONG_MAX;
    if (shm == NULL) {
        p = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -1;
        shm = p;
        atomic_init(&shm->used, 0);
    }
    atomic_store(&shm->limit, (unsigned long)limit);
    return 0;
}

int listbudget_reserve(size_t n)
{
    unsigned long used, limit;

    if (shm == NULL)
        return 0;
    limit = atomic_load(&shm->limit);
    used = atomic_load(&shm->used);
    /* Bounded by contention: a failed exchange means another listing moved
     * the counter, and each turn either takes the bytes or gives up. */
    do {
        if (n > limit || used > limit - n) {
            errno = ENOBUFS;
            return -1;
        }
    } while (!atomic_compare_exchange_weak(&shm->used, &used, used + n));
    return 0;
}

void listbudget_release(size_t n)
{
    if (shm != NULL && n > 0)
        atomic_fetch_sub(&shm->used, (unsigned long)n);
}

unsigned long long listbudget_used(void)
{
    return shm != NULL ? atomic_load(&shm->used) : 0;
}
