/*
 * quota.c - per-user usage counts in shared memory, charged by uploads and
 * given back by deletes.
 */
#include "quota.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "defs.h"
#include "session.h"

typedef struct user_usage {
    pthread_mutex_t lock; /* held for every look at the fields below */
    bool used;
    bool known;               /* bytes and files are counted */
    char name[FTPD_USER_MAX]; /* set under the table lock */
    long long bytes, files;   /* what the home holds, plus uploads' charges */
    long long counted_at;     /* monotonic seconds of the last walk */
    /* Changed under the entry's lock but also read under the table lock
     * (to pick an entry to reuse), so always through GET/SET below. */
    unsigned uploads; /* uploads running, whose charges are in bytes */
    long long last;   /* last use, monotonic seconds, to reuse the idlest */
} user_usage;

typedef struct usage_table {
    pthread_mutex_t lock; /* held to find or take an entry */
    user_usage e[QUOTA_SLOTS];
} usage_table;

#define GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
#define SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

/* Made before any session starts; forked sessions inherit the mapping. */
static usage_table *tab;
static unsigned rescan_secs;

static long long now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

static void robust_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;

    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
}

int quota_init(unsigned rescan)
{
    void *p;

    rescan_secs = rescan;
    tab = NULL;
    p = mmap(NULL, sizeof(usage_table), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    tab = p;
    robust_init(&tab->lock);
    for (size_t i = 0; i < QUOTA_SLOTS; i++)
        robust_init(&tab->e[i].lock);
    return 0;
}

bool quota_applies(const session *s)
{
    return tab != NULL && s->logged_in && !s->anonymous &&
           (s->account.quota_bytes != 0 || s->account.quota_files != 0);
}

/* ---- counting a home ------------------------------------------------------ */

typedef struct walk_state {
    long long bytes, files, entries;
    long long deadline; /* monotonic seconds */
} walk_state;

/* Count the directory fd (taken over: closed here) and what is beneath. */
static int walk_dir(int fd, walk_state *w, int depth)
{
    DIR *d = fdopendir(fd);
    struct dirent *e;
    int rc = 0;

    if (d == NULL) {
        close(fd);
        return -1;
    }
    /* Bounded by QUOTA_WALK_ENTRIES and QUOTA_WALK_SECONDS. */
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (++w->entries > QUOTA_WALK_ENTRIES) {
            errno = E2BIG;
            rc = -1;
            break;
        }
        if ((w->entries & 1023) == 0 && now_s() > w->deadline) {
            errno = ETIMEDOUT;
            rc = -1;
            break;
        }
        /* Gone meanwhile: it holds nothing any more. */
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            w->bytes += st.st_size;
            w->files++;
        } else if (S_ISDIR(st.st_mode)) {
            int sub;

            if (depth + 1 > QUOTA_WALK_DEPTH) {
                errno = ELOOP;
                rc = -1;
                break;
            }
            sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            /* A folder the session may not read is one it cannot upload
             * into either: it is left out. */
            if (sub < 0)
                continue;
            if (walk_dir(sub, w, depth + 1) < 0) {
                rc = -1;
                break;
            }
        }
    }
    closedir(d);
    return rc;
}

int quota_walk(int dir_fd, long long *bytes, long long *files)
{
    walk_state w = {0, 0, 0, now_s() + QUOTA_WALK_SECONDS};
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || walk_dir(fd, &w, 0) < 0)
        return -1;
    *bytes = w.bytes;
    *files = w.files;
    return 0;
}

/* ---- the shared counts ---------------------------------------------------- */

static void lock(pthread_mutex_t *m, user_usage *x)
{
    /* A session process that died holding an entry's lock may have left
     * its count half-changed: it is counted again at the next upload. */
    if (pthread_mutex_lock(m) == EOWNERDEAD) {
        if (x != NULL) {
            x->known = false;
            SET(x->uploads, 0);
        }
        pthread_mutex_consistent(m);
    }
}

static const char *user_key(const session *s)
{
    return s->user;
}

/* Find the user's entry, or take a free one, or the idlest one no upload
 * uses whose lock is free; the table lock is held. */
static user_usage *find_entry(session *s)
{
    const char *name = user_key(s);
    int idx = s->quota.slot - 1;
    user_usage *reuse = NULL;

    if (idx >= 0 && idx < QUOTA_SLOTS && tab->e[idx].used &&
        strncmp(tab->e[idx].name, name, FTPD_USER_MAX) == 0)
        return &tab->e[idx];
    for (int i = 0; i < QUOTA_SLOTS; i++) {
        user_usage *x = &tab->e[i];

        if (x->used && strncmp(x->name, name, FTPD_USER_MAX) == 0) {
            s->quota.slot = i + 1;
            return x;
        }
        if (!x->used) {
            if (reuse == NULL || reuse->used)
                reuse = x;
        } else if (GET(x->uploads) == 0 &&
                   (reuse == NULL || (reuse->used && GET(x->last) < GET(reuse->last)))) {
            reuse = x;
        }
    }
    if (reuse == NULL || pthread_mutex_trylock(&reuse->lock) != 0)
        return NULL;
    reuse->used = true;
    reuse->known = false;
    reuse->bytes = reuse->files = 0;
    SET(reuse->uploads, 0);
    snprintf(reuse->name, sizeof(reuse->name), "%s", name);
    pthread_mutex_unlock(&reuse->lock);
    s->quota.slot = (int)(reuse - tab->e) + 1;
    return reuse;
}

/* The user's entry with its lock held, or NULL (errno EIO) when the table
 * has no room. */
static user_usage *lock_entry(session *s)
{
    /* Bounded: an entry is taken over between the two locks only when the
     * table is full, and then the next turn finds the user's new one. */
    for (int tries = 0; tries < 4; tries++) {
        user_usage *x;

        lock(&tab->lock, NULL);
        x = find_entry(s);
        pthread_mutex_unlock(&tab->lock);
        if (x == NULL)
            break;
        lock(&x->lock, x);
        if (x->used && strncmp(x->name, user_key(s), FTPD_USER_MAX) == 0) {
            SET(x->last, now_s());
            return x;
        }
        pthread_mutex_unlock(&x->lock);
    }
    errno = EIO;
    return NULL;
}

int quota_begin(session *s, bool new_file, off_t free_bytes)
{
    unsigned long long qb = s->account.quota_bytes, qf = s->account.quota_files;
    int slot = s->quota.slot;
    user_usage *x;
    long long now = now_s();

    memset(&s->quota, 0, sizeof(s->quota));
    s->quota.slot = slot;
    if (!quota_applies(s))
        return 0;
    x = lock_entry(s);
    if (x == NULL)
        return -1;
    if (!x->known ||
        (rescan_secs != 0 && GET(x->uploads) == 0 && now - x->counted_at >= rescan_secs)) {
        long long bytes, files;

        if (quota_walk(s->fs.root_fd, &bytes, &files) < 0) {
            x->known = false;
            pthread_mutex_unlock(&x->lock);
            errno = EIO;
            return -1;
        }
        x->bytes = bytes;
        x->files = files;
        x->known = true;
        x->counted_at = now;
    }
    if ((new_file && qf != 0 && (unsigned long long)x->files + 1 > qf) ||
        (qb != 0 && free_bytes == 0 && (unsigned long long)x->bytes >= qb)) {
        pthread_mutex_unlock(&x->lock);
        errno = EDQUOT;
        return -1;
    }
    if (new_file) {
        x->files++;
        s->quota.file_taken = true;
    }
    SET(x->uploads, GET(x->uploads) + 1);
    pthread_mutex_unlock(&x->lock);
    s->quota.active = true;
    s->quota.free = free_bytes;
    return 0;
}

int quota_take(session *s, size_t n)
{
    unsigned long long qb = s->account.quota_bytes;
    long long extra;
    user_usage *x;

    if (!s->quota.active || n == 0)
        return 0;
    if ((long long)n <= s->quota.free) {
        s->quota.free -= (long long)n;
        return 0;
    }
    extra = (long long)n - s->quota.free;
    x = lock_entry(s);
    if (x == NULL)
        return -1;
    if (qb != 0 && (unsigned long long)(x->bytes + extra) > qb) {
        pthread_mutex_unlock(&x->lock);
        errno = EDQUOT;
        return -1;
    }
    x->bytes += extra;
    pthread_mutex_unlock(&x->lock);
    s->quota.taken += extra;
    s->quota.free = 0;
    return 0;
}

void quota_end(session *s, long long delta, bool file_kept)
{
    user_usage *x;

    if (!s->quota.active)
        return;
    s->quota.active = false;
    x = lock_entry(s);
    if (x == NULL)
        return;
    if (x->known) {
        x->bytes += delta - s->quota.taken;
        if (x->bytes < 0)
            x->bytes = 0;
        if (s->quota.file_taken && !file_kept && x->files > 0)
            x->files--;
    }
    if (GET(x->uploads) > 0)
        SET(x->uploads, GET(x->uploads) - 1);
    pthread_mutex_unlock(&x->lock);
}

void quota_removed(session *s, const struct stat *st)
{
    user_usage *x;

    if (!quota_applies(s) || !S_ISREG(st->st_mode))
        return;
    x = lock_entry(s);
    if (x == NULL)
        return;
    if (x->known) {
        x->bytes -= st->st_size;
        if (x->bytes < 0)
            x->bytes = 0;
        if (x->files > 0)
            x->files--;
    }
    pthread_mutex_unlock(&x->lock);
}
