/*
 * auth.c - the users file and crypt(3) password checks.
 */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "defs.h"
#include "secfile.h"

typedef struct account {
    char *name;
    char *hash;
    auth_account settings;
} account;

static account *accounts;
static size_t naccounts;

/* Compared against when the user is unknown, so that the reply takes as long
 * as for a known user (a sha512crypt hash of a random string). */
static const char dummy_hash[] =
    "$6$sockservdummy$r3LHAVhxmbRoFwBj9KUh5Vg29fxedpeRgduqMZUAAdAmKgWsjvNosm/"
    "Ta2ORRMctYzEGkiT3ZRkOCAQZmlUY50";

bool auth_is_anonymous_name(const char *name)
{
    return strcasecmp(name, "anonymous") == 0 || strcasecmp(name, "ftp") == 0;
}

void auth_free(void)
{
    for (size_t i = 0; i < naccounts; i++) {
        free(accounts[i].name);
        free(accounts[i].hash);
    }
    free(accounts);
    accounts = NULL;
    naccounts = 0;
}

/* Privilege separation: a session process that has become its user
 * checks no password again, and keeps no other user's hash to be read. */
void auth_forget(void)
{
    for (size_t i = 0; i < naccounts; i++)
        if (accounts[i].hash != NULL)
            explicit_bzero(accounts[i].hash, strlen(accounts[i].hash));
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

static int parse_line(char *line, const char *path, unsigned lineno)
{
    char *name = line, *hash, *home, *c2, *settings = NULL;
    account *grown;
    auth_account acc;
    bool fail = false;

    hash = strchr(name, ':');
    if (hash == NULL) {
        fprintf(stderr, FTPD_NAME ": %s:%u: expected name:HASH[:home[:settings]]\n", path, lineno);
        return -1;
    }
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
    if (!name_ok(name)) {
        fprintf(stderr, FTPD_NAME ": %s:%u: bad user name\n", path, lineno);
        return -1;
    }
    if (hash[0] != '$' || strlen(hash) < 4) {
        fprintf(stderr,
                FTPD_NAME ": %s:%u: user %s: password hash must be a crypt string "
                          "such as 'openssl passwd -6' makes\n",
                path, lineno, name);
        return -1;
    }
    if (!home_ok(home)) {
        fprintf(stderr,
                FTPD_NAME ": %s:%u: user %s: home must be relative to the root, "
                          "without '..'\n",
                path, lineno, name);
        return -1;
    }
    memset(&acc, 0, sizeof(acc));
    if (strlen(home) >= sizeof(acc.home)) {
        fprintf(stderr, FTPD_NAME ": %s:%u: user %s: home too long\n", path, lineno, name);
        return -1;
    }
    memcpy(acc.home, home, strlen(home) + 1);
    for (char *kv = settings, *next; kv != NULL && *kv != '\0'; kv = next) {
        const char *why;

        next = strchr(kv, ',');
        if (next != NULL)
            *next++ = '\0';
        why = parse_setting(kv, &acc);
        if (why != NULL) {
            fprintf(stderr, FTPD_NAME ": %s:%u: user %s: %s\n", path, lineno, name, why);
            return -1;
        }
    }
    for (size_t i = 0; i < naccounts; i++) {
        if (strcmp(accounts[i].name, name) == 0) {
            fprintf(stderr, FTPD_NAME ": %s:%u: user %s listed twice\n", path, lineno, name);
            return -1;
        }
    }
    if (naccounts >= FTPD_USERS_MAX) {
        fprintf(stderr, FTPD_NAME ": %s:%u: more than %d users\n", path, lineno, FTPD_USERS_MAX);
        return -1;
    }
    grown = realloc(accounts, (naccounts + 1) * sizeof(*accounts));
    if (grown == NULL)
        goto nomem;
    accounts = grown;
    accounts[naccounts].name = dup_or_fail(name, &fail);
    accounts[naccounts].hash = dup_or_fail(hash, &fail);
    accounts[naccounts].settings = acc;
    naccounts++;
    if (fail)
        goto nomem;
    return 0;
nomem:
    fprintf(stderr, FTPD_NAME ": %s:%u: out of memory\n", path, lineno);
    return -1;
}

int auth_load(const char *path)
{
    FILE *f;
    /* The file's bytes pass through these two buffers only, and both are
     * erased at the end (auth_forget: no hash may stay behind). */
    static char iobuf[BUFSIZ];
    char line[FTPD_CONF_LINE_MAX];
    char why[256];
    unsigned lineno = 0;
    int rc = -1, read_err;

    if (path == NULL || *path == '\0')
        return 0;
    f = secfile_fopen(path, why, sizeof(why));
    if (f == NULL) {
        fprintf(stderr, FTPD_NAME ": --users: %s: %s\n", path, why);
        return -1;
    }
    setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line, *end;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, FTPD_NAME ": %s:%u: line too long\n", path, lineno);
            goto out;
        }
        end = line + strlen(line);
        while (end > line &&
               (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (parse_line(p, path, lineno) < 0)
            goto out;
    }
    read_err = errno; /* from the fgets that failed, before ferror may change it */
    if (ferror(f)) {
        fprintf(stderr, FTPD_NAME ": %s: %s\n", path, strerror(read_err != 0 ? read_err : EIO));
        goto out;
    }
    rc = 0;
out:
    fclose(f);
    explicit_bzero(iobuf, sizeof(iobuf));
    explicit_bzero(line, sizeof(line));
    if (rc < 0)
        auth_free();
    return rc;
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

    for (size_t i = 0; i < naccounts; i++)
        if (strcmp(accounts[i].name, name) == 0)
            acc = &accounts[i];
    /* struct crypt_data is about 32 KiB: too big for a session thread's stack. */
    cd = calloc(1, sizeof(*cd));
    if (cd == NULL)
        return -1;
    out = crypt_r(password, acc != NULL ? acc->hash : dummy_hash, cd);
    if (acc != NULL && out != NULL && out[0] != '*' && same(out, acc->hash)) {
        *result = acc->settings;
        rc = 0;
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return rc;
}
