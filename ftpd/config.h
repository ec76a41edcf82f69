/*
 * config.h - sockserv-ftpd settings from the command line and a config file.
 *
 * Every setting has a long option ("--idle-timeout 60") and the same key in
 * the config file ("idle-timeout = 60"); options on the command line win
 * over the file given with -c.
 */
#ifndef FTPD_CONFIG_H
#define FTPD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include <sockserv.h>

/* --tls: FTPS off, offered, or required before a login and for data. */
enum ftpd_tls_mode { FTPD_TLS_OFF = 0, FTPD_TLS_OPTIONAL, FTPD_TLS_REQUIRED };

typedef struct ftpd_config {
    char listen[256];      /* library address string */
    char root[PATH_MAX];   /* absolute real path of the served tree */
    char users[PATH_MAX];  /* users file, "" = none */
    bool anonymous;        /* anonymous logins allowed */
    bool anonymous_set;    /* anonymous given explicitly (on or off) */
    bool anonymous_write;  /* anonymous users may upload new files and MKD */
    bool anonymous_modify; /* ... and also delete, rename, overwrite, chmod */
    unsigned pasv_lo;      /* passive port range, 0-0 = any free port */
    unsigned pasv_hi;
    char pasv_address[64]; /* IPv4 address announced in 227, "" = local */
    unsigned max_clients;
    unsigned max_per_ip;
    unsigned idle_timeout;                 /* seconds */
    unsigned data_timeout;                 /* seconds */
    unsigned login_timeout;                /* seconds from connect to a successful login */
    unsigned stop_grace;                   /* seconds transfers may run on after SIGTERM */
    unsigned ipv6_prefix;                  /* prefix length that counts as one IPv6 client */
    unsigned max_pasv_per_ip;              /* passive listeners per client address, 0 = auto */
    unsigned max_login_fails;              /* per address and per account, 0 = no bans */
    unsigned ban_time;                     /* seconds */
    unsigned long long max_listing_memory; /* bytes, all listings together */
    unsigned long long hash_max_size;      /* bytes; larger files get 550 */
    ss_mode mode;                          /* SS_MODE_THREADING or SS_MODE_FORKING */
    char log[PATH_MAX];                    /* session log, "" = stderr */
    char xferlog[PATH_MAX];                /* transfer log, "" = none */
    char run_as[64];                       /* system user to become after binding, "" = stay */
    /* Privilege separation (forking mode): the seccomp allow-list of a
     * logged-in session process (seccomp.h). */
    bool seccomp;
    /* PROXY protocol behind a load balancer (docs/scaling.md). */
    ss_proxy_mode proxy_protocol; /* off (default), optional or required */
    char proxy_trusted[1024];     /* addresses/CIDRs whose header is read, "" = any */
    /* FTPS (tls.c, cmd_tls.c) */
    char tls[16];                  /* --tls as given: off, optional, required */
    enum ftpd_tls_mode tls_mode;   /* ... parsed */
    char tls_cert[PATH_MAX];       /* certificate chain, PEM */
    char tls_key[PATH_MAX];        /* private key, PEM; "" = in the certificate file */
    char tls_implicit_listen[256]; /* second listener, TLS from the first byte; "" = none */
    char tls_require_reuse[8];     /* --tls-require-reuse as given: yes or no */
    bool tls_reuse;                /* ... parsed: data connections must resume the session */
    /* Bandwidth limits (bytes per second, 0 = none) and quota counting. */
    unsigned long long max_rate_down;      /* per session, to the client */
    unsigned long long max_rate_up;        /* per session, from the client */
    unsigned long long max_user_rate_down; /* all sessions of one user together */
    unsigned long long max_user_rate_up;
    unsigned quota_rescan; /* seconds before a user's usage is counted again, 0 = never */

    /* Running as a service. */
    bool syslog;              /* session log to syslog(3) instead of --log / stderr */
    char syslog_facility[16]; /* its facility name (config_syslog_facility) */
    bool check_config;        /* --check-config: check, print the settings, exit */
} ftpd_config;

/* Result of config_parse_args besides success. */
#define CONFIG_EXIT_OK 1 /* --help or --version was printed: exit 0 */

/* Fill *c from defaults, the -c file and the command line, then check it.
 * On a bad argument or config line prints one error line naming the option
 * or file:line and returns -1 (the caller exits 2). Returns 0, or
 * CONFIG_EXIT_OK after printing help or version. */
int config_parse_args(ftpd_config *c, int argc, char **argv);

/* The syslog facility named name (daemon, ftp, local0..local7, user):
 * its LOG_* value, or -1 for another name. */
int config_syslog_facility(const char *name);

/* Print every setting of c, one "key = value" line each in config file
 * syntax, to out (--check-config). A setting without a value (no users
 * file, say) is printed as a comment "# key =". Secrets are never printed. */
void config_print(const ftpd_config *c, FILE *out);

/* A byte count: digits with an optional K, M or G (powers of 1024), at
 * most 2^62. Zero only when allow_zero. Returns 0, or -1 when s is no
 * such count. */
int config_parse_size(const char *s, bool allow_zero, unsigned long long *out);

#endif
