/*
 * config.c - command line and config file parsing for sockserv-ftpd.
 *
 * One table describes every setting; the command line and the config file
 * both go through set_value(), so they accept exactly the same things and
 * report problems the same way.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "defs.h"
#include "secfile.h"

enum opt_kind {
    OPT_STRING,
    OPT_PATH,
    OPT_BOOL,
    OPT_UINT,
    OPT_SIZE,
    OPT_RANGE,
    OPT_MODE,
    OPT_IPV4,
    OPT_PROXY,
    OPT_FACILITY /* a syslog facility name */
};

typedef struct opt_def {
    const char *name; /* long option without "--" */
    enum opt_kind kind;
    size_t offset;   /* of the field in ftpd_config */
    size_t size;     /* of a string field */
    unsigned lo, hi; /* bounds of a number */
} opt_def;

#define STR_FIELD(f) offsetof(ftpd_config, f), sizeof(((ftpd_config *)0)->f)
#define NUM_FIELD(f) offsetof(ftpd_config, f), 0

static const opt_def opt_table[] = {
    {"listen", OPT_STRING, STR_FIELD(listen), 0, 0},
    {"root", OPT_PATH, STR_FIELD(root), 0, 0},
    {"users", OPT_PATH, STR_FIELD(users), 0, 0},
    {"anonymous", OPT_BOOL, NUM_FIELD(anonymous), 0, 0},
    {"anonymous-write", OPT_BOOL, NUM_FIELD(anonymous_write), 0, 0},
    {"anonymous-modify", OPT_BOOL, NUM_FIELD(anonymous_modify), 0, 0},
    {"pasv-ports", OPT_RANGE, NUM_FIELD(pasv_lo), 1, 65535},
    {"pasv-address", OPT_IPV4, STR_FIELD(pasv_address), 0, 0},
    {"max-clients", OPT_UINT, NUM_FIELD(max_clients), 1, FTPD_CLIENTS_LIMIT},
    {"max-per-ip", OPT_UINT, NUM_FIELD(max_per_ip), 1, FTPD_CLIENTS_LIMIT},
    {"idle-timeout", OPT_UINT, NUM_FIELD(idle_timeout), 1, FTPD_TIMEOUT_LIMIT},
    {"data-timeout", OPT_UINT, NUM_FIELD(data_timeout), 1, FTPD_TIMEOUT_LIMIT},
    {"login-timeout", OPT_UINT, NUM_FIELD(login_timeout), 1, FTPD_TIMEOUT_LIMIT},
    {"stop-grace", OPT_UINT, NUM_FIELD(stop_grace), 0, FTPD_TIMEOUT_LIMIT},
    {"ipv6-prefix", OPT_UINT, NUM_FIELD(ipv6_prefix), 1, 128},
    {"max-pasv-per-ip", OPT_UINT, NUM_FIELD(max_pasv_per_ip), 0, 65535},
    {"max-login-fails", OPT_UINT, NUM_FIELD(max_login_fails), 0, 1000000},
    {"ban-time", OPT_UINT, NUM_FIELD(ban_time), 1, FTPD_TIMEOUT_LIMIT},
    {"max-listing-memory", OPT_SIZE, NUM_FIELD(max_listing_memory), 1, 0},
    {"hash-max-size", OPT_SIZE, NUM_FIELD(hash_max_size), 0, 0},
    {"mode", OPT_MODE, NUM_FIELD(mode), 0, 0},
    {"log", OPT_PATH, STR_FIELD(log), 0, 0},
    {"xferlog", OPT_PATH, STR_FIELD(xferlog), 0, 0},
    {"run-as", OPT_STRING, STR_FIELD(run_as), 0, 0},
    /* privilege separation */
    {"seccomp", OPT_BOOL, NUM_FIELD(seccomp), 0, 0},
    {"proxy-protocol", OPT_PROXY, NUM_FIELD(proxy_protocol), 0, 0},
    {"proxy-trusted", OPT_STRING, STR_FIELD(proxy_trusted), 0, 0},
    /* FTPS */
    {"tls", OPT_STRING, STR_FIELD(tls), 0, 0},
    {"tls-cert", OPT_PATH, STR_FIELD(tls_cert), 0, 0},
    {"tls-key", OPT_PATH, STR_FIELD(tls_key), 0, 0},
    {"tls-implicit-listen", OPT_STRING, STR_FIELD(tls_implicit_listen), 0, 0},
    {"tls-require-reuse", OPT_STRING, STR_FIELD(tls_require_reuse), 0, 0},
    /* Bandwidth limits and quotas. */
    {"max-rate-down", OPT_SIZE, NUM_FIELD(max_rate_down), 0, 0},
    {"max-rate-up", OPT_SIZE, NUM_FIELD(max_rate_up), 0, 0},
    {"max-user-rate-down", OPT_SIZE, NUM_FIELD(max_user_rate_down), 0, 0},
    {"max-user-rate-up", OPT_SIZE, NUM_FIELD(max_user_rate_up), 0, 0},
    {"quota-rescan", OPT_UINT, NUM_FIELD(quota_rescan), 0, FTPD_TIMEOUT_LIMIT},
    /* Running as a service. */
    {"syslog", OPT_BOOL, NUM_FIELD(syslog), 0, 0},
    {"syslog-facility", OPT_FACILITY, STR_FIELD(syslog_facility), 0, 0},
};
#define OPT_COUNT (sizeof(opt_table) / sizeof(opt_table[0]))

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " FTPD_NAME " [options]\n"
            "  --listen ADDR          address to listen on (default " FTPD_DEFAULT_LISTEN ";\n"
            "                         e.g. 0.0.0.0:21, [::1]:2121, [::]:21)\n"
            "  --root DIR             folder to serve (default: the current directory)\n"
            "  --users FILE           users file, lines name:HASH[:home[:settings]]\n"
            "  --anonymous            allow anonymous logins alongside a users file\n"
            "  --anonymous-write      let anonymous users upload new files and make folders\n"
            "  --anonymous-modify     ... and also overwrite, append, rename, delete, chmod\n"
            "  --pasv-ports LO-HI     port range for passive data connections\n"
            "  --pasv-address IP      IPv4 address announced in PASV replies\n"
            "  --max-clients N        sessions at once (default %d)\n"
            "  --max-per-ip N         sessions at once per client address (default %d)\n"
            "  --idle-timeout S       close idle control connections (default %d)\n"
            "  --data-timeout S       data connection timeout, also for an unused PASV\n"
            "                         listener (default %d)\n"
            "  --login-timeout S      time from connect to a successful login (default %d)\n"
            "  --stop-grace S         on SIGTERM/SIGINT, time running transfers get to\n"
            "                         finish (default %d)\n"
            "  --ipv6-prefix N        per-address limits count an IPv6 /N as one address\n"
            "                         (default %d)\n"
            "  --max-pasv-per-ip N    passive ports one address may hold (default: a\n"
            "                         quarter of --pasv-ports, at least 1; 0 = that default)\n"
            "  --max-login-fails N    failed logins per address and per account before a\n"
            "                         ban (default %d, 0 = never ban)\n"
            "  --ban-time S           length of that ban (default %d)\n"
            "  --max-listing-memory SIZE  memory all directory listings may hold\n"
            "                         together (default 64M; suffixes K, M, G)\n"
            "  --hash-max-size SIZE   largest file HASH digests (default 1G, 0 = no HASH)\n"
            "  --mode threading|forking  a thread or a process per session\n"
            "  --log FILE             session log (default: standard error)\n"
            "  --xferlog FILE         transfer log in xferlog format\n"
            "  --run-as USER          started as root: become USER once listening; in\n"
            "                         forking mode each session process becomes USER\n"
            "                         (or its run-as= user), chrooted, at its login\n"
            "  --seccomp              forking mode: a logged-in session may make only\n"
            "                         the system calls serving needs (docs/security.md)\n"
            "  --proxy-protocol off|optional|required\n"
            "                         read HAProxy's PROXY v1/v2 header from trusted peers\n"
            "                         for the real client address (default off)\n"
            "  --proxy-trusted LIST   addresses/CIDRs allowed to send it, comma-separated\n"
            "                         (default: any peer; set it with required)\n"
            "  --tls off|optional|required  FTPS (RFC 4217): AUTH TLS offered, or required\n"
            "                         before USER/PASS and for data (default off)\n"
            "  --tls-cert FILE        certificate chain (PEM), loaded at startup\n"
            "  --tls-key FILE         private key (PEM; default: the certificate file)\n"
            "  --tls-implicit-listen ADDR  a second listener speaking TLS from the first\n"
            "                         byte (implicit FTPS, e.g. 0.0.0.0:990)\n"
            "  --tls-require-reuse yes|no  data connections must resume the control\n"
            "                         connection's TLS session (default yes)\n"
            /* Bandwidth limits and quotas. */
            "  --max-rate-down RATE   bytes per second to the client, per session\n"
            "                         (suffixes K, M, G; default 0 = no limit)\n"
            "  --max-rate-up RATE     bytes per second from the client, per session\n"
            "  --max-user-rate-down RATE  bytes per second to all sessions of one user\n"
            "                         together (a users file's rate-down= wins)\n"
            "  --max-user-rate-up RATE    the same from the client (rate-up= wins)\n"
            "  --quota-rescan S       count a user's usage for quota-bytes=/quota-files=\n"
            "                         again after S seconds (default %d, 0 = only once)\n"
            "  --run-as USER          started as root: become USER once listening\n"
            "  --syslog               session log to syslog instead of --log or stderr\n"
            "                         (the --xferlog stays a file)\n"
            "  --syslog-facility NAME daemon, ftp, local0..local7 or user (default ftp)\n"
            "  --check-config         check every setting, the users file included, print\n"
            "                         the effective settings and exit (0; 2 on a problem)\n"
            "  -c FILE                read settings from FILE (key = value lines)\n"
            "  --help, --version\n",
            FTPD_DEFAULT_MAX_CLIENTS, FTPD_DEFAULT_MAX_PER_IP, FTPD_DEFAULT_IDLE_TIMEOUT,
            FTPD_DEFAULT_DATA_TIMEOUT, FTPD_DEFAULT_LOGIN_TIMEOUT, FTPD_DEFAULT_STOP_GRACE,
            FTPD_DEFAULT_IPV6_PREFIX, FTPD_DEFAULT_MAX_LOGIN_FAILS, FTPD_DEFAULT_BAN_TIME,
            FTPD_DEFAULT_QUOTA_RESCAN);
}

/* Keys match when equal after removing '-' and '_', so "anonymous-write",
 * "anonymous_write" and "anonymouswrite" are one key. */
static bool key_equal(const char *a, const char *b)
{
    for (;;) {
        while (*a == '-' || *a == '_')
            a++;
        while (*b == '-' || *b == '_')
            b++;
        if (*a == '\0' || *b == '\0')
            return *a == *b;
        if (*a != *b)
            return false;
        a++;
        b++;
    }
}

static const opt_def *find_opt(const char *name)
{
    for (size_t i = 0; i < OPT_COUNT; i++)
        if (key_equal(opt_table[i].name, name))
            return &opt_table[i];
    return NULL;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    unsigned long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* A byte count: digits with an optional K, M or G (powers of 1024). */
int config_parse_size(const char *s, bool allow_zero, unsigned long long *out)
{
    char *end = NULL;
    unsigned long long v;
    unsigned shift = 0;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift != 0)
        end++;
    if (*end != '\0' || v > (1ull << (62 - shift)) || (v == 0 && !allow_zero))
        return -1;
    *out = v << shift;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Apply one setting. On failure writes the problem into err. */
static int set_value(ftpd_config *c, const opt_def *o, const char *val, char *err, size_t esz)
{
    char *base = (char *)c;
    size_t n = strlen(val);

    switch (o->kind) {
    case OPT_STRING:
    case OPT_PATH:
    case OPT_IPV4:
        if (n >= o->size) {
            snprintf(err, esz, "value too long");
            return -1;
        }
        if (o->kind != OPT_STRING && n == 0) {
            snprintf(err, esz, "empty value");
            return -1;
        }
        if (o->kind == OPT_IPV4) {
            struct in_addr a;
            if (inet_pton(AF_INET, val, &a) != 1) {
                snprintf(err, esz, "'%s' is not an IPv4 address", val);
                return -1;
            }
        }
        memcpy(base + o->offset, val, n + 1);
        return 0;
    case OPT_BOOL:
        if (parse_bool(val, (bool *)(base + o->offset)) < 0) {
            snprintf(err, esz, "'%s' is not yes or no", val);
            return -1;
        }
        if (o->offset == offsetof(ftpd_config, anonymous))
            c->anonymous_set = true;
        return 0;
    case OPT_UINT:
        if (parse_uint(val, o->lo, o->hi, (unsigned *)(base + o->offset)) < 0) {
            snprintf(err, esz, "'%s' is not a number from %u to %u", val, o->lo, o->hi);
            return -1;
        }
        return 0;
    case OPT_SIZE:
        if (config_parse_size(val, o->lo == 0, (unsigned long long *)(void *)(base + o->offset)) <
            0) {
            snprintf(err, esz, "'%s' is not a size in bytes (suffixes K, M, G%s)", val,
                     o->lo == 0 ? "" : "; above 0");
            return -1;
        }
        return 0;
    case OPT_RANGE: {
        char lo[16], hi[16];
        const char *dash = strchr(val, '-');
        size_t ln;

        if (dash == NULL || (size_t)(dash - val) >= sizeof(lo) || strlen(dash + 1) >= sizeof(hi))
            goto bad_range;
        ln = (size_t)(dash - val);
        memcpy(lo, val, ln);
        lo[ln] = '\0';
        memcpy(hi, dash + 1, strlen(dash + 1) + 1);
        if (parse_uint(lo, o->lo, o->hi, &c->pasv_lo) < 0 ||
            parse_uint(hi, o->lo, o->hi, &c->pasv_hi) < 0 || c->pasv_lo > c->pasv_hi)
            goto bad_range;
        return 0;
    bad_range:
        snprintf(err, esz, "'%s' is not a port range LO-HI (1-65535, LO <= HI)", val);
        return -1;
    }
    case OPT_PROXY:
        if (strcmp(val, "off") == 0) {
            c->proxy_protocol = SS_PROXY_OFF;
        } else if (strcmp(val, "optional") == 0) {
            c->proxy_protocol = SS_PROXY_OPTIONAL;
        } else if (strcmp(val, "required") == 0) {
            c->proxy_protocol = SS_PROXY_REQUIRED;
        } else {
            snprintf(err, esz, "'%s' is not off, optional or required", val);
            return -1;
        }
        return 0;
    case OPT_FACILITY:
        if (n >= o->size || config_syslog_facility(val) < 0) {
            snprintf(err, esz, "'%s' is not daemon, ftp, local0..local7 or user", val);
            return -1;
        }
        memcpy(base + o->offset, val, n + 1);
        return 0;
    case OPT_MODE:
        if (strcmp(val, "threading") == 0) {
            c->mode = SS_MODE_THREADING;
        } else if (strcmp(val, "forking") == 0) {
            c->mode = SS_MODE_FORKING;
        } else {
            snprintf(err, esz, "'%s' is not threading or forking", val);
            return -1;
        }
        return 0;
    }
    snprintf(err, esz, "unknown setting");
    return -1;
}

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    *end = '\0';
    return s;
}

static int load_file(ftpd_config *c, const char *path)
{
    char err[256];
    FILE *f = secfile_fopen(path, err, sizeof(err));
    char line[FTPD_CONF_LINE_MAX];
    unsigned lineno = 0;
    int rc = -1, read_err;

    if (f == NULL) {
        fprintf(stderr, FTPD_NAME ": -c: %s: %s\n", path, err);
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *key, *val, *eq;
        const opt_def *o;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, FTPD_NAME ": %s:%u: line too long\n", path, lineno);
            goto out;
        }
        key = trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        eq = strchr(key, '=');
        if (eq == NULL) {
            fprintf(stderr, FTPD_NAME ": %s:%u: expected 'key = value'\n", path, lineno);
            goto out;
        }
        *eq = '\0';
        val = trim(eq + 1);
        key = trim(key);
        o = find_opt(key);
        if (o == NULL) {
            fprintf(stderr, FTPD_NAME ": %s:%u: unknown key '%s'\n", path, lineno, key);
            goto out;
        }
        if (set_value(c, o, val, err, sizeof(err)) < 0) {
            fprintf(stderr, FTPD_NAME ": %s:%u: %s: %s\n", path, lineno, o->name, err);
            goto out;
        }
    }
    read_err = errno; /* from the fgets that failed, before ferror may change it */
    if (ferror(f)) {
        fprintf(stderr, FTPD_NAME ": %s: %s\n", path, strerror(read_err != 0 ? read_err : EIO));
        goto out;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

static void set_defaults(ftpd_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen, sizeof(c->listen), "%s", FTPD_DEFAULT_LISTEN);
    c->max_clients = FTPD_DEFAULT_MAX_CLIENTS;
    c->max_per_ip = FTPD_DEFAULT_MAX_PER_IP;
    c->idle_timeout = FTPD_DEFAULT_IDLE_TIMEOUT;
    c->data_timeout = FTPD_DEFAULT_DATA_TIMEOUT;
    c->login_timeout = FTPD_DEFAULT_LOGIN_TIMEOUT;
    c->stop_grace = FTPD_DEFAULT_STOP_GRACE;
    c->ipv6_prefix = FTPD_DEFAULT_IPV6_PREFIX;
    c->max_login_fails = FTPD_DEFAULT_MAX_LOGIN_FAILS;
    c->ban_time = FTPD_DEFAULT_BAN_TIME;
    c->max_listing_memory = FTPD_DEFAULT_LISTING_MEMORY;
    c->hash_max_size = FTPD_DEFAULT_HASH_MAX_SIZE;
    c->mode = SS_MODE_THREADING;
    snprintf(c->tls, sizeof(c->tls), "off");
    snprintf(c->tls_require_reuse, sizeof(c->tls_require_reuse), "yes");
    c->quota_rescan = FTPD_DEFAULT_QUOTA_RESCAN;
    snprintf(c->syslog_facility, sizeof(c->syslog_facility), "%s", FTPD_DEFAULT_SYSLOG_FACILITY);
}

/* The FTPS settings: --tls and --tls-require-reuse in words, a certificate
 * when TLS is on, and an implicit listener only with TLS. */
static int finish_tls(ftpd_config *c)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (strcmp(c->tls, "off") == 0) {
        c->tls_mode = FTPD_TLS_OFF;
    } else if (strcmp(c->tls, "optional") == 0) {
        c->tls_mode = FTPD_TLS_OPTIONAL;
    } else if (strcmp(c->tls, "required") == 0) {
        c->tls_mode = FTPD_TLS_REQUIRED;
    } else {
        fprintf(stderr, FTPD_NAME ": --tls: '%s' is not off, optional or required\n", c->tls);
        return -1;
    }
    if (parse_bool(c->tls_require_reuse, &c->tls_reuse) < 0) {
        fprintf(stderr, FTPD_NAME ": --tls-require-reuse: '%s' is not yes or no\n",
                c->tls_require_reuse);
        return -1;
    }
    if (c->tls_mode != FTPD_TLS_OFF && c->tls_cert[0] == '\0') {
        fprintf(stderr, FTPD_NAME ": --tls %s: needs --tls-cert FILE\n", c->tls);
        return -1;
    }
    if (c->tls_implicit_listen[0] != '\0') {
        if (c->tls_mode == FTPD_TLS_OFF) {
            fprintf(stderr,
                    FTPD_NAME ": --tls-implicit-listen: needs --tls optional or required\n");
            return -1;
        }
        if (ss_parse_address(c->tls_implicit_listen, SOCK_STREAM, &ss, &sl) < 0 ||
            (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
            fprintf(stderr,
                    FTPD_NAME ": --tls-implicit-listen: '%s' is not an IP address and port\n",
                    c->tls_implicit_listen);
            return -1;
        }
    }
    return 0;
}

/* One --proxy-trusted entry: an IPv4 or IPv6 address (IPv6 optionally in
 * brackets), optionally with a /prefix. */
static bool trusted_entry_ok(const char *e, size_t len)
{
    char buf[80];
    unsigned char a[16];
    unsigned prefix = 0, max;
    bool has_prefix = false;

    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, e, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash != NULL) {
        *slash = '\0';
        if (parse_uint(slash + 1, 0, 128, &prefix) < 0)
            return false;
        has_prefix = true;
    }
    char *addr = buf;
    size_t alen = strlen(addr);
    if (alen >= 2 && addr[0] == '[' && addr[alen - 1] == ']') {
        addr[alen - 1] = '\0';
        addr++;
    }
    if (inet_pton(AF_INET, addr, a) == 1)
        max = 32;
    else if (inet_pton(AF_INET6, addr, a) == 1)
        max = 128;
    else
        return false;
    return !has_prefix || prefix <= max;
}

/* The comma-separated --proxy-trusted list, as the library will read it. */
static bool trusted_list_ok(const char *list)
{
    const char *p = list;

    if (*list == '\0')
        return true;
    for (;;) {
        const char *end = strchr(p, ',');
        const char *e = end != NULL ? end : p + strlen(p);
        const char *b = p;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (!trusted_entry_ok(b, (size_t)(e - b)))
            return false;
        if (end == NULL)
            return true;
        p = end + 1;
    }
}

/* Check the combined settings and turn the root into an absolute path. */
static int finish(ftpd_config *c)
{
    char real[PATH_MAX];
    struct stat st;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    const char *root = c->root[0] != '\0' ? c->root : ".";

    if (realpath(root, real) == NULL) {
        fprintf(stderr, FTPD_NAME ": --root: %s: %s\n", root, strerror(errno));
        return -1;
    }
    if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, FTPD_NAME ": --root: %s: not a directory\n", root);
        return -1;
    }
    snprintf(c->root, sizeof(c->root), "%s", real);
    if (ss_parse_address(c->listen, SOCK_STREAM, &ss, &sl) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        fprintf(stderr, FTPD_NAME ": --listen: '%s' is not an IP address and port\n", c->listen);
        return -1;
    }
    if (!trusted_list_ok(c->proxy_trusted)) {
        fprintf(stderr,
                FTPD_NAME ": --proxy-trusted: '%s' is not a comma-separated list of addresses "
                          "or CIDR prefixes\n",
                c->proxy_trusted);
        return -1;
    }
    /* Anonymous access is the default only when there is nobody else. */
    if (!c->anonymous_set)
        c->anonymous = c->users[0] == '\0';
    if (c->max_per_ip > c->max_clients)
        c->max_per_ip = c->max_clients;
    /* Privilege separation: threading mode serves every session from one
     * process, which a per-session filter cannot hold. */
    if (c->seccomp && c->mode != SS_MODE_FORKING) {
        fprintf(stderr, FTPD_NAME ": --seccomp: needs --mode forking (a filter per session "
                                  "process; see docs/security.md)\n");
        return -1;
    }
    /* Modifying implies writing. */
    if (c->anonymous_modify)
        c->anonymous_write = true;
    /* Passive ports: by default one address may hold a quarter of the range,
     * so three others can always get one. */
    if (c->max_pasv_per_ip == 0 && c->pasv_lo != 0)
        c->max_pasv_per_ip = (c->pasv_hi - c->pasv_lo + 1 + 3) / 4;
    if (finish_tls(c) < 0)
        return -1;
    return 0;
}

/* Splits "--name=value" / "--name value"; returns the option or NULL. */
static const opt_def *arg_option(char **argv, int argc, int *i, const char **val, char *name,
                                 size_t nsz)
{
    const char *a = argv[*i] + 2;
    const char *eq = strchr(a, '=');
    size_t len = eq != NULL ? (size_t)(eq - a) : strlen(a);
    const opt_def *o;

    if (len >= nsz)
        len = nsz - 1;
    memcpy(name, a, len);
    name[len] = '\0';
    o = NULL;
    for (size_t k = 0; k < OPT_COUNT; k++)
        if (strcmp(opt_table[k].name, name) == 0)
            o = &opt_table[k];
    if (o == NULL)
        return NULL;
    if (eq != NULL) {
        *val = eq + 1;
    } else if (o->kind == OPT_BOOL) {
        *val = "yes";
    } else if (*i + 1 < argc) {
        *val = argv[++*i];
    } else {
        *val = NULL;
    }
    return o;
}

int config_parse_args(ftpd_config *c, int argc, char **argv)
{
    char err[256];
    char name[64];

    set_defaults(c);
    /* The file first, so the command line overrides it. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, FTPD_NAME ": -c: needs a file name\n");
                return -1;
            }
            if (load_file(c, argv[i + 1]) < 0)
                return -1;
            i++;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CONFIG_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf(FTPD_NAME " " FTPD_VERSION "\n");
            return CONFIG_EXIT_OK;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            c->check_config = true; /* a command, not a setting: no config key */
        }
    }
    for (int i = 1; i < argc; i++) {
        const opt_def *o;
        const char *val = NULL;

        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            i++;
            continue;
        }
        if (strcmp(argv[i], "--check-config") == 0)
            continue;
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, FTPD_NAME ": %s: unknown argument (try --help)\n", argv[i]);
            return -1;
        }
        o = arg_option(argv, argc, &i, &val, name, sizeof(name));
        if (o == NULL) {
            fprintf(stderr, FTPD_NAME ": --%s: unknown option (try --help)\n", name);
            return -1;
        }
        if (val == NULL) {
            fprintf(stderr, FTPD_NAME ": --%s: needs a value\n", o->name);
            return -1;
        }
        if (set_value(c, o, val, err, sizeof(err)) < 0) {
            fprintf(stderr, FTPD_NAME ": --%s: %s\n", o->name, err);
            return -1;
        }
    }
    return finish(c);
}

/* ---- running as a service: syslog facilities, --check-config ---------- */

int config_syslog_facility(const char *name)
{
    static const struct {
        const char *name;
        int value;
    } names[] = {
        {"daemon", LOG_DAEMON}, {"ftp", LOG_FTP},       {"user", LOG_USER},
        {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
        {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
        {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i].name, name) == 0)
            return names[i].value;
    return -1;
}

/* One setting's value as the config file writes it; "" when it has none. */
static void format_value(const ftpd_config *c, const opt_def *o, char *out, size_t size)
{
    const char *base = (const char *)c;

    switch (o->kind) {
    case OPT_STRING:
    case OPT_PATH:
    case OPT_IPV4:
    case OPT_FACILITY:
        snprintf(out, size, "%s", base + o->offset);
        return;
    case OPT_BOOL:
        snprintf(out, size, "%s", *(const bool *)(base + o->offset) ? "yes" : "no");
        return;
    case OPT_UINT:
        snprintf(out, size, "%u", *(const unsigned *)(base + o->offset));
        return;
    case OPT_SIZE:
        snprintf(out, size, "%llu", *(const unsigned long long *)(const void *)(base + o->offset));
        return;
    case OPT_RANGE:
        if (c->pasv_lo == 0)
            out[0] = '\0'; /* any free port */
        else
            snprintf(out, size, "%u-%u", c->pasv_lo, c->pasv_hi);
        return;
    case OPT_MODE:
        snprintf(out, size, "%s", c->mode == SS_MODE_FORKING ? "forking" : "threading");
        return;
    case OPT_PROXY:
        snprintf(out, size, "%s",
                 c->proxy_protocol == SS_PROXY_REQUIRED   ? "required"
                 : c->proxy_protocol == SS_PROXY_OPTIONAL ? "optional"
                                                          : "off");
        return;
    }
    out[0] = '\0';
}

void config_print(const ftpd_config *c, FILE *out)
{
    char val[PATH_MAX + 16];

    /* Every setting in the table names a file, an address or a number;
     * a setting that held a secret itself (a password) would be skipped
     * here. */

    for (size_t i = 0; i < OPT_COUNT; i++) {
        format_value(c, &opt_table[i], val, sizeof(val));
        if (val[0] == '\0')
            fprintf(out, "# %s =\n", opt_table[i].name);
        else
            fprintf(out, "%s = %s\n", opt_table[i].name, val);
    }
}
