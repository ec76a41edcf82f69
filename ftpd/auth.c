/*
 * auth.c - the users file and crypt(3) password checks.
 */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "config.h"
#include "defs.h"
#include "secfile.h"

typedef struct account {
    char *name;
    char *hash;
    auth_account settings;
} account;

/* One load of the users file. A reload builds a new table and swaps it in;
 * a password check holds a reference to the table it looked in, so the old
 * table goes only when the last check using it is done. */
typedef struct auth_table {
    account *accounts;
    size_t naccounts;
    unsigned refs; /* under table_lock: the current pointer's and the checks' */
    unsigned gen;  /* the load it came from (shared_gen) */
} auth_table;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static auth_table *current;

/* Successful loads so far, in memory shared with forked session processes:
 * one forked before a reload finds its table older and reads the file
 * again before it checks a password, so a user removed from the file
 * cannot log in on a connection made before the reload. NULL when the
 * mapping failed (a session process then keeps the table of its fork). */
static atomic_uint *shared_gen;
static char table_path[PATH_MAX]; /* under table_lock */

/* Compared against when the user is unknown, so that the reply takes as long
 * as for a known user (a sha512crypt hash of a random string). */
static const char dummy_hash[] =
    "$6$sockservdummy$r3LHAVhxmbRoFwBj9KUh5Vg29fxedpeRgduqMZUAAdAmKgWsjvNosm/"
    "Ta2ORRMctYzEGkiT3ZRkOCAQZmlUY50";

bool auth_is_anonymous_name(const char *name)
{
    return strcasecmp(name, "anonymous") == 0 || strcasecmp(name, "ftp") == 0;
}

static void table_free(auth_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->naccounts; i++) {
        free(t->accounts[i].name);
        free(t->accounts[i].hash);
    }
    free(t->accounts);
    free(t);
}

static auth_table *table_get(void)
{
    auth_table *t;

    pthread_mutex_lock(&table_lock);
    t = current;
    if (t != NULL)
        t->refs++;
    pthread_mutex_unlock(&table_lock);
    return t;
}

static void table_put(auth_table *t)
{
    bool last;

    if (t == NULL)
        return;
    pthread_mutex_lock(&table_lock);
    last = --t->refs == 0;
    pthread_mutex_unlock(&table_lock);
    if (last)
        table_free(t);
}

/* Make t the table new checks use; the old one goes once unused. */
static void table_swap(auth_table *t)
{
    auth_table *old;

    if (t != NULL)
        t->refs = 1;
    pthread_mutex_lock(&table_lock);
    old = current;
    current = t;
    pthread_mutex_unlock(&table_lock);
    table_put(old);
}

void auth_free(void)
{
    table_swap(NULL);
}

size_t auth_count(void)
{
    auth_table *t = table_get();
    size_t n = t != NULL ? t->naccounts : 0;

    table_put(t);
    return n;
}

/* Privilege separation: a session process that has become its user
 * checks no password again, and keeps no other user's hash to be read. */
void auth_forget(void)
{
    auth_table *t = table_get();

    if (t != NULL) {
        for (size_t i = 0; i < t->naccounts; i++)
            if (t->accounts[i].hash != NULL)
                explicit_bzero(t->accounts[i].hash, strlen(t->accounts[i].hash));
    }
    table_put(t);
    auth_free();
}

/* A home must stay beneath the root: relative, no ".." component. */
static bool home_ok(const char *home)
{
    const char *p = home;

    if (*home == '/')
        return false;
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);

        if (len == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += len;
        if (*p == '/')
            p++;
    }
    return true;
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n >= FTPD_USER_MAX)
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

/* One key=value of a line's settings field into *acc. Returns NULL or the
 * problem. */
static const char *parse_setting(char *kv, auth_account *acc)
{
    char *val = strchr(kv, '=');
    unsigned long long n;

    if (val == NULL)
        return "settings must be key=value pairs separated by ','";
    *val++ = '\0';
    if (strcmp(kv, "run-as") == 0) {
        if (!name_ok(val) || strlen(val) >= sizeof(acc->run_as))
            return "run-as needs a system user name";
        snprintf(acc->run_as, sizeof(acc->run_as), "%s", val);
        return NULL;
    }
    if (config_parse_size(val, false, &n) < 0)
        return "a rate or quota must be a positive size (suffixes K, M, G)";
    if (strcmp(kv, "rate-down") == 0)
        acc->rate_down = n;
    else if (strcmp(kv, "rate-up") == 0)
        acc->rate_up = n;
    else if (strcmp(kv, "quota-bytes") == 0)
        acc->quota_bytes = n;
    else if (strcmp(kv, "quota-files") == 0)
        acc->quota_files = n;
    else
        return "unknown setting (known: run-as, rate-down, rate-up, quota-bytes, "
               "quota-files)";
    return NULL;
}

static char *dup_or_fail(const char *s, bool *fail)
{
    char *d = strdup(s);

    if (d == NULL)
        *fail = true;
    return d;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, esz, __VA_ARGS__);                                                           \
        return -1;                                                                                 \
    } while (0)

static int parse_line(auth_table *t, char *line, const char *path, unsigned lineno, char *err,
                      size_t esz)
{
    char *name = line, *hash, *home, *c2, *settings = NULL;
    account *grown;
    auth_account acc;
    bool fail = false;

    hash = strchr(name, ':');
    if (hash == NULL)
        FAIL("%s:%u: expected name:HASH[:home[:settings]]", path, lineno);
    *hash++ = '\0';
    /* crypt strings never contain ':', so the next one starts the home. */
    c2 = strchr(hash, ':');
    home = "";
    if (c2 != NULL) {
        *c2 = '\0';
        home = c2 + 1;
        settings = strchr(home, ':');
        if (settings != NULL)
            *settings++ = '\0';
    }
    if (!name_ok(name))
        FAIL("%s:%u: bad user name", path, lineno);
    if (hash[0] != '$' || strlen(hash) < 4)
        FAIL("%s:%u: user %s: password hash must be a crypt string such as 'openssl passwd -6' "
             "makes",
             path, lineno, name);
    if (!home_ok(home))
        FAIL("%s:%u: user %s: home must be relative to the root, without '..'", path, lineno, name);
    memset(&acc, 0, sizeof(acc));
    if (strlen(home) >= sizeof(acc.home))
        FAIL("%s:%u: user %s: home too long", path, lineno, name);
    memcpy(acc.home, home, strlen(home) + 1);
    for (char *kv = settings, *next; kv != NULL && *kv != '\0'; kv = next) {
        const char *why;

        next = strchr(kv, ',');
        if (next != NULL)
            *next++ = '\0';
        why = parse_setting(kv, &acc);
        if (why != NULL)
            FAIL("%s:%u: user %s: %s", path, lineno, name, why);
    }
    for (size_t i = 0; i < t->naccounts; i++)
        if (strcmp(t->accounts[i].name, name) == 0)
            FAIL("%s:%u: user %s listed twice", path, lineno, name);
    if (t->naccounts >= FTPD_USERS_MAX)
        FAIL("%s:%u: more than %d users", path, lineno, FTPD_USERS_MAX);
    grown = realloc(t->accounts, (t->naccounts + 1) * sizeof(*t->accounts));
    if (grown == NULL)
        FAIL("%s:%u: out of memory", path, lineno);
    t->accounts = grown;
    t->accounts[t->naccounts].name = dup_or_fail(name, &fail);
    t->accounts[t->naccounts].hash = dup_or_fail(hash, &fail);
    t->accounts[t->naccounts].settings = acc;
    t->naccounts++;
    if (fail)
        FAIL("%s:%u: out of memory", path, lineno);
    return 0;
}

#undef FAIL

/* Read the users file into a new table. Returns it, or NULL with the
 * problem in err ("FILE:LINE: problem", or "--users: FILE: problem"). */
static auth_table *table_load(const char *path, char *err, size_t esz)
{
    FILE *f;
    /* The file's bytes pass through these two buffers only, and both are
     * erased at the end (auth_forget: no hash may stay behind). */
    char iobuf[BUFSIZ];
    char line[FTPD_CONF_LINE_MAX];
    char why[256];
    unsigned lineno = 0;
    int read_err;
    auth_table *t;

    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, esz, "--users: %s: out of memory", path);
        return NULL;
    }
    f = secfile_fopen(path, why, sizeof(why));
    if (f == NULL) {
        snprintf(err, esz, "--users: %s: %s", path, why);
        goto fail;
    }
    setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line, *end;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, esz, "%s:%u: line too long", path, lineno);
            goto fail;
        }
        end = line + strlen(line);
        while (end > line &&
               (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (parse_line(t, p, path, lineno, err, esz) < 0)
            goto fail;
    }
    read_err = errno; /* from the fgets that failed, before ferror may change it */
    if (ferror(f)) {
        snprintf(err, esz, "%s: %s", path, strerror(read_err != 0 ? read_err : EIO));
        goto fail;
    }
    fclose(f);
    explicit_bzero(iobuf, sizeof(iobuf));
    explicit_bzero(line, sizeof(line));
    return t;
fail:
    if (f != NULL)
        fclose(f);
    explicit_bzero(iobuf, sizeof(iobuf));
    explicit_bzero(line, sizeof(line));
    table_free(t);
    return NULL;
}

/* Make t the table in use, a newer load than any before. */
static void table_publish(auth_table *t, const char *path)
{
    if (shared_gen == NULL) {
        void *m = mmap(NULL, sizeof(*shared_gen), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            shared_gen = m;
            atomic_init(shared_gen, 0);
        }
    }
    pthread_mutex_lock(&table_lock);
    snprintf(table_path, sizeof(table_path), "%s", path);
    pthread_mutex_unlock(&table_lock);
    t->gen = shared_gen != NULL ? atomic_load(shared_gen) + 1 : 0;
    /* Swapped in before the count says so: a check in another thread of
     * this process never finds its table older and loads the file again. */
    table_swap(t);
    if (shared_gen != NULL)
        atomic_store(shared_gen, t->gen);
}

/* A session process forked before the last reload: read the file again.
 * When that fails (the file is broken now, or out of this process's
 * reach) the table of the fork stays. */
static void refresh_if_stale(void)
{
    char err[PATH_MAX + 256], path[PATH_MAX];
    unsigned want;
    bool stale;
    auth_table *t;

    if (shared_gen == NULL)
        return;
    want = atomic_load(shared_gen);
    pthread_mutex_lock(&table_lock);
    stale = current != NULL && current->gen < want && table_path[0] != '\0';
    if (stale)
        memcpy(path, table_path, sizeof(path));
    pthread_mutex_unlock(&table_lock);
    if (!stale)
        return;
    t = table_load(path, err, sizeof(err));
    if (t == NULL)
        return;
    t->gen = want;
    table_swap(t);
}

int auth_load(const char *path)
{
    char err[PATH_MAX + 256];
    auth_table *t;

    if (path == NULL || *path == '\0') {
        auth_free();
        return 0;
    }
    t = table_load(path, err, sizeof(err));
    if (t == NULL) {
        fprintf(stderr, FTPD_NAME ": %s\n", err);
        auth_free();
        return -1;
    }
    table_publish(t, path);
    return 0;
}

int auth_reload(const char *path, char *err, size_t size)
{
    auth_table *t;

    if (path == NULL || *path == '\0')
        return 0; /* no users file: nothing to reload */
    t = table_load(path, err, size);
    if (t == NULL)
        return -1;
    table_publish(t, path);
    return 0;
}

/* Equal strings, in time that depends only on the lengths. */
static bool same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;

    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int auth_check(const char *name, const char *password, auth_account *result)
{
    const account *acc = NULL;
    struct crypt_data *cd;
    const char *out;
    int rc = -1;
    auth_table *t;

    refresh_if_stale();
    /* The table of this moment, kept for the whole check even if a reload
     * swaps in another meanwhile. */
    t = table_get();

    for (size_t i = 0; t != NULL && i < t->naccounts; i++)
        if (strcmp(t->accounts[i].name, name) == 0)
            acc = &t->accounts[i];
    /* struct crypt_data is about 32 KiB: too big for a session thread's stack. */
    cd = calloc(1, sizeof(*cd));
    if (cd == NULL) {
        table_put(t);
        return -1;
    }
    out = crypt_r(password, acc != NULL ? acc->hash : dummy_hash, cd);
    if (acc != NULL && out != NULL && out[0] != '*' && same(out, acc->hash)) {
        *result = acc->settings;
        rc = 0;
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    table_put(t);
    return rc;
}
