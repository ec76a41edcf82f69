/*
 * rate.h - bandwidth limits: token buckets per session and per user.
 *
 * A session obeys the stricter of two buckets for each direction: its own
 * (--max-rate-down, --max-rate-up) and the one its user shares with all of
 * that user's sessions (the users file's rate-down=/rate-up=, else
 * --max-user-rate-down/--max-user-rate-up). All anonymous sessions count
 * as one user. The shared buckets live in shared memory under a robust
 * process-shared mutex, made before any session starts, so threads and
 * forked session processes draw from the same buckets.
 *
 * A chunk is sent first and paid for afterwards: the bucket may go into
 * debt, and rate_wait then sleeps until the debt is paid. An idle bucket
 * fills up to a tenth of a second's worth of bytes (the largest burst); a
 * new one starts empty.
 */
#ifndef FTPD_RATE_H
#define FTPD_RATE_H

#include <stddef.h>

#include "config.h"

typedef struct session session;

/* One token bucket. tokens goes below zero while a chunk is owed. */
typedef struct rate_bucket {
    double tokens;
    long long last_ns; /* monotonic time of the last update; 0 = never used */
} rate_bucket;

/* A session's own state (kept in the session, see session.h). */
typedef struct rate_session {
    rate_bucket own[2]; /* [0] to the client, [1] from the client */
    int slot;           /* 1 + index of the user's shared entry; 0 = not looked up */
} rate_session;

/* Entries in the shared table (users with a shared rate at once). */
#define RATE_SLOTS 1024
/* The smallest chunk the rate lets through at once, bytes. */
#define RATE_CHUNK_MIN 512

/* Make the shared table (before the server starts sessions). Returns 0, or
 * -1 with errno when the shared memory cannot be made. */
int rate_init(const ftpd_config *cfg);

/* After a chunk of bytes has moved in direction ('o' to the client, 'i'
 * from it): charge it to the session's buckets and sleep while they are in
 * debt. The sleep ends early when a command arrives on the control
 * connection or the server stops, so the transfer loop serves ABOR and
 * STAT at once; the debt stays and is paid after the next chunk. */
void rate_wait(session *s, char direction, size_t bytes);

/* The largest chunk to move at once in direction: max, or less when a rate
 * applies (about 1/16 s of it, at least RATE_CHUNK_MIN), so that a chunk
 * never takes long to pay for. */
size_t rate_chunk(const session *s, char direction, size_t max);

/* The rates that apply to the session in direction, bytes per second (0 =
 * none): its own, and the one its user shares. */
unsigned long long rate_session_limit(const session *s, char direction);
unsigned long long rate_user_limit(const session *s, char direction);

/* The token bucket itself (exposed for tests): bring b up to now_ns at rate
 * bytes per second (at most rate_burst(rate) tokens), take bytes, and
 * return how many nanoseconds to wait until the debt is paid (0 = none). */
long long rate_bucket_take(rate_bucket *b, unsigned long long rate, long long now_ns, size_t bytes);
/* The most tokens an idle bucket holds: a tenth of a second's worth. */
double rate_burst(unsigned long long rate);

#endif
