/*
 * test_ftpd_hash.c - HASH digests: published test vectors, ranges, a large
 * random file compared with a one-shot digest, the incremental interface,
 * and the error cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/hash.c"

#include <stdio.h>
#include <sys/random.h>

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

/* A memory file system when there is one: creating thousands of files on a
 * journaled disk can take seconds. */
static const char *scratch_dir(void)
{
    return access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "%s/ftpd-hash-XXXXXX", scratch_dir());
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/data", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Writes len bytes to the fixture's file and opens it for reading. */
static int make_file(const fixture *fx, const void *data, size_t len)
{
    int fd = open(fx->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    const unsigned char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    close(fd);
    fd = open(fx->path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void expect_digest(int fd, const char *algo, off_t start, off_t end, const char *want)
{
    char out[HASH_HEX_MAX];
    assert_int_equal(hash_file(fd, algo, start, end, out, sizeof out), 0);
    assert_string_equal(out, want);
}

/* The same digest computed in one call over memory. */
static void oneshot(const char *algo, const void *data, size_t len, char out[HASH_HEX_MAX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, md, &n, hash_md(hash_lookup(algo)), NULL), 1);
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_lookup(void **state)
{
    (void)state;
    assert_string_equal(hash_algorithms[0], "SHA-256");
    assert_string_equal(hash_algorithms[1], "SHA-1");
    assert_string_equal(hash_algorithms[2], "MD5");
    assert_null(hash_algorithms[3]);
    assert_string_equal(hash_lookup("sha-256"), "SHA-256");
    assert_string_equal(hash_lookup("Sha-1"), "SHA-1");
    assert_string_equal(hash_lookup("md5"), "MD5");
    assert_null(hash_lookup("SHA-512"));
    assert_null(hash_lookup("CRC32"));
    assert_null(hash_lookup(""));
    assert_null(hash_lookup(NULL));
}

static void test_vectors(void **state)
{
    fixture *fx = *state;
    int fd = make_file(fx, "abc", 3);
    expect_digest(fd, "SHA-256", 0, -1,
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect_digest(fd, "SHA-1", 0, -1, "a9993e364706816aba3e25717850c26c9cd0d89d");
    expect_digest(fd, "MD5", 0, -1, "900150983cd24fb0d6963f7d28e17f72");
    close(fd);

    fd = make_file(fx, "", 0);
    expect_digest(fd, "sha-256", 0, -1,
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_digest(fd, "SHA-1", 0, -1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    expect_digest(fd, "MD5", 0, -1, "d41d8cd98f00b204e9800998ecf8427e");
    close(fd);

    const char *fox = "The quick brown fox jumps over the lazy dog";
    fd = make_file(fx, fox, strlen(fox));
    expect_digest(fd, "SHA-256", 0, -1,
                  "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592");
    expect_digest(fd, "SHA-1", 0, -1, "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
    expect_digest(fd, "MD5", 0, -1, "9e107d9d372bb6826bd81d3542a419d6");
    /* An end past the size is cut at the size. */
    expect_digest(fd, "MD5", 0, 1000, "9e107d9d372bb6826bd81d3542a419d6");
    close(fd);
}

static void test_ranges(void **state)
{
    fixture *fx = *state;
    const char *fox = "The quick brown fox jumps over the lazy dog";
    char want[HASH_HEX_MAX];
    int fd = make_file(fx, fox, strlen(fox));
    /* [4, 9) is "quick". */
    oneshot("SHA-256", "quick", 5, want);
    expect_digest(fd, "SHA-256", 4, 9, want);
    oneshot("SHA-1", fox + 10, strlen(fox) - 10, want);
    expect_digest(fd, "SHA-1", 10, -1, want);
    /* An empty range, and a range starting exactly at the end. */
    expect_digest(fd, "MD5", 7, 7, "d41d8cd98f00b204e9800998ecf8427e");
    expect_digest(fd, "MD5", (off_t)strlen(fox), -1, "d41d8cd98f00b204e9800998ecf8427e");
    close(fd);
}

static void test_random_file(void **state)
{
    fixture *fx = *state;
    /* Several chunks and a ragged tail. */
    size_t len = 3 * HASH_CHUNK + 12345;
    unsigned char *data = malloc(len);
    char want[HASH_HEX_MAX];
    assert_non_null(data);
    for (size_t got = 0; got < len;) {
        ssize_t n = getrandom(data + got, len - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    int fd = make_file(fx, data, len);
    assert_int_equal(lseek(fd, 17, SEEK_SET), 17);
    for (size_t i = 0; hash_algorithms[i] != NULL; i++) {
        oneshot(hash_algorithms[i], data, len, want);
        expect_digest(fd, hash_algorithms[i], 0, -1, want);
    }
    /* A range across a chunk boundary. */
    off_t a = HASH_CHUNK - 100;
    off_t b = 2 * HASH_CHUNK + 7;
    oneshot("SHA-256", data + a, (size_t)(b - a), want);
    expect_digest(fd, "SHA-256", a, b, want);
    /* The descriptor's offset is untouched. */
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 17);
    close(fd);
    free(data);
}

static void test_errors(void **state)
{
    fixture *fx = *state;
    char out[HASH_HEX_MAX];
    int fd = make_file(fx, "abc", 3);
    errno = 0;
    assert_int_equal(hash_file(fd, "SHA-512", 0, -1, out, sizeof out), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(hash_file(fd, NULL, 0, -1, out, sizeof out), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(hash_file(fd, "MD5", 2, 1, out, sizeof out), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(hash_file(fd, "MD5", -1, -1, out, sizeof out), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(hash_file(fd, "MD5", 4, -1, out, sizeof out), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(hash_file(fd, "SHA-256", 0, -1, out, 64), -1);
    assert_int_equal(errno, ERANGE);
    /* MD5 fits in 33 bytes. */
    assert_int_equal(hash_file(fd, "MD5", 0, -1, out, 33), 0);
    close(fd);
    errno = 0;
    assert_int_equal(hash_file(-1, "MD5", 0, -1, out, sizeof out), -1);
    assert_int_equal(errno, EBADF);
    int dfd = open(fx->dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    errno = 0;
    assert_int_equal(hash_file(dfd, "MD5", 0, -1, out, sizeof out), -1);
    assert_int_equal(errno, EISDIR);
    close(dfd);
}

/* The incremental interface in uneven pieces gives the one-shot digest. */
static void test_incremental(void **state)
{
    (void)state;
    const char *fox = "The quick brown fox jumps over the lazy dog";
    size_t len = strlen(fox);
    char want[HASH_HEX_MAX], out[HASH_HEX_MAX];

    for (size_t i = 0; hash_algorithms[i] != NULL; i++) {
        hash_ctx *h = hash_begin(hash_algorithms[i]);
        assert_non_null(h);
        assert_int_equal(hash_update(h, fox, 0), 0);
        assert_int_equal(hash_update(h, fox, 7), 0);
        assert_int_equal(hash_update(h, fox + 7, len - 7), 0);
        oneshot(hash_algorithms[i], fox, len, want);
        assert_int_equal(hash_hex_size(h), strlen(want) + 1);
        assert_int_equal(hash_end(h, out, sizeof out), 0);
        assert_string_equal(out, want);
        hash_free(h);
    }
    /* Lower case is accepted, as in OPTS HASH. */
    hash_ctx *h = hash_begin("md5");
    assert_non_null(h);
    assert_int_equal(hash_hex_size(h), 33);
    /* Too small a buffer: ERANGE and nothing written. */
    memset(out, 'x', sizeof out);
    errno = 0;
    assert_int_equal(hash_end(h, out, 32), -1);
    assert_int_equal(errno, ERANGE);
    assert_int_equal(out[0], 'x');
    assert_int_equal(hash_end(h, out, 33), 0);
    assert_string_equal(out, "d41d8cd98f00b204e9800998ecf8427e");
    hash_free(h);
    /* An abandoned digest is freed without hash_end; NULL is ignored. */
    h = hash_begin("SHA-1");
    assert_non_null(h);
    assert_int_equal(hash_update(h, "abc", 3), 0);
    hash_free(h);
    hash_free(NULL);
    errno = 0;
    assert_null(hash_begin("SHA-512"));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(hash_begin(NULL));
    assert_int_equal(errno, EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test_setup_teardown(test_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
