/*
 * listing.c - LIST, NLST, MLSD and MLST output.
 *
 * listing_open() reads a directory's names into memory (one arena of
 * NUL-separated names and an array of offsets into it) and sorts them by
 * name in byte order; each listing_next() then looks at one entry with
 * fstatat(AT_SYMLINK_NOFOLLOW) relative to the directory descriptor and
 * formats its line, so memory holds the names but never the formatted
 * listing. The names are bounded per listing (LISTING_MAX_ENTRIES,
 * LISTING_MAX_NAME_BYTES) and by the server-wide budget (listbudget.c),
 * reserved before the arena or the offsets grow. When either bound is
 * reached, or memory runs out, the names are dropped and the directory is
 * read again from its start and listed in directory order as readdir gives
 * it: all of this happens in listing_open, before any line is formatted, so
 * an entry is never listed twice. Owner and group names are looked up once
 * per id and kept for the whole listing.
 *
 * The lines themselves are formatted by listfmt.c; times are in UTC there,
 * so LIST dates, MLSx "modify" facts and MDTM agree whatever the server's
 * zone.
 *
 * Symlinks: a link is shown as "name -> target" (LIST) or with its target's
 * facts (MLSD) only when the target resolves beneath the session root; the
 * target text is read with readlinkat, never followed outside. Other links
 * are shown as links without their target (type=OS.unix=symlink in MLSx).
 */
#include "listing.h"

#include "listbudget.h"
#include "listfmt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Owner and group names kept per listing. */
#define LS_ID_SLOTS 32
/* First sizes of the names arena and of the offsets array. */
#define LS_ARENA_START (16u << 10)
#define LS_OFFS_START 256u

/* Offsets into the arena are 32 bits wide: a quarter of what a pointer
 * takes per name. */
_Static_assert(LISTING_MAX_NAME_BYTES <= UINT32_MAX, "name offsets must fit 32 bits");

typedef struct ls_ids {
    unsigned id[LS_ID_SLOTS];
    char name[LS_ID_SLOTS][LS_ID_NAME_MAX];
    int used;
    int next; /* slot replaced next once all are used */
} ls_ids;

/* The names of one directory. The budget counts the arena, the offsets
 * and the scratch copy of the offsets that qsort_r's merge sort allocates. */
typedef struct ls_names {
    char *arena; /* the names, NUL-separated */
    size_t arena_len;
    size_t arena_cap;
    uint32_t *offs; /* offset of each name in arena; sorted by name at the end */
    size_t count;
    size_t cap;
    size_t reserved; /* bytes taken from the listing budget */
} ls_names;

/* Where the next line comes from. */
typedef enum ls_phase {
    LS_CDIR,     /* MLSD's "type=cdir" line for the directory itself */
    LS_SINGLE,   /* the one entry of a listing of a file */
    LS_SORTED,   /* the held names, in order */
    LS_UNSORTED, /* readdir, entry by entry */
    LS_END
} ls_phase;

struct listing {
    const vfs *v;
    listing_kind kind;
    bool show_hidden;
    bool writable;
    unsigned facts; /* LISTING_FACT_* bits shown in MLSD lines */
    time_t now;
    ls_phase phase;
    ls_phase body; /* LS_SORTED or LS_UNSORTED, after LS_CDIR */
    DIR *d;
    ls_names names;
    size_t next;              /* index of the next sorted name */
    const char *unsorted_why; /* NULL while sorted */
    int err;                  /* failure to report on the next read, 0 = none */
    struct stat single;       /* lstat of the entry of a LS_SINGLE listing */
    size_t line_len;          /* bytes in line, 0 = none formatted */
    size_t line_off;          /* of which already handed out */
    ls_ids users;
    ls_ids groups;
    char pwbuf[LS_PWBUF_SIZE];
    char dir[VFS_PATH_MAX];    /* normalised virtual path of the listed path */
    char vpath[VFS_PATH_MAX];  /* scratch: virtual path of one entry */
    char target[VFS_PATH_MAX]; /* scratch: symlink text */
    char line[LISTING_LINE_MAX];
};

/* Does a name contain bytes that would break a line-based listing? */
static bool ls_bad_name(const char *name)
{
    return strpbrk(name, "\r\n") != NULL;
}

static const char *ls_cached_id(listing *c, bool user, unsigned id)
{
    ls_ids *ids = user ? &c->users : &c->groups;
    for (int i = 0; i < ids->used; i++)
        if (ids->id[i] == id)
            return ids->name[i];
    int slot;
    if (ids->used < LS_ID_SLOTS) {
        slot = ids->used++;
    } else {
        slot = ids->next;
        ids->next = (ids->next + 1) % LS_ID_SLOTS;
    }
    ids->id[slot] = id;
    listfmt_lookup_id(user, id, ids->name[slot], LS_ID_NAME_MAX, c->pwbuf, sizeof c->pwbuf);
    return ids->name[slot];
}

/* ---- holding a directory's names ---- */

static void ls_names_free(ls_names *ns)
{
    free(ns->arena);
    free(ns->offs);
    listbudget_release(ns->reserved);
    memset(ns, 0, sizeof *ns);
}

/* Makes sure the budget covers an arena of arena_cap bytes and cap
 * offsets (twice: the array and the sort's scratch copy), reserving in
 * LISTING_BUDGET_CHUNK steps. */
static int ls_names_budget(ls_names *ns, size_t arena_cap, size_t cap)
{
    size_t want = arena_cap + 2 * cap * sizeof *ns->offs;
    size_t more;

    if (want <= ns->reserved)
        return 0;
    more = (want - ns->reserved + LISTING_BUDGET_CHUNK - 1) / LISTING_BUDGET_CHUNK *
           LISTING_BUDGET_CHUNK;
    if (listbudget_reserve(more) < 0)
        return -1;
    ns->reserved += more;
    return 0;
}

/* Adds one name. Fails with EOVERFLOW past the per-listing bounds, ENOBUFS
 * when the budget refuses, ENOMEM; the names held so far stay valid. */
static int ls_names_add(ls_names *ns, const char *name)
{
    size_t n = strlen(name) + 1;

    if (ns->count >= LISTING_MAX_ENTRIES || ns->arena_len + n > LISTING_MAX_NAME_BYTES) {
        errno = EOVERFLOW;
        return -1;
    }
    if (ns->arena_len + n > ns->arena_cap) {
        size_t cap = ns->arena_cap ? ns->arena_cap * 2 : LS_ARENA_START;
        char *a;

        while (cap < ns->arena_len + n)
            cap *= 2;
        if (ls_names_budget(ns, cap, ns->cap) < 0)
            return -1;
        a = realloc(ns->arena, cap);
        if (a == NULL)
            return -1;
        ns->arena = a;
        ns->arena_cap = cap;
    }
    if (ns->count == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : LS_OFFS_START;
        uint32_t *o;

        if (ls_names_budget(ns, ns->arena_cap, cap) < 0)
            return -1;
        o = realloc(ns->offs, cap * sizeof *o);
        if (o == NULL)
            return -1;
        ns->offs = o;
        ns->cap = cap;
    }
    memcpy(ns->arena + ns->arena_len, name, n);
    ns->offs[ns->count++] = (uint32_t)ns->arena_len;
    ns->arena_len += n;
    return 0;
}

static int ls_cmp(const void *a, const void *b, void *arena)
{
    const char *base = arena;
    return strcmp(base + *(const uint32_t *)a, base + *(const uint32_t *)b);
}

/* Should this directory entry appear at all? */
static bool ls_wanted(const listing *l, const char *name)
{
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    if (ls_bad_name(name))
        return false;
    /* MLSD lists every entry; LIST and NLST hide dot files unless -a. */
    if (l->kind != LISTING_MLSD && name[0] == '.' && !l->show_hidden)
        return false;
    return true;
}

/* Drops the names and starts the directory over, to be listed as readdir
 * gives it. */
static void ls_go_unsorted(listing *l, int why)
{
    ls_names_free(&l->names);
    rewinddir(l->d);
    l->body = LS_UNSORTED;
    if (why == ENOBUFS)
        l->unsorted_why = "the listing memory budget is used up";
    else if (why == EOVERFLOW)
        l->unsorted_why = "too many names to sort";
    else
        l->unsorted_why = "out of memory for the names";
}

/* Reads the names of l->d and sorts them, or falls back to directory order
 * (see ls_go_unsorted). Fails only when the directory cannot be read. */
static int ls_read_names(listing *l)
{
    ls_names *ns = &l->names;

    l->body = LS_SORTED;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(l->d);
        if (e == NULL) {
            if (errno != 0)
                return -1;
            break;
        }
        if (!ls_wanted(l, e->d_name))
            continue;
        if (ls_names_add(ns, e->d_name) < 0) {
            ls_go_unsorted(l, errno);
            return 0;
        }
    }
    if (ns->count > 1)
        qsort_r(ns->offs, ns->count, sizeof *ns->offs, ls_cmp, ns->arena);
    return 0;
}

/* ---- formatting entries ---- */

/* If the link dfd/name resolves beneath the root, stat its target into tst
 * and return true. The check goes through vfs_stat from the root, so a link
 * with ".." that stays inside the root is followed correctly. */
static bool ls_link_inside(listing *l, const char *name, struct stat *tst)
{
    int n = snprintf(l->vpath, sizeof l->vpath, "%s%s%s", l->dir, l->dir[1] ? "/" : "", name);
    if (n < 0 || (size_t)n >= sizeof l->vpath)
        return false;
    return vfs_stat(l->v, l->vpath, tst) == 0;
}

/* The link's text into l->target if it is fit to show; NULL otherwise. */
static const char *ls_link_text(listing *l, int dfd, const char *name)
{
    ssize_t n = readlinkat(dfd, name, l->target, sizeof l->target);
    if (n <= 0 || (size_t)n >= sizeof l->target)
        return NULL;
    l->target[n] = '\0';
    if (ls_bad_name(l->target))
        return NULL;
    return l->target;
}

/* Ends the text in l->line (n bytes) with CRLF. */
static int ls_end_line(listing *l, int n)
{
    /* The formatters leave room for CRLF: they get sizeof line - 2. */
    if (n < 0 || (size_t)n + 2 > sizeof l->line) {
        errno = ENAMETOOLONG;
        return -1;
    }
    l->line[n] = '\r';
    l->line[n + 1] = '\n';
    l->line_len = (size_t)n + 2;
    l->line_off = 0;
    return 0;
}

/* Formats one entry into l->line, st being its lstat; dfd is its directory
 * or -1 when the entry was given directly (then symlink targets are not
 * shown). */
static int ls_entry(listing *l, int dfd, const char *name, const struct stat *st)
{
    int n;
    struct stat tst;
    size_t room = sizeof l->line - 2;

    switch (l->kind) {
    case LISTING_NLST:
        n = snprintf(l->line, room, "%s", name);
        if (n < 0 || (size_t)n >= room) {
            errno = ENAMETOOLONG;
            return -1;
        }
        break;
    case LISTING_LIST: {
        const char *target = NULL;
        if (S_ISLNK(st->st_mode) && dfd >= 0 && ls_link_inside(l, name, &tst))
            target = ls_link_text(l, dfd, name);
        n = listfmt_ls_line(st, ls_cached_id(l, true, (unsigned)st->st_uid),
                            ls_cached_id(l, false, (unsigned)st->st_gid), name, target, l->now,
                            l->line, room);
        break;
    }
    case LISTING_MLSD:
    default: {
        /* A link that stays inside is presented as what it points to, so
         * clients can enter linked directories; others stay links. */
        const struct stat *use = st;
        if (S_ISLNK(st->st_mode) && dfd >= 0 && ls_link_inside(l, name, &tst))
            use = &tst;
        if (listing_format_facts(use, NULL, name, l->writable, l->facts, l->line, room) < 0)
            return -1;
        n = (int)strlen(l->line);
        break;
    }
    }
    return ls_end_line(l, n);
}

/* Formats the next line into l->line. Returns 1, 0 at the end, -1 with
 * errno. */
static int ls_next_line(listing *l)
{
    struct stat st;

    /* Bounded by the directory: each turn formats a line or consumes one
     * name (or entry) that is skipped. */
    for (;;) {
        switch (l->phase) {
        case LS_CDIR:
            l->phase = l->body;
            if (fstat(dirfd(l->d), &st) < 0)
                return -1;
            if (listing_format_facts(&st, "cdir", ".", l->writable, l->facts, l->line,
                                     sizeof l->line - 2) < 0)
                return -1;
            return ls_end_line(l, (int)strlen(l->line)) < 0 ? -1 : 1;
        case LS_SINGLE: {
            /* Named by its last component. */
            const char *base = strrchr(l->dir, '/') + 1;
            l->phase = LS_END;
            if (ls_bad_name(base))
                return 0;
            return ls_entry(l, -1, base, &l->single) < 0 ? -1 : 1;
        }
        case LS_SORTED: {
            const char *name;
            if (l->next >= l->names.count) {
                l->phase = LS_END;
                continue;
            }
            name = l->names.arena + l->names.offs[l->next++];
            /* Never follows the entry: a link is reported as a link. */
            if (fstatat(dirfd(l->d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue; /* removed since readdir */
            return ls_entry(l, dirfd(l->d), name, &st) < 0 ? -1 : 1;
        }
        case LS_UNSORTED: {
            struct dirent *e;
            errno = 0;
            e = readdir(l->d);
            if (e == NULL) {
                if (errno != 0)
                    return -1;
                l->phase = LS_END;
                continue;
            }
            if (!ls_wanted(l, e->d_name) ||
                fstatat(dirfd(l->d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            return ls_entry(l, dirfd(l->d), e->d_name, &st) < 0 ? -1 : 1;
        }
        case LS_END:
        default:
            return 0;
        }
    }
}

/* ---- the iterator ---- */

listing *listing_open(const vfs *v, const char *path, listing_kind kind, const listing_opts *o)
{
    struct stat st;
    int found;
    listing *l = calloc(1, sizeof *l);

    if (l == NULL)
        return NULL;
    l->v = v;
    l->kind = kind;
    l->show_hidden = o ? o->show_hidden : false;
    l->writable = o ? o->writable : false;
    l->facts = LISTING_FACTS_ALL & ~(o ? o->omit_facts : 0u);
    l->now = (o && o->now != 0) ? o->now : time(NULL);
    if (vfs_normalize(v, path, l->dir, sizeof l->dir) < 0)
        goto fail;
    found = vfs_stat(v, l->dir, &st);
    if (found < 0 || !S_ISDIR(st.st_mode)) {
        if (kind == LISTING_MLSD) {
            if (found == 0)
                errno = ENOTDIR;
            goto fail;
        }
        /* A single entry (a file, or a link that does not resolve inside):
         * described by lstat. */
        if (vfs_lstat(v, l->dir, &l->single) < 0)
            goto fail;
        if (S_ISDIR(l->single.st_mode)) {
            errno = EACCES;
            goto fail;
        }
        l->phase = LS_SINGLE;
        return l;
    }
    l->d = vfs_opendir(v, l->dir);
    if (l->d == NULL)
        goto fail;
    if (ls_read_names(l) < 0)
        goto fail;
    l->phase = kind == LISTING_MLSD ? LS_CDIR : l->body;
    return l;
fail:
    listing_close(l);
    return NULL;
}

ssize_t listing_next(listing *l, const char **line)
{
    size_t off;

    if (l->line_off == l->line_len) {
        int r;

        if (l->err != 0) {
            errno = l->err;
            return -1;
        }
        r = ls_next_line(l);
        if (r <= 0)
            return r;
    }
    off = l->line_off;
    l->line_off = l->line_len;
    *line = l->line + off;
    return (ssize_t)(l->line_len - off);
}

ssize_t listing_read(listing *l, char *buf, size_t cap)
{
    size_t n = 0;

    if (cap == 0) {
        errno = EINVAL;
        return -1;
    }
    /* Bounded by cap: each turn copies a line or stops. */
    for (;;) {
        size_t left = l->line_len - l->line_off;

        if (left == 0) {
            int r;

            if (l->err != 0)
                break;
            r = ls_next_line(l);
            if (r < 0) {
                /* The lines before the failure still go out; the failure
                 * is the answer to the next call. */
                l->err = errno != 0 ? errno : EIO;
                break;
            }
            if (r == 0)
                break;
            continue;
        }
        if (left > cap - n) {
            if (n > 0)
                break;
            /* A line longer than the whole buffer: hand it out in pieces. */
            left = cap;
        }
        memcpy(buf + n, l->line + l->line_off, left);
        l->line_off += left;
        n += left;
        if (n == cap)
            break;
    }
    if (n == 0 && l->err != 0) {
        errno = l->err;
        return -1;
    }
    return (ssize_t)n;
}

const char *listing_unsorted(const listing *l)
{
    return l->unsorted_why;
}

void listing_close(listing *l)
{
    int saved = errno;

    if (l == NULL)
        return;
    if (l->d != NULL)
        closedir(l->d);
    ls_names_free(&l->names);
    free(l);
    errno = saved;
}

/* ---- whole listings through a callback ---- */

static int ls_run(const vfs *v, const char *path, listing_kind kind, const listing_opts *o,
                  listing_emit emit, void *ctx)
{
    const char *line;
    ssize_t n;
    listing *l = listing_open(v, path, kind, o);

    if (l == NULL)
        return -1;
    /* Bounded by the listing: each turn takes one line. */
    for (;;) {
        n = listing_next(l, &line);
        if (n <= 0)
            break;
        errno = 0;
        if (emit(ctx, line, (size_t)n) < 0) {
            if (errno == 0)
                errno = EPIPE;
            n = -1;
            break;
        }
    }
    listing_close(l);
    return n < 0 ? -1 : 0;
}

int listing_list(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx)
{
    return ls_run(v, path, LISTING_LIST, o, emit, ctx);
}

int listing_nlst(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx)
{
    return ls_run(v, path, LISTING_NLST, o, emit, ctx);
}

int listing_mlsd(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx)
{
    return ls_run(v, path, LISTING_MLSD, o, emit, ctx);
}

int listing_mlst(const vfs *v, const char *path, const listing_opts *o, char *buf, size_t size)
{
    char norm[VFS_PATH_MAX];
    struct stat st;
    struct stat tst;
    unsigned facts = LISTING_FACTS_ALL & ~(o ? o->omit_facts : 0u);

    if (vfs_normalize(v, path, norm, sizeof norm) < 0)
        return -1;
    if (ls_bad_name(norm)) {
        errno = EINVAL;
        return -1;
    }
    if (vfs_lstat(v, norm, &st) < 0)
        return -1;
    /* As in MLSD: a link that stays inside shows its target's facts. */
    if (S_ISLNK(st.st_mode) && vfs_stat(v, norm, &tst) == 0)
        st = tst;
    return listing_format_facts(&st, NULL, norm, o ? o->writable : false, facts, buf, size);
}
