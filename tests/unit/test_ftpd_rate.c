/*
 * test_ftpd_rate.c - the token bucket's arithmetic (start, steady rate,
 * burst, debt), chunk sizes, which rate applies to whom, and a user's
 * bucket shared with a forked process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/rate.c"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* rate_wait looks at the control connection only while it sleeps, which
 * these tests never reach; control.c is not linked. */
bool control_input_pending(session *s)
{
    (void)s;
    return false;
}

#define SEC 1000000000LL

static void test_new_bucket_starts_empty(void **state)
{
    rate_bucket b = {0};

    (void)state;
    /* The first chunk is owed in full: no burst at the start. */
    assert_int_equal(rate_bucket_take(&b, 1000, 5 * SEC, 500) / 1000000, 500);
    /* Half a second later the debt is paid. */
    assert_int_equal(rate_bucket_take(&b, 1000, 5 * SEC + SEC / 2, 0), 0);
}

/* A sender that moves a chunk, then waits as told: over any span it moves
 * the rate, give or take one chunk. */
static void test_steady_rate(void **state)
{
    static const unsigned long long rates[] = {100, 4096, 2u << 20, 1ull << 30};

    (void)state;
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        rate_bucket b = {0};
        unsigned long long r = rates[i];
        size_t chunk = r / 16 < RATE_CHUNK_MIN ? RATE_CHUNK_MIN : (size_t)(r / 16);
        long long start = 7 * SEC, t = start, moved = 0;
        double got;

        /* Bounded: ten seconds' worth of chunks. */
        while (t - start < 10 * SEC) {
            t += rate_bucket_take(&b, r, t, chunk);
            moved += (long long)chunk;
        }
        got = (double)moved / ((double)(t - start) / 1e9);
        assert_true(got <= (double)r * 1.001);
        assert_true(got >= (double)r * 0.999 - (double)chunk / 10.0);
    }
}

static void test_burst_is_a_tenth_of_a_second(void **state)
{
    rate_bucket b = {0};
    unsigned long long r = 1 << 20;

    (void)state;
    assert_int_equal(rate_bucket_take(&b, r, SEC, 0), 0);
    /* Idle for an hour: the bucket holds a tenth of a second, no more. */
    assert_int_equal(rate_bucket_take(&b, r, 3601 * SEC, r / 10), 0);
    assert_true(rate_bucket_take(&b, r, 3601 * SEC, 1024) > 0);
    assert_true(rate_burst(r) == (double)r / 10.0);
    assert_true(rate_burst(3) == 1.0);
}

static void test_debt_adds_up(void **state)
{
    rate_bucket b = {0};

    (void)state;
    /* Two takers at the same moment: the second waits for both chunks. */
    assert_int_equal(rate_bucket_take(&b, 1000, SEC, 100) / 1000000, 100);
    assert_int_equal(rate_bucket_take(&b, 1000, SEC, 100) / 1000000, 200);
    /* A clock that seems to go back changes nothing. */
    assert_int_equal(rate_bucket_take(&b, 1000, SEC / 2, 0) / 1000000, 200);
    assert_int_equal(rate_bucket_take(&b, 0, SEC, 1 << 30), 0);
}

static ftpd_config cfg;

static void make_session(session *s, const char *user, bool anonymous)
{
    memset(s, 0, sizeof(*s));
    s->cfg = &cfg;
    s->logged_in = true;
    s->anonymous = anonymous;
    snprintf(s->user, sizeof(s->user), "%s", user);
}

static void test_limits_and_chunks(void **state)
{
    session s;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    make_session(&s, "alice", false);
    assert_int_equal(rate_chunk(&s, 'o', 4096), 4096);
    cfg.max_rate_down = 1 << 20;
    cfg.max_user_rate_up = 1 << 16;
    assert_int_equal(rate_session_limit(&s, 'o'), 1 << 20);
    assert_int_equal(rate_session_limit(&s, 'i'), 0);
    assert_int_equal(rate_user_limit(&s, 'i'), 1 << 16);
    assert_int_equal(rate_chunk(&s, 'o', 1 << 20), (1 << 20) / 16);
    assert_int_equal(rate_chunk(&s, 'o', 4096), 4096);
    assert_int_equal(rate_chunk(&s, 'i', 1 << 20), (1 << 16) / 16);
    /* The users file's own rate wins over the global per-user one, and the
     * stricter of the session's and the user's sizes the chunk. */
    s.account.rate_up = 1 << 12;
    s.account.rate_down = 1 << 24;
    assert_int_equal(rate_user_limit(&s, 'i'), 1 << 12);
    assert_int_equal(rate_chunk(&s, 'i', 1 << 20), RATE_CHUNK_MIN);
    assert_int_equal(rate_chunk(&s, 'o', 1 << 24), (1 << 20) / 16);
    /* Anonymous sessions have no account: the global per-user rate. */
    make_session(&s, "anonymous", true);
    s.account.rate_up = 1;
    assert_int_equal(rate_user_limit(&s, 'i'), 1 << 16);
}

static void test_user_bucket_shared_with_forked_process(void **state)
{
    session s;
    user_entry *x;
    pid_t pid;
    int status;
    long long now;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(rate_init(&cfg), 0);
    make_session(&s, "bob", false);
    now = 10 * SEC;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        session c;

        make_session(&c, "bob", false);
        lock();
        x = user_entry_of(&c, now);
        _exit(x != NULL && rate_bucket_take(&x->b[0], 1000, now, 1000) == SEC + 1 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The child held the lock when it died: the next taker goes on. The
     * child's second of debt is there, plus this chunk. */
    lock();
    x = user_entry_of(&s, now);
    assert_non_null(x);
    assert_int_equal(rate_bucket_take(&x->b[0], 1000, now, 1000) / 1000000, 2000);
    unlock();
    /* Other users have buckets of their own. */
    make_session(&s, "carol", false);
    lock();
    x = user_entry_of(&s, now);
    assert_int_equal(rate_bucket_take(&x->b[0], 1000, now, 1000) / 1000000, 1000);
    unlock();
}

static void test_full_table_reuses_idle_entries(void **state)
{
    session s;
    char name[32];

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(rate_init(&cfg), 0);
    lock();
    for (int i = 0; i < RATE_SLOTS; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        make_session(&s, name, false);
        assert_non_null(user_entry_of(&s, SEC));
        tab->e[s.rate.slot - 1].last_ns = SEC;
    }
    make_session(&s, "late", false);
    /* Every entry was used within the last second: none is taken over. */
    assert_null(user_entry_of(&s, SEC + SEC / 2));
    assert_non_null(user_entry_of(&s, 3 * SEC));
    unlock();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_bucket_starts_empty),
        cmocka_unit_test(test_steady_rate),
        cmocka_unit_test(test_burst_is_a_tenth_of_a_second),
        cmocka_unit_test(test_debt_adds_up),
        cmocka_unit_test(test_limits_and_chunks),
        cmocka_unit_test(test_user_bucket_shared_with_forked_process),
        cmocka_unit_test(test_full_table_reuses_idle_entries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
