/*
 * tls.h - FTPS (RFC 4217) with OpenSSL: the server's certificate context,
 * and TLS connections over the non-blocking control and data sockets.
 *
 * The context (certificate, key, TLS 1.2 and newer, OpenSSL's default
 * ciphers) is loaded once at startup, before any privilege drop, and
 * replaced by tls_reload(); every connection holds a reference to the
 * context it began with, so a reload never disturbs a running session.
 *
 * A data connection is accepted only when its TLS session resumes one of
 * its control connection's: each control connection gets a random session
 * id context, the data connections get the same one, and OpenSSL resumes a
 * session (by id or by ticket, TLS 1.2 and 1.3) only within the context it
 * was made in. Someone who reaches the passive port first, with a fresh
 * handshake or a session of their own, is refused.
 *
 * No OpenSSL type appears here: the rest of the server sees tls_conn only.
 */
#ifndef FTPD_TLS_H
#define FTPD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <sockserv.h>

#include "config.h"

/* Length of a control connection's session id context. */
#define TLS_SID_CTX_LEN 16

typedef struct tls_conn tls_conn;

/* Load the certificate and key of cfg (when cfg->tls_mode is not off).
 * On failure writes a message naming the file into why and returns -1. */
int tls_init(const ftpd_config *cfg, char *why, size_t size);

/* Reload the certificate and key from the configured paths. New
 * connections use the new context; the old one is kept (and -1 returned)
 * when loading fails. Thread-safe. */
int tls_reload(void);

/* Drop the context (at exit). */
void tls_cleanup(void);

/* True when FTPS is on (--tls optional or required). */
bool tls_enabled(void);

/* The main server and the one whose connections speak TLS from their
 * first byte (--tls-implicit-listen; NULL for none). */
void tls_set_listeners(ss_server *main_srv, ss_server *implicit);
bool tls_is_implicit(const ss_server *srv);

/* Forking mode, in a session process of server own: close the other
 * listener's descriptors inherited from the parent (ss_server_forget). */
void tls_forked_session(const ss_server *own);

/* A random session id context for a new control connection. */
int tls_new_sid_ctx(unsigned char ctx[TLS_SID_CTX_LEN]);

/* A server-side TLS connection over fd (non-blocking) with the given
 * session id context: a control connection (like NULL) takes the current
 * context; a data connection (like = its control connection) takes that
 * one's, whose cache and ticket keys made the session to resume, and may
 * use kTLS. NULL with errno on failure. fd stays the caller's. */
tls_conn *tls_conn_new(int fd, const unsigned char sid_ctx[TLS_SID_CTX_LEN], const tls_conn *like);

/* Send no TLS 1.3 session tickets after the handshake. For uploads: the
 * client never reads its data connection, and a client that closes it
 * with a ticket unread makes its kernel reset the connection, dropping
 * the upload's last bytes still in its send buffer. A download's client
 * reads them with the data, and keeps them for the next resumption
 * (curl and OpenSSL use a TLS 1.3 ticket once). */
void tls_conn_no_tickets(tls_conn *c);

/* Send a new TLS 1.3 ticket with the next write on c (the control
 * connection's next reply): an upload's data connection carries none, and
 * the client resumes its next data connection with this one. */
void tls_conn_ticket_on_next_write(tls_conn *c);

/* Run the handshake until deadline_ms (monotonic); a readable stop_fd
 * (>= 0) ends the wait with ECANCELED. Returns 0, or -1 with errno
 * (ETIMEDOUT, ECANCELED, ECONNRESET, EPROTO; the reason is logged under
 * who). */
int tls_conn_handshake(tls_conn *c, long long deadline_ms, int stop_fd, const char *who);

/* Non-blocking I/O. Read: > 0 bytes, 0 at the end of input (close_notify
 * or the peer's close), -1 with errno EAGAIN (tls_conn_want tells what to
 * poll for) or another error. Write: the count written (may be partial),
 * or -1 likewise. */
ssize_t tls_conn_read(tls_conn *c, void *buf, size_t n);
ssize_t tls_conn_write(tls_conn *c, const void *buf, size_t n);
/* The poll events the last EAGAIN waits for (POLLIN or POLLOUT). */
short tls_conn_want(const tls_conn *c);
/* Bytes decrypted and readable without touching the socket. */
size_t tls_conn_pending(const tls_conn *c);

/* Did the handshake resume an earlier session (of the same context)? */
bool tls_conn_resumed(const tls_conn *c);
/* The protocol name ("TLSv1.3"). */
const char *tls_conn_version(const tls_conn *c);

/* Is the kernel doing the record layer (kTLS) for sending / receiving? */
bool tls_conn_ktls_send(const tls_conn *c);
bool tls_conn_ktls_recv(const tls_conn *c);
/* kTLS only: send size bytes of file_fd from offset, without a copy.
 * Returns the count sent, or -1 with errno (EAGAIN: poll tls_conn_want). */
ssize_t tls_conn_sendfile(tls_conn *c, int file_fd, off_t offset, size_t size);

/* Send close_notify (without waiting for the peer's). Returns 1 when the
 * peer's close_notify has been seen too, 0 when not, -1 on error. */
int tls_conn_shutdown(tls_conn *c);

/* Free the connection (not its descriptor). NULL is allowed. */
void tls_conn_free(tls_conn *c);

#endif
