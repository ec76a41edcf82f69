/*
 * throttle.h - password-guessing budgets: failed logins per client address
 * and per account name, with a temporary ban.
 *
 * A key's failures are counted within a window of ban_time seconds from its
 * first failure; the max_fails-th failure bans the key for ban_time seconds.
 * An attempt is counted when its check starts and given back if it
 * succeeds.
 * Names are counted whether or not the account exists, so a ban tells
 * nothing about who exists. The counters live in shared memory under a
 * robust process-shared mutex, so threads and forked session processes
 * count together and a session killed while holding the lock stops nobody.
 * The table has a fixed size; when it is full, the entry idle longest that
 * holds no ban is reused.
 */
#ifndef FTPD_THROTTLE_H
#define FTPD_THROTTLE_H

#include <stdbool.h>
#include <sys/socket.h>

/* Entries in the table (addresses and names together). */
#define THROTTLE_SLOTS 4096

/* What throttle_fail reports as newly banned. */
#define THROTTLE_BAN_ADDR 1
#define THROTTLE_BAN_NAME 2

/* Set up the table. max_fails 0 turns bans off (every call below is then a
 * no-op). An IPv6 client counts by its /ipv6_prefix. Returns 0 or -1. */
int throttle_init(unsigned max_fails, unsigned ban_time, unsigned ipv6_prefix);

/* Is the address banned? (Checked when a client connects.) */
bool throttle_banned(const struct sockaddr *addr, const char *name);

/* Before a password check of name from addr: take one attempt from the
 * budgets of both. False (nothing taken) when either is banned or its
 * budget is spent, counting checks still running, so parallel connections
 * get no more guesses than one. */
bool throttle_attempt(const struct sockaddr *addr, const char *name);

/* After the check: a success gives the attempt back (and clears the
 * name's failures); a failure stays counted and may start a ban. Returns
 * the THROTTLE_BAN_* bits of the bans it started. */
int throttle_done(const struct sockaddr *addr, const char *name, bool ok);

#endif
