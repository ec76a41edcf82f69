/*
 * internal.h - what the library's modules share. Nothing here is public.
 * Shared helpers carry the ss__ prefix.
 */
#ifndef SOCKSERV_INTERNAL_H
#define SOCKSERV_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sockserv.h"

/* Limits, in one place. */
#define SS__ADDRSTRLEN 120          /* "unix:" + 107-byte path, or "[v6]:port" */
#define SS__RBUF_SIZE 8192          /* stream read buffer per request */
#define SS__DGRAM_REPLY_MAX 65507   /* largest UDP payload over IPv4 */
#define SS__DGRAM_REPLY_MAX6 65527  /* ... over IPv6 */
#define SS__DEFAULT_STACK (512u * 1024u)
#define SS__BACKOFF_MIN_MS 10       /* accept() out of descriptors: first pause */
#define SS__BACKOFF_MAX_MS 500      /* ... doubling up to this */
#define SS__STOP_STEP 0.02          /* graceful stop: look for a second stop this often */
#define SS__STOP_AFTER_CUT 2.0      /* ... and wait this long for requests after the cut */
#define SS__PROXY_TIMEOUT 5.0       /* PROXY header: deadline to read it (seconds) */
#define SS__PROXY_V1_MAX 107        /* PROXY v1: the longest header, CRLF included */
#define SS__PROXY_V2_MAX (16 + 4096) /* PROXY v2: the longest header we take */
#define SS__WORKERS_MAX 1024        /* pre-fork: most worker processes */
#define SS__TAKEOVER_MS 2           /* a connection no accepting thread waited for
                                       gets this long before the loop steps in
                                       (pool: queues it; threading: starts a spare) */

/* The peer a request counts against (limits.c): an IPv4 address, or an
 * IPv6 address cut to the server's peer_prefix6 bits. */
typedef struct ss__peer_key {
    unsigned char family; /* 4 or 6; 0 = no peer (Unix sockets) */
    unsigned char addr[16];
} ss__peer_key;

/* Connection accounting state (limits.c); NULL when no limit is set. */
typedef struct ss__limits ss__limits;
/* The PROXY protocol's trusted peers (proxy.c); NULL when off. */
typedef struct ss__proxy ss__proxy;
/* The pre-fork supervisor's state (prefork.c); NULL without workers. */
typedef struct ss__prefork ss__prefork;

/* Datagrams received together (recvmmsg) and the replies made meanwhile,
 * sent together (sendmmsg) at the batch's end (datagram.c). */
typedef struct ss__dgram_batch ss__dgram_batch;

struct ss_request {
    ss_server *srv;
    int fd;                 /* stream: the connection; datagram: server socket */
    bool truncated;
    bool eof;               /* no more input: a stream's end, or a datagram */
    bool replied;           /* datagram: a reply went out already */
    bool counted;           /* holds a slot in srv->limits (key below) */
    /* Datagram: the batch whose sendmmsg takes the reply after finish;
     * NULL: the reply is sent at once. */
    ss__dgram_batch *outq;
    /* Why it is turned away: set by admit (a limit), or by acquire for an
     * object taken only to be dropped (the pool's, when it is full). */
    ss_reject_reason reject_reason;
    ss__peer_key key;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    /* The peer that sent a PROXY header (addr then holds the real client);
     * proxy_addrlen 0 = no header. */
    struct sockaddr_storage proxy_addr;
    socklen_t proxy_addrlen;
    void *user;

    /* Input: stream read buffer, or the datagram's bytes. */
    char *in;
    size_t in_cap, in_pos, in_len;

    /* Output: stream write buffer (wbufsize > 0) or datagram reply. */
    char *out;
    size_t out_cap, out_len;

    char peer[SS__ADDRSTRLEN];

    /* The mode's own fields (ss__mode.req_ext_size bytes: threading's list
     * links, the pool's running flag), in the same allocation, so that
     * they cost no allocation of their own. */
    max_align_t mode_ext[];
};

/* A transport as a table of functions: what differs between a stream
 * connection and a datagram, so that no other file asks which one it has.
 * Python's TCPServer/UDPServer pair, with StreamRequestHandler's and
 * DatagramRequestHandler's rfile and wfile. */
typedef struct ss__transport {
    const char *name;
    int socktype;        /* SOCK_STREAM or SOCK_DGRAM */
    /* Requests talk through the server's own socket (datagrams): no request
     * has a connection of its own to cut, shut down or close, the socket
     * closes only after the handlers, and a forked child keeps it. */
    bool shared_socket;
    /* After bind: make the socket take requests (listen). */
    int (*activate)(ss_server *srv, int fd);
    /* Take the next request off the (non-blocking) server socket. Returns
     * 1 with *req filled, 0 when nothing is waiting, -1 on an error the
     * loop must report (errno set). */
    int (*get_request)(ss_server *srv, ss_request *req);
    /* Receive more input into the read buffer: the count added, 0 at the
     * end (req->eof set), -1 on error. NULL: the input comes whole. */
    ssize_t (*fill)(ss_request *req);
    /* A large read straight into the caller's buffer, or NULL. */
    ssize_t (*read_direct)(ss_request *req, void *buf, size_t n);
    /* ss_write, ss_flush and ss_reply, their arguments checked. */
    ssize_t (*write)(ss_request *req, const void *buf, size_t n);
    int (*flush)(ss_request *req);
    ssize_t (*reply)(ss_request *req, const void *buf, size_t n);
    /* After the handler's finish: send what is buffered (a stream's write
     * buffer; the datagram reply, even an empty one). -1 (errno) on an
     * error worth a report. */
    int (*finish_output)(ss_request *req);
    /* After a reject hook: send what it wrote. */
    void (*reject_output)(ss_request *req);
    /* Requests received and not yet handed out (a batch of datagrams): the
     * loop takes the next one without waiting. NULL: never any. */
    bool (*held)(ss_server *srv);
    /* The loop is leaving: send what waits (batched replies). May be NULL. */
    void (*loop_end)(ss_server *srv);
    /* ss_server_free: free the transport's own state. May be NULL. */
    void (*destroy)(ss_server *srv);
} ss__transport;

extern const ss__transport ss__transport_stream;
extern const ss__transport ss__transport_datagram;

/* A concurrency strategy (Python's mix-ins) as a table of functions. Every
 * mode counts its running requests in srv->active (ss__active_begin/_end),
 * which serves ss_server_active, drain, close and the graceful stop alike. */
typedef struct ss__mode {
    const char *name;   /* in error reports: "sync", "threading", ... */
    bool poll_first;    /* wait for readiness before trying get_request */
    size_t req_ext_size; /* bytes of ss_request.mode_ext the mode uses */
    int (*init)(ss_server *srv);
    /* The request object the next get_request fills, or NULL: when the mode
     * cannot take one now (pool full with SS_POOL_WAIT) it sets
     * mode_wait_fd, which the loop then waits on; without it, NULL is a
     * failure (errno set), which the loop reports and backs off from. */
    ss_request *(*acquire)(ss_server *srv);
    /* Run the request; takes over the object obtained from acquire.
     * Returns 0, or SS_ABORT to stop the serve loop (sync mode). */
    int (*process)(ss_server *srv, ss_request *req);
    /* Give back an object from acquire that carries no request to run. */
    void (*release)(ss_server *srv, ss_request *req);
    void (*service)(ss_server *srv);           /* each loop turn (may be NULL) */
    /* Take a request out of the reach of cut and destroy, before its
     * descriptor closes (ss__end_request); NULL when nothing holds it. */
    void (*unpublish)(ss_server *srv, ss_request *req);
    /* Drain's wait for a running request to end, for a mode whose requests
     * end unseen until it looks (forking: poll the children, reap); NULL:
     * ss__active_end signals the end. Returns by the monotonic deadline. */
    void (*wait_step)(ss_server *srv, double deadline);
    void (*close)(ss_server *srv);             /* honour block_on_close */
    void (*destroy)(ss_server *srv);           /* after close: free everything */
    /* A graceful stop's cut: shut down the input of every running request
     * (SHUT_RD) so that its handler sees the end of input and ends. */
    void (*cut)(ss_server *srv);
    /* A serve loop begins (once: ss_handle_request's, for one request) and
     * ends; between the two a mode may take requests on its own: threading
     * and pool stream servers let their threads accept (not with once), the
     * datagram pool's workers receive themselves. loop_end returns once no
     * thread of the mode will take a request again until the next
     * loop_begin. Both may be NULL. */
    void (*loop_begin)(ss_server *srv, bool once);
    void (*loop_end)(ss_server *srv);
} ss__mode;

/* The requests running now, in every mode: a count, and a condition
 * variable for those who wait for it to drop (drain, close, free, the
 * graceful stop). */
typedef struct ss__active {
    atomic_uint n;      /* read without the lock (a signal handler does) */
    unsigned waiters;   /* under mu: someone waits on cv */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} ss__active;

extern const ss__mode ss__mode_sync;
extern const ss__mode ss__mode_thread;
extern const ss__mode ss__mode_fork;
extern const ss__mode ss__mode_pool;
extern const ss__mode ss__mode_pool_dgram;

struct ss_server {
    /* What the application gave. */
    ss_options opt;
    char *address;              /* our copy of opt.address */
    ss_handler handler;
    ss__limits *limits;         /* connection accounting, NULL = off */
    ss__proxy *proxy;           /* PROXY protocol, NULL = off */
    ss__prefork *prefork;       /* pre-fork workers, NULL = none */

    /* The transport (stream.c, datagram.c) and the server socket. */
    const ss__transport *transport;
    int fd;                     /* listening / receiving socket */
    int deferred_fd;            /* datagram socket closed at free (daemon threads) */
    int family;                 /* the server socket's address family */
    size_t dgram_reply_max;     /* datagram: the largest reply (activate) */
    ss__dgram_batch *dgram_batch; /* datagram, batch > 1: the loop's batch */
    struct sockaddr_storage bound;
    socklen_t boundlen;
    char *unix_path;            /* file we created, removed on close */
    dev_t unix_dev;
    ino_t unix_ino;

    /* The mode (mode_*.c): its table, its own state, and what every mode
     * shares with the loop. */
    const ss__mode *mode;
    void *mode_state;
    int mode_wait_fd;           /* readable when acquire may succeed again */
    int mode_service_fd;        /* readable when the mode's service has work
                                   (forking: a child ended); -1 none */
    ss_request *loop_req;       /* the request object the loop reuses, for
                                   modes that run (sync) or hand off (fork)
                                   one request before taking the next */
    ss__active active;          /* running requests, every mode */
    bool in_request_child;      /* this copy runs in a forked request child
                                   (server.c and sysutil.c ask, too) */

    /* The loop (server.c). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running;               /* under mu: a serve loop is running */
    pthread_t loop_thread;
    bool closed;
    int wakefd;                 /* eventfd: readable = stop requested */
    atomic_int stop;            /* a stop was requested */
    unsigned backoff_ms;        /* > 0: accept() is paused after EMFILE */
    bool backoff_reported;

    /* Signals, and free cutting what still runs. */
    atomic_bool aborting;       /* free is cutting connections: no reports */
    atomic_int signal_stop;     /* the stop came from a signal (Ctrl-C) */
    atomic_int signal_forwarded; /* a stop signal sent on to the loop thread */

    /* Graceful stop (ss_server_stop, or a stop signal with stop_grace >= 0). */
    int stopfd;                 /* eventfd, readable once a graceful stop began */
    int sigfd;                  /* eventfd: a signal of ss_server_on_signal came;
                                   -1 until the first such call */
    atomic_int stopping;        /* a graceful stop began (stopfd written) */
    atomic_int stop_cut;        /* a second stop request: cut at once */
    atomic_llong stop_deadline_ns; /* monotonic end of the grace */
    bool stop_busy;             /* under mu: a thread runs the graceful stop */
    bool stop_done;             /* under mu: it ran since the loop started */
};

/* request.c */
ss_request *ss__request_new(ss_server *srv);
void ss__request_reset(ss_request *req);
void ss__request_free(ss_request *req);
int ss__finish_request(ss_request *req);
void ss__shutdown_request(ss_request *req);
void ss__close_request(ss_request *req);
void ss__handle_error(ss_server *srv, ss_request *req, int err);
void ss__abort_request(ss_request *req);

/* The request's tail, the same in every mode: finish (setup, handle,
 * finish, and the output: a datagram reply or the stream's buffer), then
 * ss__end_request. Returns as ss__finish_request. The mode disposes of the
 * object afterwards. */
int ss__run_request(ss_request *req);
/* End a request without running it, or after it ran: the mode's unpublish,
 * then ss__shutdown_request (which gives back its connection slot). */
void ss__end_request(ss_request *req);
/* acquire and release for modes that reuse srv->loop_req (sync, forking),
 * and release for any mode whose spare object is simply reset. */
ss_request *ss__acquire_loop_request(ss_server *srv);
void ss__release_reset(ss_server *srv, ss_request *req);

/* server.c: the count of running requests (srv->active). */
void ss__active_begin(ss_server *srv);
/* The request ended: the last access to srv by the thread that ran it
 * (ss_server_free may free it as soon as this returns). */
void ss__active_end(ss_server *srv);
unsigned ss__active_now(ss_server *srv);
/* Wait until at most `left` requests run, or the timeout (seconds, < 0:
 * none) passes. Returns 0, or -1 with ETIMEDOUT. */
int ss__active_wait(ss_server *srv, unsigned left, double timeout);

/* server.c: after get_request, in the thread that took the request:
 * verify_request, then the connection accounting (over a limit: the reject
 * hook). Returns 0 when the request is to be processed, -1 when it was
 * turned away and shut down (the mode releases the object). */
int ss__admit_request(ss_server *srv, ss_request *req);

/* relay.c: threads that accept on a stream server's listening socket
 * themselves (pool workers, threading mode's spare threads). Each waits in
 * an epoll set of its own that holds the listening socket with
 * EPOLLEXCLUSIVE (one waiter is woken per connection, as for threads
 * blocked in accept) and the mode's control eventfd (readable while
 * accepting is off: wakes every waiter), and optionally a wake eventfd
 * (EPOLLEXCLUSIVE: wakes one); -1 leaves either out.
 *
 * The kernel offers a connection to the exclusive waiters in the order their
 * sets were made, and passes over a set nobody waits in with epoll_wait (it
 * only marks it ready). So a set made after the threads' sets, which the
 * serve loop watches with poll(), turns readable only when no thread was
 * waiting to accept: the loop learns that it must take over accepting at no
 * cost to the threads. Returns the epoll descriptor, or -1 (errno; EINVAL
 * without EPOLLEXCLUSIVE, before Linux 4.5: the mode then hands off). */
int ss__relay_epoll(ss_server *srv, int ctlfd, int wakefd);
/* Wait in epfd up to timeout_ms (< 0: no limit) and accept a connection
 * into req. Returns 1 with a request, 0 when woken without one (the
 * control or wake descriptor, a timeout, a connection someone else took;
 * *timed_out tells a timeout), -1 on an accept error that calls for a
 * pause (EMFILE, ENFILE, ENOBUFS, ENOMEM; errno set). */
int ss__relay_accept(ss_server *srv, int epfd, int wakefd, int timeout_ms, ss_request *req,
                     bool *timed_out);
/* After -1 from ss__relay_accept: report the error once per episode
 * (*reported, shared by the mode's threads) and pause for *backoff_ms
 * (10 ms doubling to 500 ms), or until ctlfd turns readable. */
void ss__relay_pause(ss_server *srv, int ctlfd, unsigned *backoff_ms, atomic_bool *reported,
                     int err);

/* Run the reject hook for a request turned away before its handler (the
 * reason in req->reject_reason), send what it wrote, and shut the request
 * down. The mode's release follows. */
void ss__reject_request(ss_request *req);

/* limits.c: connection accounting (max_connections, max_per_peer). */
/* Fill *key for the peer at sa. Returns 0, or -1 when sa has no peer key
 * (Unix sockets, other families, a short length). */
int ss__peer_key_of(const struct sockaddr *sa, socklen_t len, unsigned prefix6,
                    ss__peer_key *key);
/* Make srv->limits if a limit is set. Returns 0 or -1 (ENOMEM). */
int ss__limits_init(ss_server *srv);
void ss__limits_free(ss_server *srv);
/* Count req in. Returns 0 (req->counted set), or -1 with
 * req->reject_reason set when a limit is reached, or -1 with reason NONE and
 * errno ENOMEM. */
int ss__limits_admit(ss_server *srv, ss_request *req);
/* Give back the slot of a request that ended (no-op unless counted; never in
 * a forked request child, whose copy of the table is not the parent's). */
void ss__limits_leave(ss_request *req);
/* Give back a slot whose key was moved out of its request (forking mode
 * keeps it per child until the child is reaped). */
void ss__limits_release(ss_server *srv, const ss__peer_key *key);

/* datagram.c: batches of datagrams (opt.batch > 1). */
#define SS__BATCH_MAX 1024
ss__dgram_batch *ss__dgram_batch_new(unsigned n);
void ss__dgram_batch_free(ss__dgram_batch *b);
/* Receive up to the batch's size of datagrams at once (replies still
 * waiting are sent first); with wait, block for the first if the socket is
 * a blocking one. Returns the count, 0 when none waits, -1 on an error the
 * caller reports (errno). */
int ss__dgram_batch_recv(ss_server *srv, ss__dgram_batch *b, bool wait);
/* Receive one datagram into req (get_request without a batch); with wait,
 * block for it if the socket is a blocking one. Returns as get_request. */
int ss__dgram_recv(ss_server *srv, ss_request *req, bool wait);
/* Datagrams received and not handed out yet. */
unsigned ss__dgram_batch_held(const ss__dgram_batch *b);
/* Hand the next received datagram to req (as get_request would). With
 * defer, its reply waits for the batch's sendmmsg. */
void ss__dgram_batch_take(ss_server *srv, ss__dgram_batch *b, ss_request *req, bool defer);
/* Send the replies waiting in the batch (one sendmmsg; errors go to
 * handle_error). */
void ss__dgram_batch_flush(ss_server *srv, ss__dgram_batch *b);

/* pool_dgram.c: the datagram pool, started by the pool mode's init. */
int ss__pool_dgram_init(ss_server *srv);

/* The request's own connection (a stream's), or -1: a datagram request
 * talks through the server's socket, which is no request's to cut, shut
 * down or close. */
static inline int ss__conn(const ss_request *req)
{
    return req->srv->transport->shared_socket ? -1 : req->fd;
}

/* proxy.c: the PROXY protocol (v1 and v2 headers). */
/* The parsed header: with_address says whether it named the real client
 * (src); a v2 LOCAL, a v1 UNKNOWN or a v2 header of another family keeps the
 * connection's own address. */
typedef struct ss__proxy_header {
    bool with_address;
    struct sockaddr_storage src;
    socklen_t srclen;
} ss__proxy_header;
#define SS__PROXY_NONE (-2) /* the bytes are no PROXY header at all */
#define SS__PROXY_BAD (-1)  /* a PROXY header, but a broken one */
/* Parse the first len bytes of a connection. Returns the header's length
 * (> 0, *out filled), 0 when more bytes are needed to tell, SS__PROXY_BAD or
 * SS__PROXY_NONE. Never reads past len. */
ssize_t ss__proxy_parse(const unsigned char *buf, size_t len, ss__proxy_header *out);
/* Make srv->proxy from the options. Returns 0, or -1 with errno (EINVAL: a
 * bad trusted list or a datagram server; ENOMEM). */
int ss__proxy_init(ss_server *srv);
void ss__proxy_free(ss_server *srv);
/* Whether the peer at sa may send a header (on the trusted list). */
bool ss__proxy_trusted(const ss__proxy *p, const struct sockaddr *sa, socklen_t len);
/* Right after accept: read the header if the options say so, with the
 * deadline and size bound, and put the real client into req->addr. Returns
 * 0 to go on with the request, -1 when it must be closed unserved (already
 * reported through handle_error where worth it). */
int ss__proxy_accept(ss_server *srv, ss_request *req);

/* server.c, for the pre-fork supervisor: the signals of
 * ss_server_on_signal that came are handed to pass (the supervisor sends
 * them on to its workers, whose loops run the functions); whether signo
 * has a function for srv; a worker's own descriptor for those signals
 * (the supervisor's is shared across fork). */
void ss__pass_signal_hooks(ss_server *srv, void (*pass)(ss_server *srv, int signo));
bool ss__signal_hooked(const ss_server *srv, int signo);
int ss__renew_sigfd(ss_server *srv);

/* prefork.c: N worker processes with SO_REUSEPORT sockets. */
/* After the first socket is open (srv->fd): open the others and take the
 * configured mode aside (the supervisor runs no mode). Returns 0 or -1. */
int ss__prefork_init(ss_server *srv);
/* The supervisor's loop, called by ss_serve_forever in the supervisor
 * (the loop is entered). Returns as ss_serve_forever. */
int ss__prefork_serve(ss_server *srv, double poll_interval);
/* True in the supervisor (not in a worker): it takes no requests. */
bool ss__prefork_supervisor(const ss_server *srv);
void ss__prefork_close(ss_server *srv);
void ss__prefork_free(ss_server *srv);

/* socket.c */
int ss__open_server_socket(ss_server *srv);
void ss__close_server_socket(ss_server *srv);
/* In a forked request child: close the server socket unless the request
 * talks through it (datagrams); the child takes no requests. */
void ss__child_server_socket(ss_server *srv);

/* sysutil.c: system calls wrapped once. */
/* srv may be NULL; when given, a signal that arrives after a stop was
 * requested ends the call with EINTR instead of a retry. */
ssize_t ss__send_all(ss_server *srv, int fd, const void *buf, size_t n);
ssize_t ss__recv(ss_server *srv, int fd, void *buf, size_t n);
/* Poll up to SS__POLL_MAX descriptors for input (negative ones are left
 * out); ready[i] says whether fds[i] is readable (or has an error). Returns
 * poll's result: -1 with errno on failure (EINTR included). */
#define SS__POLL_MAX 4
int ss__poll(const int *fds, bool *ready, int n, int timeout_ms);
int ss__set_sock_timeout(int fd, double seconds);
double ss__now(void);
int ss__ms_until(double deadline);
/* Wait on cv (mu held) until woken or the monotonic deadline (INFINITY: no
 * limit) passes. Returns 0, or ETIMEDOUT once the deadline has passed. */
int ss__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline);
void ss__close(int fd);
int ss__block_signals(sigset_t *old);
/* Make threads created with attr start with every asynchronous signal
 * blocked (glibc 2.32's pthread_attr_setsigmask_np), so that not even the
 * first instructions of a library thread run an application's handler.
 * Without it a no-op: the thread blocks them itself (ss__block_signals). */
int ss__attr_block_signals(pthread_attr_t *attr);


/* server.c */
bool ss__stop_requested(ss_server *srv);
void ss__reset_stop_signals(void);
/* Block the signals ss_shutdown_on_signal took over, for the moments around
 * fork() in which a child would still run the parent's handler. */
int ss__block_stop_signals(sigset_t *old);
/* In a forked request child: the stop signals end it (stop_grace < 0, as
 * before) or are caught and do nothing (stop_grace >= 0: the parent runs
 * the grace and cuts the connection). */
void ss__child_stop_signals(ss_server *srv);
/* A graceful stop began (also true in a forked child, through stopfd). */
bool ss__stopping(const ss_server *srv);
/* sysutil.c: whether an interrupted call goes on (see retry_eintr). */
bool ss__retry_eintr(ss_server *srv);
/* The server whose request the calling thread runs (threading and pool
 * workers), so that drain from inside a handler does not wait for itself. */
extern _Thread_local ss_server *ss__current_server;
/* The server whose loop the calling thread runs (sync handlers run there). */
extern _Thread_local ss_server *ss__loop_server;
void ss__wake_loop(ss_server *srv);

#endif
