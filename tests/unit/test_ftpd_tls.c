/*
 * test_ftpd_tls.c - the TLS context of sockserv-ftpd: loading at startup
 * with errors that name the file, and tls_reload, which swaps the context
 * for new connections, leaves running ones theirs, and keeps the old one
 * when the new files do not load. Certificates are made in-process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/tls.c"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

void log_msg(const char *fmt, ...)
{
    (void)fmt;
}

static char dir[] = "/tmp/ftpd-tls-unit-XXXXXX";

static char *path_in_dir(const char *name)
{
    static char buf[4][PATH_MAX];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, PATH_MAX, "%s/%s", dir, name);
    return p;
}

/* A self-signed certificate with the given common name, and its key. */
static void make_cert(const char *cn, const char *cert_file, const char *key_file)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    FILE *f;

    assert_non_null(key);
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    f = fopen(cert_file, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_file, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* The common name of the certificate a connection would present. */
static void conn_cn(const tls_conn *c, char *out, size_t size)
{
    X509 *x = SSL_get_certificate(c->ssl);

    assert_non_null(x);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)size);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    const char *names[] = {"a.pem", "a.key", "b.pem", "b.key"};

    (void)state;
    tls_cleanup();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(path_in_dir(names[i]));
    rmdir(dir);
    return 0;
}

static void test_init_errors_name_the_file(void **state)
{
    ftpd_config cfg;
    char why[PATH_MAX + 256];

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.tls_mode = FTPD_TLS_OFF;
    assert_int_equal(tls_init(&cfg, why, sizeof(why)), 0);
    assert_false(tls_enabled());

    cfg.tls_mode = FTPD_TLS_OPTIONAL;
    snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s", path_in_dir("missing.pem"));
    assert_int_equal(tls_init(&cfg, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "--tls-cert"));
    assert_non_null(strstr(why, "missing.pem"));

    make_cert("alpha", path_in_dir("a.pem"), path_in_dir("a.key"));
    make_cert("beta", path_in_dir("b.pem"), path_in_dir("b.key"));
    /* The key defaults to the certificate file, which has none. */
    snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s", path_in_dir("a.pem"));
    assert_int_equal(tls_init(&cfg, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "--tls-key"));
    assert_non_null(strstr(why, "a.pem"));
    /* A key that is not the certificate's. */
    snprintf(cfg.tls_key, sizeof(cfg.tls_key), "%s", path_in_dir("b.key"));
    assert_int_equal(tls_init(&cfg, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "--tls-key"));
    assert_non_null(strstr(why, "b.key"));
    assert_false(tls_enabled());
}

static void test_reload_swaps_and_keeps(void **state)
{
    ftpd_config cfg;
    char why[PATH_MAX + 256], cn[64];
    unsigned char sid[TLS_SID_CTX_LEN] = {1};
    int sv[2];
    tls_conn *first, *second, *third, *data;
    FILE *f;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    make_cert("alpha", path_in_dir("a.pem"), path_in_dir("a.key"));
    memset(&cfg, 0, sizeof(cfg));
    cfg.tls_mode = FTPD_TLS_REQUIRED;
    snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s", path_in_dir("a.pem"));
    snprintf(cfg.tls_key, sizeof(cfg.tls_key), "%s", path_in_dir("a.key"));
    assert_int_equal(tls_init(&cfg, why, sizeof(why)), 0);
    assert_true(tls_enabled());
    first = tls_conn_new(sv[0], sid, NULL);
    assert_non_null(first);
    conn_cn(first, cn, sizeof(cn));
    assert_string_equal(cn, "alpha");

    /* New files at the same paths: new connections get them. */
    make_cert("gamma", path_in_dir("a.pem"), path_in_dir("a.key"));
    assert_int_equal(tls_reload(), 0);
    second = tls_conn_new(sv[0], sid, NULL);
    assert_non_null(second);
    conn_cn(second, cn, sizeof(cn));
    assert_string_equal(cn, "gamma");
    /* The running one keeps its context, and so does its data connection
     * (the session cache that made its session lives there). */
    conn_cn(first, cn, sizeof(cn));
    assert_string_equal(cn, "alpha");
    data = tls_conn_new(sv[1], sid, first);
    assert_non_null(data);
    conn_cn(data, cn, sizeof(cn));
    assert_string_equal(cn, "alpha");

    /* A broken file: the reload fails and the context stays. */
    f = fopen(path_in_dir("a.pem"), "w");
    assert_non_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    assert_int_equal(tls_reload(), -1);
    third = tls_conn_new(sv[0], sid, NULL);
    assert_non_null(third);
    conn_cn(third, cn, sizeof(cn));
    assert_string_equal(cn, "gamma");

    tls_conn_free(data);
    tls_conn_free(first);
    tls_conn_free(second);
    tls_conn_free(third);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_errors_name_the_file),
        cmocka_unit_test(test_reload_swaps_and_keeps),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
