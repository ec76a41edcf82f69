/*
 * listing.c - LIST, NLST, MLSD and MLST output.
 *
 * A directory is read once into memory (names only, bounded by
 * LISTING_MAX_ENTRIES and LISTING_MAX_NAME_BYTES), sorted by name in byte
 * order, and then each entry is looked at with fstatat(AT_SYMLINK_NOFOLLOW)
 * relative to the directory descriptor and emitted as one line, so memory
 * holds the names but never the formatted listing. Owner and group names are
 * looked up once per id and kept for the whole listing.
 *
 * Times: LIST dates and MLSx "modify" facts are both in UTC, so the two
 * formats agree with each other and with MDTM whatever the server's zone.
 *
 * Symlinks: a link is shown as "name -> target" (LIST) or with its target's
 * facts (MLSD) only when the target resolves beneath the session root; the
 * target text is read with readlinkat, never followed outside. Other links
 * are shown as links without their target (type=OS.unix=symlink in MLSx).
 */
#include "listing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Six months as ls(1) counts them: half of an average Gregorian year. */
#define LS_SIX_MONTHS ((time_t)31556952 / 2)
/* Timestamps this far in the future still count as recent (clock skew
 * between a client-set mtime and the server). */
#define LS_FUTURE_SLACK ((time_t)3600)
/* Owner and group names kept per listing, and their longest spelling. */
#define LS_ID_SLOTS 32
#define LS_ID_NAME_MAX 33
/* Scratch space for getpwuid_r / getgrgid_r; a bigger entry falls back to
 * the numeric id. */
#define LS_PWBUF_SIZE 8192
/* One formatted line: the fixed columns, a name and a symlink target. */
#define LS_LINE_MAX (256 + NAME_MAX + VFS_PATH_MAX)

typedef struct ls_ids {
    unsigned id[LS_ID_SLOTS];
    char name[LS_ID_SLOTS][LS_ID_NAME_MAX];
    int used;
    int next; /* slot replaced next once all are used */
} ls_ids;

typedef struct ls_names {
    char *arena; /* the names, NUL-separated */
    size_t arena_len;
    size_t arena_cap;
    size_t *offs;  /* offset of each name in arena */
    char **sorted; /* pointers into arena, sorted */
    size_t count;
    size_t cap;
} ls_names;

typedef enum ls_kind { LS_LIST, LS_NLST, LS_MLSD } ls_kind;

typedef struct ls_ctx {
    const vfs *v;
    ls_kind kind;
    bool show_hidden;
    bool writable;
    time_t now;
    listing_emit emit;
    void *emit_ctx;
    ls_ids users;
    ls_ids groups;
    char pwbuf[LS_PWBUF_SIZE];
    char dir[VFS_PATH_MAX];    /* normalised virtual path of the directory */
    char vpath[VFS_PATH_MAX];  /* scratch: virtual path of one entry */
    char target[VFS_PATH_MAX]; /* scratch: symlink text */
    char line[LS_LINE_MAX];
} ls_ctx;

static const char *const ls_months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Writes value as exactly width decimal digits (zero-padded). */
static char *ls_digits(char *p, int value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return p + width;
}

void listing_format_time(time_t t, char out[15])
{
    struct tm tm;
    /* Outside the years 0..9999 the fact would not be 14 digits; clamp. */
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0) {
        memcpy(out, "00000101000000", 15);
        return;
    }
    if (tm.tm_year + 1900 > 9999) {
        memcpy(out, "99991231235959", 15);
        return;
    }
    const int parts[6] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                          tm.tm_hour,        tm.tm_min,     tm.tm_sec};
    char *p = out;
    for (int i = 0; i < 6; i++)
        p = ls_digits(p, parts[i], i == 0 ? 4 : 2);
    *p = '\0';
}

/* Does a name contain bytes that would break a line-based listing? */
static bool ls_bad_name(const char *name)
{
    return strpbrk(name, "\r\n") != NULL;
}

/* A user or group name is used only if it is short and has no spaces or
 * control characters (a space would shift the columns clients parse). */
static bool ls_good_id_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= LS_ID_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* The name of user (or group) id into out; the numeric id if unknown. */
static void ls_lookup_id(bool user, unsigned id, char *out, size_t size, char *scratch,
                         size_t scratch_size)
{
    const char *found = NULL;
    if (scratch != NULL) {
        if (user) {
            struct passwd pw;
            struct passwd *res = NULL;
            if (getpwuid_r((uid_t)id, &pw, scratch, scratch_size, &res) == 0 && res != NULL)
                found = res->pw_name;
        } else {
            struct group gr;
            struct group *res = NULL;
            if (getgrgid_r((gid_t)id, &gr, scratch, scratch_size, &res) == 0 && res != NULL)
                found = res->gr_name;
        }
    }
    if (found != NULL && ls_good_id_name(found))
        snprintf(out, size, "%s", found);
    else
        snprintf(out, size, "%u", id);
}

static const char *ls_cached_id(ls_ctx *c, bool user, unsigned id)
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
    ls_lookup_id(user, id, ids->name[slot], LS_ID_NAME_MAX, c->pwbuf, sizeof c->pwbuf);
    return ids->name[slot];
}

/* The execute column: x or -, or the special bit's letter (lower case when
 * execute is also set, upper case when not). */
static char ls_exec_char(mode_t exec, mode_t special, char letter)
{
    if (special)
        return (char)(exec ? letter : letter - 'a' + 'A');
    return (char)(exec ? 'x' : '-');
}

static void ls_mode_string(mode_t m, char out[11])
{
    char t = '-';
    if (S_ISDIR(m))
        t = 'd';
    else if (S_ISLNK(m))
        t = 'l';
    else if (S_ISCHR(m))
        t = 'c';
    else if (S_ISBLK(m))
        t = 'b';
    else if (S_ISFIFO(m))
        t = 'p';
    else if (S_ISSOCK(m))
        t = 's';
    out[0] = t;
    out[1] = (m & S_IRUSR) ? 'r' : '-';
    out[2] = (m & S_IWUSR) ? 'w' : '-';
    out[3] = ls_exec_char(m & S_IXUSR, m & S_ISUID, 's');
    out[4] = (m & S_IRGRP) ? 'r' : '-';
    out[5] = (m & S_IWGRP) ? 'w' : '-';
    out[6] = ls_exec_char(m & S_IXGRP, m & S_ISGID, 's');
    out[7] = (m & S_IROTH) ? 'r' : '-';
    out[8] = (m & S_IWOTH) ? 'w' : '-';
    out[9] = ls_exec_char(m & S_IXOTH, m & S_ISVTX, 't');
    out[10] = '\0';
}

/* "Nov 25 18:40" within six months of now, else "Nov 25  2025" (UTC). */
static void ls_date(time_t t, time_t now, char out[16])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    if (t > now - LS_SIX_MONTHS && t <= now + LS_FUTURE_SLACK)
        snprintf(out, 16, "%s %2d %02d:%02d", ls_months[tm.tm_mon], tm.tm_mday, tm.tm_hour,
                 tm.tm_min);
    else
        snprintf(out, 16, "%s %2d %5d", ls_months[tm.tm_mon], tm.tm_mday,
                 tm.tm_year + 1900 > 99999 ? 99999 : tm.tm_year + 1900);
}

/* One "ls -l" line without CRLF; target may be NULL. */
static int ls_line(const struct stat *st, const char *owner, const char *group, const char *name,
                   const char *target, time_t now, char *buf, size_t size)
{
    char mode[11];
    char date[16];
    ls_mode_string(st->st_mode, mode);
    ls_date(st->st_mtime, now, date);
    int n = snprintf(buf, size, "%s %3lu %-8s %-8s %8lld %s %s%s%s", mode,
                     (unsigned long)st->st_nlink, owner, group, (long long)st->st_size, date, name,
                     target ? " -> " : "", target ? target : "");
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return n;
}

int listing_format_ls(const struct stat *st, const char *name, time_t now, char *buf, size_t size)
{
    char owner[LS_ID_NAME_MAX];
    char group[LS_ID_NAME_MAX];
    /* Heap scratch: sessions may run on small thread stacks. */
    char *scratch = malloc(LS_PWBUF_SIZE);
    if (now == 0)
        now = time(NULL);
    ls_lookup_id(true, (unsigned)st->st_uid, owner, sizeof owner, scratch, LS_PWBUF_SIZE);
    ls_lookup_id(false, (unsigned)st->st_gid, group, sizeof group, scratch, LS_PWBUF_SIZE);
    free(scratch);
    int n = ls_line(st, owner, group, name, NULL, now, buf, size);
    return n < 0 ? -1 : 0;
}

/* The rwx bits that apply to this process for st (the owner, group or other
 * class, as the kernel chooses it; root may read and write anything). */
static unsigned ls_access_bits(const struct stat *st)
{
    uid_t euid = geteuid();
    unsigned m = (unsigned)st->st_mode;
    if (euid == 0)
        return 6u | ((m & 0111) ? 1u : 0u);
    if (st->st_uid == euid)
        return (m >> 6) & 7u;
    if (st->st_gid == getegid())
        return (m >> 3) & 7u;
    return m & 7u;
}

static const char *ls_type_fact(const struct stat *st)
{
    if (S_ISDIR(st->st_mode))
        return "dir";
    if (S_ISREG(st->st_mode))
        return "file";
    if (S_ISLNK(st->st_mode))
        return "OS.unix=symlink";
    if (S_ISFIFO(st->st_mode))
        return "OS.unix=fifo";
    if (S_ISSOCK(st->st_mode))
        return "OS.unix=socket";
    if (S_ISCHR(st->st_mode))
        return "OS.unix=chr";
    return "OS.unix=blk";
}

int listing_format_facts(const struct stat *st, const char *type_override, const char *name,
                         bool writable, char *buf, size_t size)
{
    char modify[15];
    char perm[8];
    char sizefact[32] = "";
    size_t p = 0;
    const char *type = type_override ? type_override : ls_type_fact(st);
    unsigned acc = ls_access_bits(st);
    bool w = (acc & 2u) != 0;

    /* RFC 3659 7.5.5, letters in alphabetical order. */
    if (S_ISDIR(st->st_mode)) {
        if (writable && w)
            perm[p++] = 'c';
        if (writable)
            perm[p++] = 'd';
        if (acc & 1u)
            perm[p++] = 'e';
        if (writable)
            perm[p++] = 'f';
        if (acc & 4u)
            perm[p++] = 'l';
        if (writable && w) {
            perm[p++] = 'm';
            perm[p++] = 'p';
        }
    } else if (S_ISREG(st->st_mode)) {
        if (writable && w)
            perm[p++] = 'a';
        if (writable) {
            perm[p++] = 'd';
            perm[p++] = 'f';
        }
        if (acc & 4u)
            perm[p++] = 'r';
        if (writable && w)
            perm[p++] = 'w';
        snprintf(sizefact, sizeof sizefact, "size=%lld;", (long long)st->st_size);
    } else if (writable) {
        /* A link or special file can only be deleted or renamed. */
        perm[p++] = 'd';
        perm[p++] = 'f';
    }
    perm[p] = '\0';
    listing_format_time(st->st_mtime, modify);
    int n = snprintf(buf, size, "type=%s;%smodify=%s;perm=%s;unique=%llxg%llx; %s", type, sizefact,
                     modify, perm, (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
                     name);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* ---- reading a directory ---- */

static void ls_names_free(ls_names *ns)
{
    free(ns->arena);
    free(ns->offs);
    free(ns->sorted);
    memset(ns, 0, sizeof *ns);
}

static int ls_names_add(ls_names *ns, const char *name)
{
    size_t n = strlen(name) + 1;
    if (ns->count >= LISTING_MAX_ENTRIES || ns->arena_len + n > LISTING_MAX_NAME_BYTES) {
        errno = ENOBUFS;
        return -1;
    }
    if (ns->arena_len + n > ns->arena_cap) {
        size_t cap = ns->arena_cap ? ns->arena_cap * 2 : 16384;
        while (cap < ns->arena_len + n)
            cap *= 2;
        char *a = realloc(ns->arena, cap);
        if (a == NULL)
            return -1;
        ns->arena = a;
        ns->arena_cap = cap;
    }
    if (ns->count == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 256;
        size_t *o = realloc(ns->offs, cap * sizeof *o);
        if (o == NULL)
            return -1;
        ns->offs = o;
        ns->cap = cap;
    }
    memcpy(ns->arena + ns->arena_len, name, n);
    ns->offs[ns->count++] = ns->arena_len;
    ns->arena_len += n;
    return 0;
}

static int ls_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Should this directory entry appear at all? */
static bool ls_wanted(const ls_ctx *c, const char *name)
{
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    if (ls_bad_name(name))
        return false;
    /* MLSD lists every entry; LIST and NLST hide dot files unless -a. */
    if (c->kind != LS_MLSD && name[0] == '.' && !c->show_hidden)
        return false;
    return true;
}

static int ls_read_names(ls_ctx *c, DIR *d, ls_names *ns)
{
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0)
                return -1;
            break;
        }
        if (ls_wanted(c, e->d_name) && ls_names_add(ns, e->d_name) < 0)
            return -1;
    }
    if (ns->count == 0)
        return 0;
    ns->sorted = malloc(ns->count * sizeof *ns->sorted);
    if (ns->sorted == NULL)
        return -1;
    for (size_t i = 0; i < ns->count; i++)
        ns->sorted[i] = ns->arena + ns->offs[i];
    qsort(ns->sorted, ns->count, sizeof *ns->sorted, ls_cmp);
    return 0;
}

/* ---- emitting entries ---- */

static int ls_emit_line(ls_ctx *c, int n)
{
    /* ls_line and the facts leave room for CRLF: LS_LINE_MAX exceeds both. */
    if (n < 0 || (size_t)n + 3 > sizeof c->line) {
        errno = ENAMETOOLONG;
        return -1;
    }
    c->line[n] = '\r';
    c->line[n + 1] = '\n';
    c->line[n + 2] = '\0';
    errno = 0;
    if (c->emit(c->emit_ctx, c->line, (size_t)n + 2) < 0) {
        if (errno == 0)
            errno = EPIPE;
        return -1;
    }
    return 0;
}

/* If the link dfd/name resolves beneath the root, stat its target into tst
 * and return true. The check goes through vfs_stat from the root, so a link
 * with ".." that stays inside the root is followed correctly. */
static bool ls_link_inside(ls_ctx *c, const char *name, struct stat *tst)
{
    int n = snprintf(c->vpath, sizeof c->vpath, "%s%s%s", c->dir, c->dir[1] ? "/" : "", name);
    if (n < 0 || (size_t)n >= sizeof c->vpath)
        return false;
    return vfs_stat(c->v, c->vpath, tst) == 0;
}

/* The link's text into c->target if it is fit to show; NULL otherwise. */
static const char *ls_link_text(ls_ctx *c, int dfd, const char *name)
{
    ssize_t n = readlinkat(dfd, name, c->target, sizeof c->target);
    if (n <= 0 || (size_t)n >= sizeof c->target)
        return NULL;
    c->target[n] = '\0';
    if (ls_bad_name(c->target))
        return NULL;
    return c->target;
}

/* Emits one entry, st being its lstat; dfd is its directory or -1 when the
 * entry was given directly (then symlink targets are not shown). */
static int ls_entry(ls_ctx *c, int dfd, const char *name, const struct stat *st)
{
    int n;
    struct stat tst;
    if (ls_bad_name(name))
        return 0;
    switch (c->kind) {
    case LS_NLST:
        n = snprintf(c->line, sizeof c->line, "%s", name);
        break;
    case LS_LIST: {
        const char *target = NULL;
        if (S_ISLNK(st->st_mode) && dfd >= 0 && ls_link_inside(c, name, &tst))
            target = ls_link_text(c, dfd, name);
        n = ls_line(st, ls_cached_id(c, true, (unsigned)st->st_uid),
                    ls_cached_id(c, false, (unsigned)st->st_gid), name, target, c->now, c->line,
                    sizeof c->line - 2);
        break;
    }
    case LS_MLSD:
    default: {
        /* A link that stays inside is presented as what it points to, so
         * clients can enter linked directories; others stay links. */
        const struct stat *use = st;
        if (S_ISLNK(st->st_mode) && dfd >= 0 && ls_link_inside(c, name, &tst))
            use = &tst;
        if (listing_format_facts(use, NULL, name, c->writable, c->line, sizeof c->line - 2) < 0)
            return -1;
        n = (int)strlen(c->line);
        break;
    }
    }
    return ls_emit_line(c, n);
}

static ls_ctx *ls_ctx_new(const vfs *v, ls_kind kind, const listing_opts *o, listing_emit emit,
                          void *ctx)
{
    ls_ctx *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->v = v;
    c->kind = kind;
    c->show_hidden = o ? o->show_hidden : false;
    c->writable = o ? o->writable : false;
    c->now = (o && o->now != 0) ? o->now : time(NULL);
    c->emit = emit;
    c->emit_ctx = ctx;
    return c;
}

/* Lists the entries of the open directory d. */
static int ls_directory(ls_ctx *c, DIR *d)
{
    ls_names ns;
    int rc = -1;
    int dfd = dirfd(d);
    memset(&ns, 0, sizeof ns);
    if (c->kind == LS_MLSD) {
        struct stat st;
        if (fstat(dfd, &st) < 0)
            goto out;
        if (listing_format_facts(&st, "cdir", ".", c->writable, c->line, sizeof c->line - 2) < 0)
            goto out;
        if (ls_emit_line(c, (int)strlen(c->line)) < 0)
            goto out;
    }
    if (ls_read_names(c, d, &ns) < 0)
        goto out;
    for (size_t i = 0; i < ns.count; i++) {
        struct stat st;
        /* Never follows the entry: a link is reported as a link. */
        if (fstatat(dfd, ns.sorted[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed since readdir */
        if (ls_entry(c, dfd, ns.sorted[i], &st) < 0)
            goto out;
    }
    rc = 0;
out:;
    int saved = errno;
    ls_names_free(&ns);
    errno = saved;
    return rc;
}

/* LIST, NLST and MLSD of path. */
static int ls_run(const vfs *v, const char *path, ls_kind kind, const listing_opts *o,
                  listing_emit emit, void *ctx)
{
    struct stat st;
    DIR *d = NULL;
    int rc = -1;
    ls_ctx *c = ls_ctx_new(v, kind, o, emit, ctx);
    if (c == NULL)
        return -1;
    if (vfs_normalize(v, path, c->dir, sizeof c->dir) < 0)
        goto out;
    int found = vfs_stat(v, c->dir, &st);
    if (found < 0 || !S_ISDIR(st.st_mode)) {
        if (kind == LS_MLSD) {
            if (found == 0)
                errno = ENOTDIR;
            goto out;
        }
        /* A single entry (a file, or a link that does not resolve inside):
         * described by lstat, named by its last component. */
        if (vfs_lstat(v, c->dir, &st) < 0)
            goto out;
        if (S_ISDIR(st.st_mode)) {
            errno = EACCES;
            goto out;
        }
        const char *base = strrchr(c->dir, '/') + 1;
        rc = ls_entry(c, -1, base, &st);
        goto out;
    }
    d = vfs_opendir(v, c->dir);
    if (d == NULL)
        goto out;
    rc = ls_directory(c, d);
out:;
    int saved = errno;
    if (d != NULL)
        closedir(d);
    free(c);
    errno = saved;
    return rc;
}

int listing_list(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx)
{
    return ls_run(v, path, LS_LIST, o, emit, ctx);
}

int listing_nlst(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx)
{
    return ls_run(v, path, LS_NLST, o, emit, ctx);
}

int listing_mlsd(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx)
{
    return ls_run(v, path, LS_MLSD, o, emit, ctx);
}

int listing_mlst(const vfs *v, const char *path, const listing_opts *o, char *buf, size_t size)
{
    char norm[VFS_PATH_MAX];
    struct stat st;
    struct stat tst;
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
    return listing_format_facts(&st, NULL, norm, o ? o->writable : false, buf, size);
}
