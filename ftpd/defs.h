/*
 * defs.h - every protocol and resource limit of sockserv-ftpd, in one place.
 */
#ifndef FTPD_DEFS_H
#define FTPD_DEFS_H

#define FTPD_NAME "sockserv-ftpd"
#define FTPD_VERSION "0.1.0"

/* Longest command line accepted, without CRLF. Longer lines get
 * "500 Line too long" and are discarded through their LF; a line that never
 * ends is discarded until the wait for the command ends (idle timeout,
 * login deadline), which closes the session. */
#define FTPD_LINE_MAX 4096
/* A command line still without its end after this many bytes ends the
 * session: nothing a client needs to send is that long. */
#define FTPD_DISCARD_MAX (1024 * 1024)
/* Longest command verb ("XPWD", "MLSD", ...). */
#define FTPD_VERB_MAX 8
/* Longest user name. */
#define FTPD_USER_MAX 64
/* Longest reply line we format (text after the code is cut there). */
#define FTPD_REPLY_MAX (FTPD_LINE_MAX + 128)

/* Failed logins allowed per session before "421" and close. */
#define FTPD_LOGIN_ATTEMPTS 3
/* A failed login is answered this long after its PASS arrived, whoever the
 * user and whatever the hash scheme, so the reply's timing tells nothing;
 * it must exceed the slowest password check in the users file. */
#define FTPD_LOGIN_FAIL_DELAY_MS 1000

/* Transfer buffer (the ASCII conversion buffer is twice as large). */
#define FTPD_XFER_BUF (128 * 1024)
/* Allocations from this size on get their own mapping, so they go back to
 * the system when freed (session buffers, listing names). */
#define FTPD_MMAP_THRESHOLD (128 * 1024)
/* Binary downloads: bytes per sendfile(2) call, and how many calls may pass
 * between looks at the control connection (ABOR, STAT). */
#define FTPD_SENDFILE_CHUNK (256 * 1024)
#define FTPD_SENDFILE_CHECK 1
/* HASH digests this many bytes between looks at the control connection
 * (ABOR, STAT) and the stop descriptor: about a millisecond of CPU. */
#define FTPD_HASH_STEP ((size_t)1024 * 1024)
/* HASH reads the file in pieces of this size, into a buffer allocated for
 * the command. */
#define FTPD_HASH_READ ((size_t)256 * 1024)
/* SIZE in TYPE A reads the file to count line ends; larger files get 550. */
#define FTPD_ASCII_SIZE_MAX (64 * 1024 * 1024)

/* Defaults of the configurable limits. */
#define FTPD_DEFAULT_LISTEN "127.0.0.1:2121"
#define FTPD_DEFAULT_MAX_CLIENTS 200
#define FTPD_DEFAULT_MAX_PER_IP 50
#define FTPD_DEFAULT_IDLE_TIMEOUT 300
#define FTPD_DEFAULT_DATA_TIMEOUT 60
#define FTPD_DEFAULT_LOGIN_TIMEOUT 30
/* Per-address limits count an IPv6 client by its /64 (one host or site). */
#define FTPD_DEFAULT_IPV6_PREFIX 64
/* All listings together hold at most this many bytes of names (to sort
 * them); a listing refused more is sent in directory order. */
#define FTPD_DEFAULT_LISTING_MEMORY (64ull << 20)
/* Failed logins per address or per account before a ban, and its length. */
#define FTPD_DEFAULT_MAX_LOGIN_FAILS 20
#define FTPD_DEFAULT_BAN_TIME 300
/* HASH digests files up to this size (about 1 CPU-second per GiB). */
#define FTPD_DEFAULT_HASH_MAX_SIZE (1ull << 30)
/* How long SIGTERM/SIGINT lets running transfers go on, seconds
 * (--stop-grace, the library's stop_grace); then their control
 * connections' input is shut down, which ends them. */
#define FTPD_DEFAULT_STOP_GRACE 30

/* A user's usage is counted again (a walk of the home) after this many
 * seconds, at the next upload that finds no other upload of the user
 * running, so files changed by other means are seen. */
#define FTPD_DEFAULT_QUOTA_RESCAN 600
/* Facility of --syslog. */
#define FTPD_DEFAULT_SYSLOG_FACILITY "ftp"

/* Upper bounds for configured values. */
#define FTPD_CLIENTS_LIMIT 10000
#define FTPD_TIMEOUT_LIMIT 86400

/* Users file: most accounts and longest line. */
#define FTPD_USERS_MAX 10000
#define FTPD_CONF_LINE_MAX 4096

/* How often the serve loop wakes when idle, seconds. */
#define FTPD_POLL_INTERVAL 0.5

#endif
