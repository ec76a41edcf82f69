/*
 * test_ftpd_listing.c - LIST lines parsed back the way clients parse them,
 * MLSD/MLST facts and their selection, NLST names, symlink handling, a
 * 10,000-entry listing, the pull iterator with buffers of every size, and
 * the listing memory budget (unsorted but complete listings when it is
 * used up).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/listbudget.c"
#include "../../ftpd/listfmt.c"
#include "../../ftpd/listing.c"
#include "../../ftpd/path.c"

#include <ftw.h>
#include <regex.h>
#include <sys/time.h>

/* 2026-11-25 18:40:00 UTC, and "now" 80 minutes later. */
static time_t t_recent;
static time_t t_now;

typedef struct fixture {
    char base[64];
    char root[128];
    vfs v;
} fixture;

/* Collects emitted output; fails the listing after fail_after lines. */
typedef struct sink {
    char *buf;
    size_t len;
    size_t cap;
    int lines;
    int fail_after;
} sink;

static int sink_emit(void *ctx, const char *buf, size_t n)
{
    sink *s = ctx;
    if (s->fail_after > 0 && s->lines >= s->fail_after) {
        errno = ECONNRESET;
        return -1;
    }
    /* One line per call, ending in CRLF. */
    assert_true(n >= 2);
    assert_memory_equal(buf + n - 2, "\r\n", 2);
    assert_null(memchr(buf, '\n', n - 1));
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        s->buf = realloc(s->buf, cap);
        assert_non_null(s->buf);
        s->cap = cap;
    }
    memcpy(s->buf + s->len, buf, n);
    s->len += n;
    s->buf[s->len] = '\0';
    s->lines++;
    return 0;
}

static void sink_reset(sink *s)
{
    free(s->buf);
    memset(s, 0, sizeof *s);
}

/* The n-th line (0-based) of the output without CRLF, into out. */
static void sink_line(const sink *s, int n, char *out, size_t size)
{
    const char *p = s->buf;
    for (int i = 0; i < n; i++) {
        p = strstr(p, "\r\n");
        assert_non_null(p);
        p += 2;
    }
    const char *e = strstr(p, "\r\n");
    assert_non_null(e);
    size_t len = (size_t)(e - p);
    assert_true(len < size);
    memcpy(out, p, len);
    out[len] = '\0';
}

static void put_file(const fixture *fx, const char *name, size_t size, mode_t mode, time_t mtime)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fx->root, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(fchmod(fd, mode), 0);
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(futimens(fd, ts), 0);
    close(fd);
}

static void put_link(const fixture *fx, const char *target, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fx->root, name);
    assert_int_equal(symlink(target, p), 0);
}

/* A memory file system when there is one: creating thousands of files on a
 * journaled disk can take seconds. */
static const char *scratch_dir(void)
{
    return access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    char p[512];
    assert_non_null(fx);
    struct tm tm = {
        .tm_year = 2026 - 1900, .tm_mon = 10, .tm_mday = 25, .tm_hour = 18, .tm_min = 40};
    t_recent = timegm(&tm);
    t_now = t_recent + 80 * 60;
    snprintf(fx->base, sizeof fx->base, "%s/ftpd-listing-XXXXXX", scratch_dir());
    assert_non_null(mkdtemp(fx->base));
    snprintf(fx->root, sizeof fx->root, "%s/root", fx->base);
    assert_int_equal(mkdir(fx->root, 0755), 0);
    snprintf(p, sizeof p, "%s/outside.txt", fx->base);
    put_file(fx, "../outside.txt", 99, 0644, t_recent);
    put_file(fx, "b.txt", 1234, 0644, t_recent);
    put_file(fx, ".hidden", 1, 0600, t_recent);
    struct tm old = {.tm_year = 2020 - 1900, .tm_mon = 0, .tm_mday = 5, .tm_hour = 12};
    put_file(fx, "old.txt", 7, 0640, timegm(&old));
    put_file(fx, "with space.txt", 0, 0644, t_recent);
    put_file(fx, "bad\r\nname", 3, 0644, t_recent);
    snprintf(p, sizeof p, "%s/a_dir", fx->root);
    assert_int_equal(mkdir(p, 0755), 0);
    struct timespec ts[2] = {{t_recent, 0}, {t_recent, 0}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    put_link(fx, "b.txt", "link_in");
    put_link(fx, "a_dir", "link_dir");
    put_link(fx, "../outside.txt", "link_out");
    put_link(fx, "/etc", "link_etc");
    assert_int_equal(vfs_open_root(&fx->v, fx->root), 0);
    *state = fx;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    vfs_close(&fx->v);
    nftw(fx->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* ---- LIST parsed back ---- */

typedef struct ls_fields {
    char mode[11];
    long nlink;
    char owner[64];
    char group[64];
    long long size;
    char month[4];
    int day;
    char timeyear[6];
    char name[512];
} ls_fields;

/* Parses an "ls -l" line as FTP clients do: nine fields, the ninth (the
 * name, maybe with " -> target") running to the end of the line. */
static void parse_ls(const char *line, ls_fields *f)
{
    static const char *const re =
        "^([-dlcbps][-r][-w][-xsS][-r][-w][-xsS][-r][-w][-xtT]) +([0-9]+) +([^ ]+) +([^ ]+) +"
        "([0-9]+) +(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +([0-9]{1,2}) +"
        "([0-9]{2}:[0-9]{2}|[0-9]{4}) (.+)$";
    regex_t rx;
    regmatch_t m[10];
    assert_int_equal(regcomp(&rx, re, REG_EXTENDED), 0);
    int rc = regexec(&rx, line, 10, m, 0);
    regfree(&rx);
    if (rc != 0)
        fail_msg("unparsable LIST line: \"%s\"", line);
    char tmp[32];
#define FIELD(i, dst)                                                                              \
    do {                                                                                           \
        size_t n_ = (size_t)(m[i].rm_eo - m[i].rm_so);                                             \
        assert_true(n_ < sizeof(dst));                                                             \
        memcpy((dst), line + m[i].rm_so, n_);                                                      \
        (dst)[n_] = '\0';                                                                          \
    } while (0)
    FIELD(1, f->mode);
    FIELD(2, tmp);
    f->nlink = strtol(tmp, NULL, 10);
    FIELD(3, f->owner);
    FIELD(4, f->group);
    FIELD(5, tmp);
    f->size = strtoll(tmp, NULL, 10);
    FIELD(6, f->month);
    FIELD(7, tmp);
    f->day = (int)strtol(tmp, NULL, 10);
    FIELD(8, f->timeyear);
    FIELD(9, f->name);
#undef FIELD
}

static void expected_owner(uid_t uid, gid_t gid, char *owner, char *group)
{
    struct passwd *pw = getpwuid(uid);
    struct group *gr = getgrgid(gid);
    if (pw != NULL)
        snprintf(owner, 64, "%s", pw->pw_name);
    else
        snprintf(owner, 64, "%u", (unsigned)uid);
    if (gr != NULL)
        snprintf(group, 64, "%s", gr->gr_name);
    else
        snprintf(group, 64, "%u", (unsigned)gid);
}

static void test_list_format(void **state)
{
    fixture *fx = *state;
    listing_opts o = {.show_hidden = false, .writable = false, .now = t_now};
    sink s = {0};
    char line[1024];
    char owner[64];
    char group[64];
    ls_fields f;
    expected_owner(geteuid(), getegid(), owner, group);
    assert_int_equal(listing_list(&fx->v, "/", &o, sink_emit, &s), 0);
    /* Sorted by name, no dot files, no "." / "..", no CR/LF name. */
    static const char *const names[] = {
        "a_dir",    "b.txt",   "link_dir -> a_dir", "link_etc", "link_in -> b.txt",
        "link_out", "old.txt", "with space.txt"};
    assert_int_equal(s.lines, 8);
    for (int i = 0; i < 8; i++) {
        sink_line(&s, i, line, sizeof line);
        parse_ls(line, &f);
        assert_string_equal(f.name, names[i]);
        assert_string_equal(f.owner, owner);
        assert_string_equal(f.group, group);
    }
    /* Exact layout of a recent file. */
    sink_line(&s, 1, line, sizeof line);
    char want[256];
    snprintf(want, sizeof want, "-rw-r--r--   1 %-8s %-8s     1234 Nov 25 18:40 b.txt", owner,
             group);
    assert_string_equal(line, want);
    sink_line(&s, 0, line, sizeof line);
    parse_ls(line, &f);
    assert_string_equal(f.mode, "drwxr-xr-x");
    assert_string_equal(f.timeyear, "18:40");
    /* An old file shows its year. */
    sink_line(&s, 6, line, sizeof line);
    parse_ls(line, &f);
    assert_string_equal(f.mode, "-rw-r-----");
    assert_int_equal(f.size, 7);
    assert_string_equal(f.month, "Jan");
    assert_int_equal(f.day, 5);
    assert_string_equal(f.timeyear, "2020");
    assert_non_null(strstr(line, "Jan  5  2020 old.txt"));
    /* Links: inside ones show the target; outside ones do not. */
    sink_line(&s, 4, line, sizeof line);
    parse_ls(line, &f);
    assert_int_equal(f.mode[0], 'l');
    sink_line(&s, 5, line, sizeof line);
    parse_ls(line, &f);
    assert_string_equal(f.name, "link_out");
    assert_int_equal(f.mode[0], 'l');
    assert_null(strstr(s.buf, "outside.txt"));
    assert_null(strstr(s.buf, "/etc"));
    sink_reset(&s);

    /* -a shows dot files; still never "." and "..". */
    o.show_hidden = true;
    assert_int_equal(listing_list(&fx->v, "", &o, sink_emit, &s), 0);
    assert_int_equal(s.lines, 9);
    sink_line(&s, 0, line, sizeof line);
    parse_ls(line, &f);
    assert_string_equal(f.name, ".hidden");
    assert_string_equal(f.mode, "-rw-------");
    sink_reset(&s);
}

static void test_list_single_and_errors(void **state)
{
    fixture *fx = *state;
    listing_opts o = {.now = t_now};
    sink s = {0};
    char line[1024];
    ls_fields f;
    assert_int_equal(listing_list(&fx->v, "b.txt", &o, sink_emit, &s), 0);
    assert_int_equal(s.lines, 1);
    sink_line(&s, 0, line, sizeof line);
    parse_ls(line, &f);
    assert_string_equal(f.name, "b.txt");
    assert_int_equal(f.size, 1234);
    sink_reset(&s);
    /* A link to the outside is described as a link, nothing of its target. */
    assert_int_equal(listing_list(&fx->v, "/link_etc", &o, sink_emit, &s), 0);
    assert_int_equal(s.lines, 1);
    sink_line(&s, 0, line, sizeof line);
    parse_ls(line, &f);
    assert_string_equal(f.name, "link_etc");
    assert_int_equal(f.mode[0], 'l');
    sink_reset(&s);
    /* A link to a directory inside lists that directory (empty). */
    assert_int_equal(listing_list(&fx->v, "link_dir", &o, sink_emit, &s), 0);
    assert_int_equal(s.lines, 0);
    sink_reset(&s);
    errno = 0;
    assert_int_equal(listing_list(&fx->v, "nope", &o, sink_emit, &s), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(listing_list(&fx->v, "link_etc/passwd", &o, sink_emit, &s), -1);
    assert_int_equal(errno, EXDEV);
    errno = 0;
    assert_int_equal(listing_nlst(&fx->v, "link_etc/", &o, sink_emit, &s), 0);
    assert_int_equal(s.lines, 1);
    assert_string_equal(s.buf, "link_etc\r\n");
    sink_reset(&s);
    /* A failing callback stops the listing with its errno. */
    s.fail_after = 2;
    errno = 0;
    assert_int_equal(listing_list(&fx->v, "/", &o, sink_emit, &s), -1);
    assert_int_equal(errno, ECONNRESET);
    assert_int_equal(s.lines, 2);
    sink_reset(&s);
}

static void test_nlst(void **state)
{
    fixture *fx = *state;
    listing_opts o = {.now = t_now};
    sink s = {0};
    assert_int_equal(listing_nlst(&fx->v, NULL, &o, sink_emit, &s), 0);
    assert_string_equal(s.buf, "a_dir\r\nb.txt\r\nlink_dir\r\nlink_etc\r\nlink_in\r\nlink_out\r\n"
                               "old.txt\r\nwith space.txt\r\n");
    sink_reset(&s);
    o.show_hidden = true;
    assert_int_equal(vfs_chdir(&fx->v, "a_dir"), 0);
    assert_int_equal(listing_nlst(&fx->v, "..", &o, sink_emit, &s), 0);
    assert_int_equal(strncmp(s.buf, ".hidden\r\na_dir\r\n", 16), 0);
    sink_reset(&s);
    assert_int_equal(listing_nlst(&fx->v, "../b.txt", &o, sink_emit, &s), 0);
    assert_string_equal(s.buf, "b.txt\r\n");
    sink_reset(&s);
}

/* ---- MLSD / MLST ---- */

static void unique_of(const fixture *fx, const char *name, char *out, size_t size)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", fx->root, name);
    assert_int_equal(stat(p, &st), 0);
    snprintf(out, size, "%llxg%llx", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
}

static void test_mlsd(void **state)
{
    fixture *fx = *state;
    listing_opts o = {.now = t_now};
    sink s = {0};
    char line[1024];
    char want[512];
    char uniq[64];
    assert_int_equal(listing_mlsd(&fx->v, "/", &o, sink_emit, &s), 0);
    /* cdir, then every entry including dot files, without the CR/LF name. */
    assert_int_equal(s.lines, 10);
    sink_line(&s, 0, line, sizeof line);
    assert_int_equal(strncmp(line, "type=cdir;modify=", 17), 0);
    assert_non_null(strstr(line, ";perm=el;"));
    assert_int_equal(strcmp(line + strlen(line) - 3, "; ."), 0);
    sink_line(&s, 1, line, sizeof line);
    unique_of(fx, ".hidden", uniq, sizeof uniq);
    snprintf(want, sizeof want, "type=file;size=1;modify=20261125184000;perm=r;unique=%s; .hidden",
             uniq);
    assert_string_equal(line, want);
    sink_line(&s, 2, line, sizeof line);
    unique_of(fx, "a_dir", uniq, sizeof uniq);
    snprintf(want, sizeof want, "type=dir;modify=20261125184000;perm=el;unique=%s; a_dir", uniq);
    assert_string_equal(line, want);
    sink_line(&s, 3, line, sizeof line);
    unique_of(fx, "b.txt", uniq, sizeof uniq);
    snprintf(want, sizeof want, "type=file;size=1234;modify=20261125184000;perm=r;unique=%s; b.txt",
             uniq);
    assert_string_equal(line, want);
    /* A link to a directory inside is presented as that directory. */
    sink_line(&s, 4, line, sizeof line);
    unique_of(fx, "a_dir", uniq, sizeof uniq);
    snprintf(want, sizeof want, "type=dir;modify=20261125184000;perm=el;unique=%s; link_dir", uniq);
    assert_string_equal(line, want);
    /* Links to the outside stay links and reveal nothing of the target. */
    sink_line(&s, 5, line, sizeof line);
    assert_int_equal(strncmp(line, "type=OS.unix=symlink;modify=", 28), 0);
    assert_non_null(strstr(line, ";perm=;"));
    assert_int_equal(strcmp(line + strlen(line) - 10, "; link_etc"), 0);
    sink_line(&s, 6, line, sizeof line);
    assert_int_equal(strncmp(line, "type=file;size=1234;", 20), 0);
    assert_int_equal(strcmp(line + strlen(line) - 9, "; link_in"), 0);
    sink_line(&s, 7, line, sizeof line);
    assert_int_equal(strncmp(line, "type=OS.unix=symlink;", 21), 0);
    assert_null(strstr(line, "size=99"));
    sink_line(&s, 8, line, sizeof line);
    assert_int_equal(strncmp(line, "type=file;size=7;modify=20200105120000;", 39), 0);
    sink_reset(&s);

    /* Writable sessions get the write letters. */
    o.writable = true;
    assert_int_equal(listing_mlsd(&fx->v, "/", &o, sink_emit, &s), 0);
    sink_line(&s, 2, line, sizeof line);
    assert_non_null(strstr(line, ";perm=cdeflmp;"));
    sink_line(&s, 3, line, sizeof line);
    assert_non_null(strstr(line, ";perm=adfrw;"));
    sink_line(&s, 5, line, sizeof line);
    assert_non_null(strstr(line, ";perm=df;"));
    sink_reset(&s);

    errno = 0;
    assert_int_equal(listing_mlsd(&fx->v, "b.txt", &o, sink_emit, &s), -1);
    assert_int_equal(errno, ENOTDIR);
    errno = 0;
    assert_int_equal(listing_mlsd(&fx->v, "link_etc", &o, sink_emit, &s), -1);
    assert_int_equal(errno, EXDEV);
    errno = 0;
    assert_int_equal(listing_mlsd(&fx->v, "nope", &o, sink_emit, &s), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(s.lines, 0);
}

static void test_mlst(void **state)
{
    fixture *fx = *state;
    listing_opts o = {.now = t_now, .writable = true};
    char buf[1024];
    char want[512];
    char uniq[64];
    unique_of(fx, "b.txt", uniq, sizeof uniq);
    assert_int_equal(vfs_chdir(&fx->v, "a_dir"), 0);
    assert_int_equal(listing_mlst(&fx->v, "../b.txt", &o, buf, sizeof buf), 0);
    snprintf(want, sizeof want,
             "type=file;size=1234;modify=20261125184000;perm=adfrw;unique=%s; /b.txt", uniq);
    assert_string_equal(buf, want);
    assert_int_equal(listing_mlst(&fx->v, NULL, &o, buf, sizeof buf), 0);
    assert_int_equal(strncmp(buf, "type=dir;modify=20261125184000;perm=cdeflmp;", 44), 0);
    assert_int_equal(strcmp(buf + strlen(buf) - 8, "; /a_dir"), 0);
    assert_int_equal(listing_mlst(&fx->v, "/link_etc", &o, buf, sizeof buf), 0);
    assert_int_equal(strncmp(buf, "type=OS.unix=symlink;", 21), 0);
    errno = 0;
    assert_int_equal(listing_mlst(&fx->v, "/b.txt", &o, buf, 20), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    errno = 0;
    assert_int_equal(listing_mlst(&fx->v, "/nope", &o, buf, sizeof buf), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(listing_mlst(&fx->v, "/link_etc/passwd", &o, buf, sizeof buf), -1);
    assert_int_equal(errno, EXDEV);
}

/* ---- formatting helpers ---- */

static void test_format_helpers(void **state)
{
    (void)state;
    char out[15];
    char buf[512];
    struct stat st;
    listing_format_time(0, out);
    assert_string_equal(out, "19700101000000");
    listing_format_time(t_recent, out);
    assert_string_equal(out, "20261125184000");
    listing_format_time((time_t)-1, out);
    assert_string_equal(out, "19691231235959");

    memset(&st, 0, sizeof st);
    st.st_mode = S_IFREG | 04755;
    st.st_nlink = 1;
    st.st_uid = 54321; /* no such user: numeric */
    st.st_gid = 54321;
    st.st_size = 5;
    st.st_mtime = t_recent - 100 * 86400;
    assert_int_equal(listing_format_ls(&st, "x", t_now, buf, sizeof buf), 0);
    assert_string_equal(buf, "-rwsr-xr-x   1 54321    54321           5 Aug 17 18:40 x");
    /* Beyond six months, or in the future, the year is shown. */
    st.st_mtime = t_now - 200 * 86400;
    assert_int_equal(listing_format_ls(&st, "x", t_now, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, " May  9  2026 x"));
    st.st_mtime = t_now + 2 * 86400;
    assert_int_equal(listing_format_ls(&st, "x", t_now, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, " Nov 27  2026 x"));
    st.st_mode = S_IFDIR | 01777;
    assert_int_equal(listing_format_ls(&st, "x", t_now, buf, sizeof buf), 0);
    assert_int_equal(strncmp(buf, "drwxrwxrwt ", 11), 0);
    st.st_mode = S_IFREG | 02644;
    assert_int_equal(listing_format_ls(&st, "x", t_now, buf, sizeof buf), 0);
    assert_int_equal(strncmp(buf, "-rw-r-Sr-- ", 11), 0);
    st.st_mode = S_IFIFO | 0600;
    assert_int_equal(listing_format_ls(&st, "x", t_now, buf, sizeof buf), 0);
    assert_int_equal(strncmp(buf, "prw------- ", 11), 0);
    errno = 0;
    assert_int_equal(listing_format_ls(&st, "x", t_now, buf, 20), -1);
    assert_int_equal(errno, ENAMETOOLONG);

    st.st_mode = S_IFREG | 0644;
    st.st_dev = 0x803;
    st.st_ino = 0x1a;
    st.st_size = 12;
    st.st_mtime = t_recent;
    assert_int_equal(listing_format_facts(&st, NULL, "f", true, LISTING_FACTS_ALL, buf, sizeof buf),
                     0);
    assert_string_equal(buf, "type=file;size=12;modify=20261125184000;perm=adfrw;unique=803g1a; f");
    st.st_mode = S_IFDIR | 0755;
    assert_int_equal(
        listing_format_facts(&st, "pdir", "..", false, LISTING_FACTS_ALL, buf, sizeof buf), 0);
    assert_string_equal(buf, "type=pdir;modify=20261125184000;perm=el;unique=803g1a; ..");

    /* The name store refuses to grow past its bound (the listing then
     * goes unsorted). */
    ls_names ns;
    memset(&ns, 0, sizeof ns);
    ns.count = LISTING_MAX_ENTRIES;
    errno = 0;
    assert_int_equal(ls_names_add(&ns, "x"), -1);
    assert_int_equal(errno, EOVERFLOW);
}

/* ---- a big directory ---- */

static int count_emit(void *ctx, const char *buf, size_t n)
{
    size_t *count = ctx;
    (void)buf;
    (void)n;
    (*count)++;
    return 0;
}

static double elapsed(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/* A directory dir under the root with n empty files "f00000".."f<n-1>",
 * created in an order unlike the sorted one. */
static void make_numbered(const fixture *fx, const char *dir, int n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fx->root, dir);
    assert_int_equal(mkdir(p, 0755), 0);
    int dfd = open(p, O_PATH | O_DIRECTORY);
    assert_true(dfd >= 0);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%05d", (i * 7919) % n);
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    close(dfd);
}

static void test_big_directory(void **state)
{
    fixture *fx = *state;
    enum { N = 10000 };
    make_numbered(fx, "big", N);
    listing_opts o = {.now = t_now};
    size_t count = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(listing_list(&fx->v, "big", &o, count_emit, &count), 0);
    double list_s = elapsed(&t0);
    assert_int_equal(count, N);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    count = 0;
    assert_int_equal(listing_mlsd(&fx->v, "big", &o, count_emit, &count), 0);
    double mlsd_s = elapsed(&t0);
    assert_int_equal(count, N + 1);
    /* Generous bounds: sanitizer builds are several times slower. */
    if (list_s > 2.0 || mlsd_s > 2.0)
        fail_msg("10,000 entries took LIST %.3fs, MLSD %.3fs", list_s, mlsd_s);
    /* Sorted output. */
    sink s = {0};
    assert_int_equal(listing_nlst(&fx->v, "big", &o, sink_emit, &s), 0);
    assert_int_equal(s.lines, N);
    assert_int_equal(strncmp(s.buf, "f00000\r\nf00001\r\nf00002\r\n", 24), 0);
    assert_int_equal(strcmp(s.buf + s.len - 8, "f09999\r\n"), 0);
    sink_reset(&s);
}

/* ---- the iterator ---- */

/* The whole listing by listing_read with buffers of cap bytes. Checks that
 * a read never ends inside a line unless that line alone exceeds cap, and
 * then the reads that follow start with the rest of that line. */
static void read_all(listing *l, size_t cap, sink *out)
{
    char *buf = malloc(cap);
    bool inside = false; /* the last read ended inside a line */
    assert_non_null(buf);
    for (;;) {
        ssize_t n = listing_read(l, buf, cap);
        assert_true(n >= 0);
        if (n == 0)
            break;
        assert_true((size_t)n <= cap);
        /* LF only ever ends a line here (names with CR or LF are not
         * listed). */
        bool ends_line = buf[n - 1] == '\n';
        if (!ends_line) {
            /* Only a line longer than the buffer is cut, and then the read
             * holds nothing but a piece of that line. */
            assert_int_equal((size_t)n, cap);
            assert_null(memchr(buf, '\n', (size_t)n));
        }
        inside = !ends_line;
        if (out->len + (size_t)n + 1 > out->cap) {
            out->cap = (out->len + (size_t)n + 1) * 2;
            out->buf = realloc(out->buf, out->cap);
            assert_non_null(out->buf);
        }
        memcpy(out->buf + out->len, buf, (size_t)n);
        out->len += (size_t)n;
        out->buf[out->len] = '\0';
    }
    assert_false(inside);
    /* At the end it stays at the end. */
    assert_int_equal(listing_read(l, buf, cap), 0);
    free(buf);
}

static void test_iterator_buffers(void **state)
{
    fixture *fx = *state;
    listing_opts o = {.now = t_now};
    sink whole = {0};
    char line[1024];
    char buf[LISTING_LINE_MAX];
    assert_int_equal(listing_list(&fx->v, "/", &o, sink_emit, &whole), 0);
    assert_int_equal(whole.lines, 8);
    /* The first two lines' lengths, CRLF included. */
    size_t len0 = (size_t)(strstr(whole.buf, "\r\n") + 2 - whole.buf);
    sink_line(&whole, 1, line, sizeof line);
    size_t len1 = strlen(line) + 2;

    /* A buffer exactly one line long gets exactly that line, one that
     * holds two lines minus a byte still only whole lines. */
    listing *l = listing_open(&fx->v, "/", LISTING_LIST, &o);
    assert_non_null(l);
    assert_null(listing_unsorted(l));
    assert_int_equal(listing_read(l, buf, len0), (ssize_t)len0);
    assert_memory_equal(buf, whole.buf, len0);
    assert_int_equal(listing_read(l, buf, len1 + 5), (ssize_t)len1);
    assert_memory_equal(buf, whole.buf + len0, len1);
    listing_close(l);

    l = listing_open(&fx->v, "/", LISTING_LIST, &o);
    assert_non_null(l);
    assert_int_equal(listing_read(l, buf, len0 + len1), (ssize_t)(len0 + len1));
    assert_memory_equal(buf, whole.buf, len0 + len1);
    errno = 0;
    assert_int_equal(listing_read(l, buf, 0), -1);
    assert_int_equal(errno, EINVAL);
    listing_close(l);

    /* Any buffer size gives the same bytes: tiny ones cut every line into
     * pieces, odd ones split between lines, big ones take everything. */
    static const size_t caps[] = {1, 2, 7, 10, 61, 100, 333, 4096, LISTING_LINE_MAX, 1 << 20};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        sink got = {0};
        l = listing_open(&fx->v, "/", LISTING_LIST, &o);
        assert_non_null(l);
        read_all(l, caps[i], &got);
        listing_close(l);
        assert_int_equal(got.len, whole.len);
        assert_memory_equal(got.buf, whole.buf, whole.len);
        sink_reset(&got);
    }

    /* listing_next after a read that stopped inside a line gives the rest
     * of that line, then whole lines. */
    const char *p;
    l = listing_open(&fx->v, "/", LISTING_LIST, &o);
    assert_non_null(l);
    assert_int_equal(listing_read(l, buf, 5), 5);
    assert_int_equal(listing_next(l, &p), (ssize_t)(len0 - 5));
    assert_memory_equal(p, whole.buf + 5, len0 - 5);
    assert_int_equal(listing_next(l, &p), (ssize_t)len1);
    assert_memory_equal(p, whole.buf + len0, len1);
    listing_close(l);
    listing_close(NULL);
    sink_reset(&whole);
}

static void test_iterator_empty_and_errors(void **state)
{
    fixture *fx = *state;
    listing_opts o = {.now = t_now};
    char buf[64];
    const char *p;
    listing *l;

    /* An empty directory lists fine: nothing, or MLSD's cdir line. */
    l = listing_open(&fx->v, "a_dir", LISTING_LIST, &o);
    assert_non_null(l);
    assert_int_equal(listing_read(l, buf, sizeof buf), 0);
    assert_int_equal(listing_next(l, &p), 0);
    listing_close(l);
    l = listing_open(&fx->v, "a_dir", LISTING_MLSD, &o);
    assert_non_null(l);
    ssize_t n = listing_next(l, &p);
    assert_true(n > 0);
    assert_int_equal(strncmp(p, "type=cdir;", 10), 0);
    assert_memory_equal(p + n - 5, "; .\r\n", 5);
    assert_int_equal(listing_next(l, &p), 0);
    listing_close(l);

    /* Errors about the path come from listing_open, before any line. */
    errno = 0;
    assert_null(listing_open(&fx->v, "nope", LISTING_NLST, &o));
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_null(listing_open(&fx->v, "b.txt", LISTING_MLSD, &o));
    assert_int_equal(errno, ENOTDIR);
    errno = 0;
    assert_null(listing_open(&fx->v, "link_etc/passwd", LISTING_LIST, &o));
    assert_int_equal(errno, EXDEV);
    /* A file is its own one-line listing. */
    l = listing_open(&fx->v, "b.txt", LISTING_NLST, &o);
    assert_non_null(l);
    assert_int_equal(listing_read(l, buf, sizeof buf), 7);
    assert_memory_equal(buf, "b.txt\r\n", 7);
    assert_int_equal(listing_read(l, buf, sizeof buf), 0);
    listing_close(l);
}

/* ---- MLSx fact selection ---- */

static void test_fact_mask(void **state)
{
    fixture *fx = *state;
    listing_opts o = {.now = t_now};
    sink s = {0};
    char line[1024];
    char want[512];
    char uniq[64];
    char buf[512];

    /* OPTS MLST type;perm; */
    o.omit_facts = LISTING_FACTS_ALL & ~(LISTING_FACT_TYPE | LISTING_FACT_PERM);
    assert_int_equal(listing_mlsd(&fx->v, "/", &o, sink_emit, &s), 0);
    assert_int_equal(s.lines, 10);
    sink_line(&s, 0, line, sizeof line);
    assert_string_equal(line, "type=cdir;perm=el; .");
    sink_line(&s, 3, line, sizeof line);
    assert_string_equal(line, "type=file;perm=r; b.txt");
    sink_line(&s, 5, line, sizeof line);
    assert_string_equal(line, "type=OS.unix=symlink;perm=; link_etc");
    sink_reset(&s);

    /* size;unique; : a directory has no size fact. */
    o.omit_facts = LISTING_FACTS_ALL & ~(LISTING_FACT_SIZE | LISTING_FACT_UNIQUE);
    assert_int_equal(listing_mlsd(&fx->v, "/", &o, sink_emit, &s), 0);
    sink_line(&s, 2, line, sizeof line);
    unique_of(fx, "a_dir", uniq, sizeof uniq);
    snprintf(want, sizeof want, "unique=%s; a_dir", uniq);
    assert_string_equal(line, want);
    sink_line(&s, 3, line, sizeof line);
    unique_of(fx, "b.txt", uniq, sizeof uniq);
    snprintf(want, sizeof want, "size=1234;unique=%s; b.txt", uniq);
    assert_string_equal(line, want);
    sink_reset(&s);

    /* No facts at all: " name" (RFC 3659 7.2). */
    o.omit_facts = LISTING_FACTS_ALL;
    assert_int_equal(listing_mlsd(&fx->v, "/", &o, sink_emit, &s), 0);
    sink_line(&s, 0, line, sizeof line);
    assert_string_equal(line, " .");
    sink_line(&s, 3, line, sizeof line);
    assert_string_equal(line, " b.txt");
    sink_reset(&s);

    /* MLST takes the same selection. */
    o.omit_facts = LISTING_FACTS_ALL & ~LISTING_FACT_MODIFY;
    assert_int_equal(listing_mlst(&fx->v, "/b.txt", &o, buf, sizeof buf), 0);
    assert_string_equal(buf, "modify=20261125184000; /b.txt");
    /* LIST and NLST do not care. */
    o.omit_facts = LISTING_FACTS_ALL;
    assert_int_equal(listing_nlst(&fx->v, "b.txt", &o, sink_emit, &s), 0);
    assert_string_equal(s.buf, "b.txt\r\n");
    sink_reset(&s);

    /* The formatter itself; a line that does not fit is refused whole. */
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_mode = S_IFREG | 0644;
    st.st_size = 12;
    st.st_mtime = t_recent;
    assert_int_equal(
        listing_format_facts(&st, NULL, "f", false, LISTING_FACT_SIZE, buf, sizeof buf), 0);
    assert_string_equal(buf, "size=12; f");
    assert_int_equal(
        listing_format_facts(&st, "cdir", ".", false, LISTING_FACT_TYPE, buf, sizeof buf), 0);
    assert_string_equal(buf, "type=cdir; .");
    errno = 0;
    assert_int_equal(listing_format_facts(&st, NULL, "f", false, LISTING_FACTS_ALL, buf, 30), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    errno = 0;
    assert_int_equal(listing_format_facts(&st, NULL, "name", false, 0, buf, 5), -1);
    assert_int_equal(errno, ENAMETOOLONG);
}

/* ---- the listing budget ---- */

/* Tests that set a small limit put back one no test reaches. */
#define NO_LIMIT (1ull << 40)

static void test_budget_counter(void **state)
{
    (void)state;
    assert_int_equal(listbudget_init(1000), 0);
    assert_int_equal(listbudget_used(), 0);
    assert_int_equal(listbudget_reserve(600), 0);
    assert_int_equal(listbudget_reserve(400), 0);
    assert_int_equal(listbudget_used(), 1000);
    errno = 0;
    assert_int_equal(listbudget_reserve(1), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(listbudget_used(), 1000);
    listbudget_release(400);
    errno = 0;
    assert_int_equal(listbudget_reserve(401), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(listbudget_reserve(400), 0);
    listbudget_release(1000);
    assert_int_equal(listbudget_used(), 0);
    /* A request larger than the whole limit never wraps around. */
    assert_int_equal(listbudget_reserve((size_t)-1), -1);
    assert_int_equal(listbudget_used(), 0);
    assert_int_equal(listbudget_init(NO_LIMIT), 0);
}

/* The names of an NLST, checked to be n distinct "fNNNNN" names, each of
 * 0..n-1 exactly once; returns whether they came sorted. */
static bool check_numbered(const sink *s, int n)
{
    bool sorted = true;
    char *seen = calloc((size_t)n, 1);
    const char *p = s->buf;
    int prev = -1;
    assert_non_null(seen);
    assert_int_equal(s->lines, n);
    for (int i = 0; i < n; i++) {
        char *end;
        assert_int_equal(p[0], 'f');
        long v = strtol(p + 1, &end, 10);
        assert_true(v >= 0 && v < n);
        assert_memory_equal(end, "\r\n", 2);
        assert_int_equal(seen[v], 0); /* never twice */
        seen[v] = 1;
        if (v < prev)
            sorted = false;
        prev = (int)v;
        p = end + 2;
    }
    free(seen);
    return sorted;
}

static void test_budget_listings(void **state)
{
    fixture *fx = *state;
    enum { N = 10000 };
    listing_opts o = {.now = t_now};
    sink s = {0};
    make_numbered(fx, "big", N);

    /* While open, a listing holds its names' memory, in whole chunks; it
     * gives all of it back when closed. */
    assert_int_equal(listbudget_init(NO_LIMIT), 0);
    assert_int_equal(listbudget_used(), 0);
    listing *a = listing_open(&fx->v, "big", LISTING_NLST, &o);
    assert_non_null(a);
    assert_null(listing_unsorted(a));
    unsigned long long held = listbudget_used();
    /* 10,000 names of 7 bytes, offsets and their sort scratch. */
    assert_true(held >= N * 7 + 2 * N * 4);
    assert_true(held <= 256 * 1024);
    assert_int_equal(held % LISTING_BUDGET_CHUNK, 0);

    /* With all of the budget in use, another listing of a directory is
     * still complete, in directory order, and holds nothing. */
    assert_int_equal(listbudget_init(held), 0);
    listing *b = listing_open(&fx->v, "big", LISTING_NLST, &o);
    assert_non_null(b);
    assert_non_null(listing_unsorted(b));
    assert_non_null(strstr(listing_unsorted(b), "budget"));
    assert_int_equal(listbudget_used(), held);
    read_all(b, 4096, &s);
    s.lines = 0;
    for (const char *p = s.buf; (p = strstr(p, "\r\n")) != NULL; p += 2)
        s.lines++;
    assert_false(check_numbered(&s, N));
    sink_reset(&s);
    listing_close(b);
    assert_int_equal(listbudget_used(), held);
    listing_close(a);
    assert_int_equal(listbudget_used(), 0);

    /* A budget of one chunk: small directories stay sorted, a large one
     * goes unsorted after its names outgrew the chunk, and no name is
     * lost or listed twice, in any format. */
    assert_int_equal(listbudget_init(LISTING_BUDGET_CHUNK), 0);
    assert_int_equal(listing_nlst(&fx->v, "/", &o, sink_emit, &s), 0);
    assert_int_equal(strncmp(s.buf, "a_dir\r\nb.txt\r\n", 14), 0);
    sink_reset(&s);
    assert_int_equal(listing_nlst(&fx->v, "big", &o, sink_emit, &s), 0);
    assert_false(check_numbered(&s, N));
    sink_reset(&s);
    size_t count = 0;
    assert_int_equal(listing_list(&fx->v, "big", &o, count_emit, &count), 0);
    assert_int_equal(count, N);
    assert_int_equal(listing_mlsd(&fx->v, "big", &o, sink_emit, &s), 0);
    assert_int_equal(s.lines, N + 1);
    assert_int_equal(strncmp(s.buf, "type=cdir;", 10), 0);
    /* Every MLSD name once: the names after "; " as an NLST would show. */
    sink names = {0};
    const char *p = strstr(s.buf, "\r\n") + 2;
    for (int i = 0; i < N; i++) {
        const char *name = strstr(p, "; ") + 2;
        const char *e = strstr(name, "\r\n");
        assert_int_equal(sink_emit(&names, name, (size_t)(e - name) + 2), 0);
        p = e + 2;
    }
    assert_false(check_numbered(&names, N));
    sink_reset(&names);
    sink_reset(&s);
    assert_int_equal(listbudget_used(), 0);

    /* A budget of nothing at all: even the smallest directory is listed. */
    assert_int_equal(listbudget_init(0), 0);
    assert_int_equal(listing_nlst(&fx->v, "/", &o, sink_emit, &s), 0);
    assert_int_equal(s.lines, 9); /* the eight names of setup() and "big" */
    sink_reset(&s);
    assert_int_equal(listbudget_init(NO_LIMIT), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_single_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nlst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mlsd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mlst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_helpers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_empty_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fact_mask, setup, teardown),
        cmocka_unit_test(test_budget_counter),
        cmocka_unit_test_setup_teardown(test_budget_listings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
