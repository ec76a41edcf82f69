/*
 * tls.c - FTPS with OpenSSL: the certificate context and TLS connections
 * over non-blocking sockets (see tls.h). No TLS code of our own: OpenSSL
 * does the protocol, the session cache and the tickets; this file only
 * loads the context, swaps it on reload and drives handshakes, reads and
 * writes with poll.
 */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "timeutil.h"

struct tls_conn {
    SSL *ssl;
    int fd;
    short want; /* what the last EAGAIN waits for */
};

/* The current context. A connection takes its own reference under the
 * lock (SSL_CTX_up_ref), so a reload may drop the old one at any time. */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *cur_ctx;
static char cert_path[PATH_MAX];
static char key_path[PATH_MAX];
static ss_server *implicit_srv; /* --tls-implicit-listen's server */
static ss_server *explicit_srv; /* and the main one */

/* The last OpenSSL error as text (and the queue emptied). */
static const char *ssl_error_text(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();

    if (e == 0) {
        snprintf(buf, size, "unknown error");
    } else {
        ERR_error_string_n(e, buf, size);
    }
    ERR_clear_error();
    return buf;
}

/* A file OpenSSL is about to read: a clear errno message when it cannot
 * be opened at all (OpenSSL's own text for that is cryptic). */
static int check_readable(const char *option, const char *path, char *why, size_t size)
{
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(why, size, "--%s: %s: %s", option, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static SSL_CTX *make_ctx(char *why, size_t size)
{
    char err[256];
    SSL_CTX *ctx;

    if (check_readable("tls-cert", cert_path, why, size) < 0 ||
        check_readable("tls-key", key_path, why, size) < 0)
        return NULL;
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(why, size, "TLS: %s", ssl_error_text(err, sizeof(err)));
        return NULL;
    }
    /* TLS 1.2 and newer, OpenSSL's default ciphers. No renegotiation; a
     * peer that closes without close_notify ends its input as a clean
     * close does (the transfer's byte count tells the rest, as in clear). */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        snprintf(why, size, "TLS: %s", ssl_error_text(err, sizeof(err)));
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* The server-side cache serves session-id resumption (TLS 1.2);
     * tickets (both versions) carry the session id context inside. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        snprintf(why, size, "--tls-cert: %s: %s", cert_path, ssl_error_text(err, sizeof(err)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        snprintf(why, size, "--tls-key: %s: %s", key_path, ssl_error_text(err, sizeof(err)));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(why, size, "--tls-key: %s: does not match the certificate %s", key_path,
                 cert_path);
        ERR_clear_error();
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* A session process forked while another thread (the implicit listener's
 * loop, a reload) holds the lock must not inherit it held. */
static void lock_for_fork(void)
{
    pthread_mutex_lock(&ctx_lock);
}

static void unlock_after_fork(void)
{
    pthread_mutex_unlock(&ctx_lock);
}

int tls_init(const ftpd_config *cfg, char *why, size_t size)
{
    SSL_CTX *ctx;

    if (cfg->tls_mode == FTPD_TLS_OFF)
        return 0;
    if (pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork) != 0) {
        snprintf(why, size, "TLS: pthread_atfork failed");
        return -1;
    }
    snprintf(cert_path, sizeof(cert_path), "%s", cfg->tls_cert);
    snprintf(key_path, sizeof(key_path), "%s",
             cfg->tls_key[0] != '\0' ? cfg->tls_key : cfg->tls_cert);
    ctx = make_ctx(why, size);
    if (ctx == NULL)
        return -1;
    pthread_mutex_lock(&ctx_lock);
    cur_ctx = ctx;
    pthread_mutex_unlock(&ctx_lock);
    return 0;
}

int tls_reload(void)
{
    char why[PATH_MAX + 256];
    SSL_CTX *ctx, *old;

    if (!tls_enabled())
        return 0;
    ctx = make_ctx(why, sizeof(why));
    if (ctx == NULL) {
        log_msg("TLS reload failed, the old certificate stays: %s", why);
        return -1;
    }
    pthread_mutex_lock(&ctx_lock);
    old = cur_ctx;
    cur_ctx = ctx;
    pthread_mutex_unlock(&ctx_lock);
    SSL_CTX_free(old); /* running connections hold their own references */
    log_msg("TLS certificate reloaded from %s", cert_path);
    return 0;
}

void tls_cleanup(void)
{
    SSL_CTX *old;

    pthread_mutex_lock(&ctx_lock);
    old = cur_ctx;
    cur_ctx = NULL;
    pthread_mutex_unlock(&ctx_lock);
    SSL_CTX_free(old);
}

bool tls_enabled(void)
{
    bool on;

    pthread_mutex_lock(&ctx_lock);
    on = cur_ctx != NULL;
    pthread_mutex_unlock(&ctx_lock);
    return on;
}

void tls_set_listeners(ss_server *main_srv, ss_server *implicit)
{
    explicit_srv = main_srv;
    implicit_srv = implicit;
}

bool tls_is_implicit(const ss_server *srv)
{
    return srv != NULL && srv == implicit_srv;
}

void tls_forked_session(const ss_server *own)
{
    if (implicit_srv == NULL)
        return;
    ss_server_forget(own == implicit_srv ? explicit_srv : implicit_srv);
}

int tls_new_sid_ctx(unsigned char ctx[TLS_SID_CTX_LEN])
{
    size_t got = 0;

    /* Bounded: getrandom returns at most the count asked for. */
    while (got < TLS_SID_CTX_LEN) {
        ssize_t n = getrandom(ctx + got, TLS_SID_CTX_LEN - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

tls_conn *tls_conn_new(int fd, const unsigned char sid_ctx[TLS_SID_CTX_LEN], const tls_conn *like)
{
    tls_conn *c = calloc(1, sizeof(*c));
    SSL_CTX *ctx;

    if (c == NULL)
        return NULL;
    /* A data connection uses its control connection's context, whose
     * session cache and ticket keys made the session it must resume. */
    if (like != NULL) {
        ctx = SSL_get_SSL_CTX(like->ssl);
        SSL_CTX_up_ref(ctx);
    } else {
        pthread_mutex_lock(&ctx_lock);
        ctx = cur_ctx;
        if (ctx != NULL)
            SSL_CTX_up_ref(ctx);
        pthread_mutex_unlock(&ctx_lock);
    }
    if (ctx == NULL) {
        free(c);
        errno = ENOTSUP;
        return NULL;
    }
    c->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1 ||
        SSL_set_session_id_context(c->ssl, sid_ctx, TLS_SID_CTX_LEN) != 1) {
        ERR_clear_error();
        tls_conn_free(c);
        errno = ENOMEM;
        return NULL;
    }
    /* Data connections may use kTLS where the kernel offers it. */
    if (like != NULL)
        SSL_set_options(c->ssl, SSL_OP_ENABLE_KTLS);
    SSL_set_accept_state(c->ssl);
    c->fd = fd;
    c->want = POLLIN;
    return c;
}

void tls_conn_no_tickets(tls_conn *c)
{
    SSL_set_num_tickets(c->ssl, 0);
}

void tls_conn_ticket_on_next_write(tls_conn *c)
{
    /* TLS 1.3 only; with 1.2 the session id resumes again and again. */
    if (SSL_version(c->ssl) >= TLS1_3_VERSION)
        (void)SSL_new_session_ticket(c->ssl);
}

/* After a failed SSL call: EAGAIN with c->want set, 0 for the end of
 * input, or -1 with errno. */
static ssize_t io_fail(tls_conn *c, int r)
{
    int saved = errno;
    int e = SSL_get_error(c->ssl, r);

    switch (e) {
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_WANT_READ:
        c->want = POLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->want = POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        errno = saved != 0 && saved != EAGAIN ? saved : ECONNRESET;
        return -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

int tls_conn_handshake(tls_conn *c, long long deadline_ms, int stop_fd, const char *who)
{
    char err[256];

    /* Bounded by the deadline: each turn makes progress or waits for what
     * is left of it. */
    for (;;) {
        struct pollfd p[2] = {{.fd = c->fd}, {.fd = stop_fd, .events = POLLIN}};
        long long left;
        int e, r;

        ERR_clear_error();
        errno = 0;
        r = SSL_accept(c->ssl);
        if (r == 1)
            return 0;
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            p[0].events = POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            p[0].events = POLLOUT;
        } else {
            int saved = errno;

            if (e == SSL_ERROR_SSL) {
                log_msg("%s: TLS handshake failed: %s", who, ssl_error_text(err, sizeof(err)));
                errno = EPROTO;
            } else {
                ERR_clear_error();
                errno = saved != 0 ? saved : ECONNRESET;
            }
            return -1;
        }
        left = deadline_ms - ftpd_now_ms();
        if (left <= 0) {
            log_msg("%s: TLS handshake timed out", who);
            errno = ETIMEDOUT;
            return -1;
        }
        r = poll(p, stop_fd >= 0 ? 2 : 1, (int)left);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r > 0 && stop_fd >= 0 && (p[1].revents & POLLIN)) {
            errno = ECANCELED;
            return -1;
        }
    }
}

ssize_t tls_conn_read(tls_conn *c, void *buf, size_t n)
{
    size_t got = 0;
    int r;

    ERR_clear_error();
    errno = 0;
    r = SSL_read_ex(c->ssl, buf, n, &got);
    if (r == 1)
        return (ssize_t)got;
    return io_fail(c, r);
}

ssize_t tls_conn_write(tls_conn *c, const void *buf, size_t n)
{
    size_t put = 0;
    int r;

    if (n == 0)
        return 0;
    ERR_clear_error();
    errno = 0;
    r = SSL_write_ex(c->ssl, buf, n, &put);
    if (r == 1)
        return (ssize_t)put;
    r = (int)io_fail(c, r);
    if (r == 0) {
        errno = EPIPE; /* the peer closed its side */
        r = -1;
    }
    return r;
}

short tls_conn_want(const tls_conn *c)
{
    return c->want;
}

size_t tls_conn_pending(const tls_conn *c)
{
    int n = SSL_pending(c->ssl);

    return n > 0 ? (size_t)n : 0;
}

bool tls_conn_resumed(const tls_conn *c)
{
    return SSL_session_reused(c->ssl) == 1;
}

const char *tls_conn_version(const tls_conn *c)
{
    return SSL_get_version(c->ssl);
}

bool tls_conn_ktls_send(const tls_conn *c)
{
    return BIO_get_ktls_send(SSL_get_wbio(c->ssl)) > 0;
}

bool tls_conn_ktls_recv(const tls_conn *c)
{
    return BIO_get_ktls_recv(SSL_get_rbio(c->ssl)) > 0;
}

ssize_t tls_conn_sendfile(tls_conn *c, int file_fd, off_t offset, size_t size)
{
    ossl_ssize_t n;

    ERR_clear_error();
    errno = 0;
    n = SSL_sendfile(c->ssl, file_fd, offset, size, 0);
    if (n >= 0)
        return (ssize_t)n;
    if (errno == EAGAIN || errno == EINTR) {
        ERR_clear_error();
        c->want = POLLOUT;
        errno = EAGAIN;
        return -1;
    }
    return io_fail(c, -1) == 0 ? (errno = EPIPE, -1) : -1;
}

int tls_conn_shutdown(tls_conn *c)
{
    int r;

    ERR_clear_error();
    r = SSL_shutdown(c->ssl);
    ERR_clear_error();
    return r < 0 ? -1 : r;
}

void tls_conn_free(tls_conn *c)
{
    if (c == NULL)
        return;
    SSL_free(c->ssl);
    free(c);
}
