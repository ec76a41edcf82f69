/*
 * sockserv.h - a socket server framework in C, after Python's socketserver.
 *
 * One request walks a straight line:
 *
 *   ss_serve_forever -> get_request (accept / recvfrom) -> verify_request
 *     -> the connection limits, if set (over one: the reject hook, close)
 *     -> process_request (the mode: sync, threading, forking or pool)
 *       -> finish_request: handler.setup, handler.handle, handler.finish
 *       -> shutdown_request (close the connection, release the request)
 *
 * A server has a transport (TCP, UDP, Unix stream, Unix datagram, chosen by
 * the address string and the socket type) and a mode (how requests run
 * concurrently). Both are options; the handler API is the same for all.
 *
 * Conventions: functions return 0 (or a byte count) on success and -1 with
 * errno set on failure. The library never prints except through the
 * handle_error hook, never exits, opens every descriptor close-on-exec, never
 * raises SIGPIPE and retries system calls interrupted by signals.
 */
#ifndef SOCKSERV_H
#define SOCKSERV_H

#include <stdarg.h>
#include <stdbool.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SS_API __attribute__((visibility("default")))
#define SS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SS_API
#define SS_PRINTF(f, a)
#endif

#define SS_VERSION_MAJOR 0
#define SS_VERSION_MINOR 1
#define SS_VERSION_PATCH 0

typedef struct ss_server ss_server;
typedef struct ss_request ss_request;

/* Socket type: a byte stream (TCP, Unix stream) or datagrams (UDP, Unix
 * datagram). Python's TCPServer/UnixStreamServer vs UDPServer/UnixDatagramServer. */
typedef enum ss_socktype {
    SS_STREAM = 0,
    SS_DATAGRAM = 1
} ss_socktype;

/* How requests run (Python's mix-ins, plus a bounded pool). */
typedef enum ss_mode {
    SS_MODE_SYNC = 0,  /* one at a time, in the serving thread */
    SS_MODE_THREADING, /* a thread per request (ThreadingMixIn); a thread
                          whose request ended takes the next one */
    SS_MODE_FORKING,   /* a new process per request (ForkingMixIn) */
    SS_MODE_POOL       /* a fixed set of worker threads and a bounded queue
                          (who takes the requests: see below) */
} ss_mode;

/*
 * Who accepts a stream connection. In sync and forking mode, and under
 * ss_handle_request in every mode, the serving thread does (Python's way).
 * Under ss_serve_forever, a stream server in threading or pool mode lets its
 * own threads accept, as hand-written servers of those strategies do:
 *
 *   threading  threads waiting for a connection ("spares") accept it; the
 *              one that takes a connection starts a new spare when fewer
 *              than two are left, then serves the connection; a thread whose
 *              request ended waits up to 2 s for the next one (at most 16
 *              wait at a time) before it ends. A request normally costs no
 *              thread creation, and accepting never waits for one thread
 *              that must win the processor against every busy one.
 *   pool       every idle worker waits for a connection and serves the one
 *              it takes; no connection is handed from thread to thread.
 *
 * The kernel wakes one waiting thread per connection (epoll with
 * EPOLLEXCLUSIVE; Linux 4.5, older kernels keep the serving thread
 * accepting). In those modes verify_request, the connection limits and the
 * reject hook run in the thread that accepted, so they may run in several
 * threads at once, and service_actions runs at least every poll_interval
 * rather than after each request.
 *
 * The pool's queue and its policy keep their meaning: the requests in
 * flight are at most pool_workers + pool_queue. While every worker is busy
 * (none has come back to accepting for 2 ms), the serving thread takes over
 * accepting and queues connections for the workers as before; a worker takes
 * the queued ones before it accepts again, and the serving thread stops as
 * soon as one is idle. So SS_POOL_WAIT leaves further connections in the
 * listen backlog once pool_queue are queued, and SS_POOL_REJECT turns them
 * away through the reject hook (reason SS_REJECT_QUEUE_FULL), exactly when
 * pool_workers requests run and pool_queue wait. Datagram servers: see
 * ss_pool_full.
 */

/* What the pool does when its queue is full (streams: see above).
 *
 * A datagram server's pool has no hand-off queue on its way: the workers
 * receive from the shared socket themselves. With SS_POOL_WAIT the socket
 * turns blocking (the library's other calls on it do not block), a free
 * worker waits in its receive, at most pool_workers datagrams (or batches)
 * are in hand, and the socket's receive buffer is the queue (pool_queue does
 * not apply). With SS_POOL_REJECT, while every worker is busy the serving
 * thread receives and queues up to pool_queue datagrams, and the next one
 * goes to the reject hook. Either way verify_request, the connection limits
 * and their reject hook run in the worker that received the datagram.
 * Workers receive only while ss_serve_forever runs; with SS_POOL_WAIT a
 * worker still waiting in its receive when the loop returns may take one
 * more datagram, which it holds (unserved, uncounted) for the next
 * ss_serve_forever, so ss_handle_request after ss_serve_forever on the same
 * server may miss it; ss_server_close drops it. */
typedef enum ss_pool_full {
    SS_POOL_WAIT = 0, /* stop taking requests until a slot frees: back-pressure
                         into the kernel's listen backlog / socket buffer */
    SS_POOL_REJECT    /* take the request and drop it at once: a stream
                         connection is closed, a datagram is discarded; the
                         reject hook (if set) runs first, e.g. to say "busy" */
} ss_pool_full;

/* Handler return values. Any other negative value counts as SS_ERROR. */
#define SS_OK 0
#define SS_ERROR (-1) /* like an Exception: handle_error runs, serving goes on */
#define SS_ABORT (-2) /* like SystemExit: no handle_error; in sync mode the
                         serve loop stops and returns -1 with errno ECANCELED;
                         in threading/pool mode only this request ends; a
                         forked child exits with status 1 */

/*
 * The request handler (Python's BaseRequestHandler). Every member may be NULL.
 * setup runs first; if it returns non-zero, handle and finish are skipped
 * (as in Python). finish runs whenever setup succeeded, even if handle failed.
 * After finish, a datagram reply buffered with ss_write() is sent, and the
 * request is shut down and released.
 */
typedef struct ss_handler {
    int (*setup)(ss_request *req);
    int (*handle)(ss_request *req);
    void (*finish)(ss_request *req);
} ss_handler;

/* Why a request was turned away before its handler ran (the reject hook
 * reads it with ss_request_reject_reason). */
typedef enum ss_reject_reason {
    SS_REJECT_NONE = 0,
    SS_REJECT_QUEUE_FULL,      /* pool + SS_POOL_REJECT: the queue is full */
    SS_REJECT_MAX_CONNECTIONS, /* max_connections requests run already */
    SS_REJECT_MAX_PER_PEER     /* max_per_peer requests of this peer run */
} ss_reject_reason;

/* PROXY protocol handling (ss_options.proxy_protocol). */
typedef enum ss_proxy_mode {
    SS_PROXY_OFF = 0,  /* no header is read (default) */
    SS_PROXY_OPTIONAL, /* a trusted peer may send a header or not: without
                          one its first bytes are the request's data; an
                          untrusted peer's bytes are never read as one */
    SS_PROXY_REQUIRED  /* every connection must come from a trusted peer
                          and start with a valid header; any other is
                          closed before verify_request, and reported
                          through handle_error (EACCES: untrusted peer,
                          EPROTO: bad or missing header, ETIMEDOUT: the
                          deadline passed) */
} ss_proxy_mode;

/*
 * Server options. Call ss_options_init() first: it fills in Python's defaults,
 * then set what you need. Where we differ from Python, the comment says why.
 *
 * The struct carries its own size (struct_size, set by ss_options_init) and
 * new options are only ever appended, so a program built against an older
 * header keeps working with a newer library: ss_server_new takes the options
 * the program's struct has and the defaults for the rest; and a program
 * built against a newer header fails cleanly (EINVAL) on an older library
 * only when it sets an option that library does not know. A size field
 * rather than one setter per option keeps the plain designated-field style
 * (opt.mode = ...) that every user writes; many C libraries version their
 * option structs the same way (and Linux's clone3/openat2 argument structs).
 */
typedef struct ss_options {
    size_t struct_size;         /* sizeof the struct the caller has; set by
                                   ss_options_init, leave it alone */
    /* "127.0.0.1:8003", "[::1]:0", "[::]:21" (dual-stack), "localhost:80",
     * "unix:/path/to/sock", "unix:@abstract", ":8003" or "*:8003" (every
     * IPv4 address, Python's ""), "[fe80::1%eth0]:80". Port 0 binds an
     * ephemeral port;
     * ss_server_address() reads back the bound address. Default
     * "127.0.0.1:0". */
    const char *address;
    ss_socktype type;           /* default SS_STREAM */
    ss_mode mode;               /* default SS_MODE_SYNC. Forking: the child
                                   ends with _exit(), so flush your own stdio
                                   buffers in the handler; it dies of the
                                   signals given to ss_shutdown_on_signal
                                   (it ignores them with stop_grace >= 0). */

    int request_queue_size;     /* listen() backlog; default SOMAXCONN, as
                                   Python 3.15 (gh-80184): Python's older 5
                                   drops connections under light load */
    bool allow_reuse_address;   /* SO_REUSEADDR; default false */
    bool allow_reuse_port;      /* SO_REUSEPORT; default false */
    double timeout;             /* ss_handle_request() wait, seconds; < 0
                                   means none (Python's None); default -1,
                                   in every mode (Python's ForkingMixIn
                                   sets 300). ss_serve_forever ignores it. */
    size_t max_packet_size;     /* datagram receive size; default 8192.
                                   Longer datagrams are truncated, as in
                                   Python; ss_request_truncated() tells. */
    bool daemon_threads;        /* threading: ss_server_close() does not wait
                                   for these threads; default false */
    bool block_on_close;        /* threading/forking/pool: ss_server_close()
                                   waits for running requests; default true */
    unsigned max_children;      /* forking: at most this many children; the
                                   loop waits for one to exit; default 40 */
    unsigned pool_workers;      /* pool: worker threads; default 8 */
    unsigned pool_queue;        /* pool: queued requests beyond the busy
                                   workers; default 64 (stream servers queue
                                   only while every worker is busy, see
                                   "Who accepts") */
    ss_pool_full pool_full;     /* pool: policy when the queue is full */
    size_t thread_stack_size;   /* threading/pool: bytes per thread stack;
                                   0 = 512 KiB (default) */
    bool disable_nagle_algorithm; /* TCP_NODELAY on accepted connections */
    double request_timeout;     /* per-request socket timeout in seconds for
                                   reads and writes (StreamRequestHandler.
                                   timeout); < 0 = none (default) */
    size_t wbufsize;            /* stream output buffer; 0 = unbuffered, every
                                   ss_write() is sent at once (Python's
                                   wbufsize = 0, the default) */
    bool unlink_stale_unix;     /* unix: remove an existing socket file at the
                                   path if nothing listens on it, and remove
                                   the file we created on close; default true
                                   (Python does neither, which leaves users
                                   with EADDRINUSE after every crash) */

    /* Hooks (Python's overridable BaseServer methods). NULL = default. */
    /* Runs in the thread that took the request, before process_request
     * (the serving thread; a pool worker or a spare thread of a threading
     * stream server under ss_serve_forever, see "Who accepts": then in
     * several threads at once); false rejects the request, which is then
     * shut down (closed) without a handler. */
    bool (*verify_request)(ss_request *req);
    /* Called when a handler returns SS_ERROR, when a request cannot be
     * started (thread or process creation failed), and for server-level
     * errors such as accept() failing with EMFILE (req is NULL then). err is
     * an errno value. May run in any thread. Default: one line on stderr. */
    void (*handle_error)(ss_server *srv, ss_request *req, int err);
    /* Called by ss_handle_request() when the timeout passes. */
    void (*handle_timeout)(ss_server *srv);
    /* Called once per turn of the serve loop (after each request the loop
     * takes, and at least every poll_interval; a threading or pool stream
     * server's threads accept without the loop, see "Who accepts"). */
    void (*service_actions)(ss_server *srv);
    /* Called in the thread that took the request (as verify_request) for
     * each request turned away before a handler runs: the pool's queue is full (pool + SS_POOL_REJECT), or
     * max_connections or max_per_peer is reached (every mode). It may write
     * a last word (a stream: "421 Too many connections\r\n"; a datagram:
     * ss_reply or ss_write, sent at once); then the connection is shut down
     * and closed, or the datagram dropped. ss_request_reject_reason tells
     * why. It should not wait long: the thread that took the request (the
     * loop, or a thread that accepts) waits for it. */
    void (*reject)(ss_request *req);
    /* Called after the socket is made and the options above are applied,
     * before bind(): set further socket options here (SO_RCVBUF, IPV6_V6ONLY
     * for an IPv6-only "[::]", IP_FREEBIND, ...). Non-zero fails
     * ss_server_new with the errno it set. (Python: overriding
     * server_bind.) */
    int (*prepare_socket)(ss_server *srv, int fd);

    void *user;                 /* yours; ss_server_user() returns it */

    /* ---- appended after 0.1; zero keeps the 0.1 behaviour ---- */

    /* Connection accounting, in every mode and transport. A request counts
     * from the moment it passed verify_request until it ends (a stream: its
     * connection; a datagram: while its handler runs). Over a limit the
     * request goes to the reject hook and is closed (dropped) without a
     * handler. A slot is free again when the request ends: a stream's just
     * before its connection is shut down (a client that saw the end can
     * come back at once), a datagram's after its reply went out; in forking
     * mode when the server reaps the child, whatever ended it (exit, crash,
     * SIGKILL), which can be a moment after the client saw the end. */
    unsigned max_connections;   /* requests at once; 0 = no limit (default) */
    unsigned max_per_peer;      /* requests at once from one peer; 0 = no
                                   limit (default). IPv4 (and IPv4-mapped
                                   IPv6) peers are single addresses; Unix
                                   socket peers are not limited by it */
    unsigned peer_prefix6;      /* IPv6: the prefix length that names one
                                   peer, 0..128; default 64 (a /64 is what a
                                   single host usually gets; 128 = per
                                   address) */

    /* Graceful stop on a stop signal (ss_shutdown_on_signal), in seconds:
     * the loop stops accepting, running requests get this long to end, then
     * their input is shut down (see ss_server_stop); a second stop signal
     * cuts at once; ss_serve_forever returns once the stop is over. Forked
     * children then catch the stop signals and do nothing (the parent cuts
     * their connections). < 0 (default -1): no grace, as Python: the loop
     * stops at once, a sync handler's blocked call fails with EINTR, forked
     * children die of the signal, and threads and pool workers finish their
     * requests. NaN is EINVAL. */
    double stop_grace;

    /* Pre-fork scale-out: 0 (default) = one process, as before. N >= 1 =
     * ss_serve_forever runs N worker processes, each with its own listening
     * (receiving) socket bound to the same address with SO_REUSEPORT, so
     * that the kernel spreads the connections; each worker serves in the
     * configured mode (sync, threading, forking or pool). ss_server_new
     * makes all N sockets at once (a port of 0 is read back from the first
     * and shared), so ss_server_address works before serving. The process
     * that calls ss_serve_forever supervises: a worker that dies (a signal,
     * or an exit status other than 0) is restarted, at once the first time
     * and with a pause doubling from 0.1 s to 5 s while it keeps dying
     * within a second of its start, and reported through handle_error (req
     * NULL, err EOWNERDEAD); a worker that ends with status 0 (its loop was
     * stopped from inside, e.g. ss_shutdown in a handler) stops the whole
     * server. ss_shutdown, ss_server_stop and the stop signals stop every
     * worker: each gets SIGTERM and runs the library's graceful stop (with
     * ss_server_stop's or stop_grace's grace, a second SIGTERM when it ends,
     * SIGKILL 3 s after that); ss_serve_forever returns once every worker
     * was reaped. Workers ignore SIGINT (a terminal's Ctrl-C goes to the
     * whole group; the supervisor decides). The connection limits
     * (max_connections, max_per_peer), ss_server_active and
     * ss_server_peer_count are per worker; in the supervisor
     * ss_server_active is 0. Handlers, hooks and the mode's threads run in
     * the workers only; ss_handle_request fails with EINVAL. A Unix socket
     * address has no SO_REUSEPORT: its workers share one socket. At most
     * 1024. */
    unsigned workers;

    /* PROXY protocol (HAProxy's v1 text and v2 binary header) on stream
     * servers; EINVAL for datagram servers. A load balancer that speaks it
     * sends, first on each connection, the address of the real client.
     * With OPTIONAL or REQUIRED the header is read in the thread that
     * accepts, right after accept and before verify_request, within a
     * deadline (request_timeout when set and shorter, otherwise 5 s) and a
     * size bound, and only from a peer on the proxy_trusted list. Then
     * ss_request_client_address, ss_request_client_str, verify_request, the
     * connection limits and handle_error's report see the real client;
     * ss_request_proxy_address returns the proxy's own address. The bytes
     * after the header stay buffered for the handler's reads. A v2 LOCAL
     * header (a proxy's health check), a v1 UNKNOWN one and v2 families
     * without an IP address (UNSPEC, Unix) keep the connection's own
     * address; v2 TLVs are skipped. */
    ss_proxy_mode proxy_protocol;
    /* The peers whose header is read: comma-separated IPv4/IPv6 addresses
     * or CIDR prefixes ("127.0.0.1,10.0.0.0/8,::1,fd00::/8"); NULL or ""
     * (default) trusts every peer, Unix socket peers included. An entry
     * that does not parse makes ss_server_new fail with EINVAL. */
    const char *proxy_trusted;
    /* Datagram servers: receive up to this many datagrams with one
     * recvmmsg (and send the replies made meanwhile with one sendmmsg),
     * instead of one recvfrom and one sendto per datagram. 0 or 1 (default
     * 0): one at a time. At most 1024 (EINVAL above); stream servers ignore
     * it. The handler API is the same; each datagram is still one request.
     *   sync:      the loop runs the batch's handlers one after another; the
     *              replies go out together after the batch's last handler
     *              (and before the loop returns).
     *   pool:      each worker receives a batch and runs it the same way.
     *   threading, forking: received in batches, each datagram runs in a
     *              thread or child of its own, which sends its reply when it
     *              ends, as without batch.
     * ss_reply and ss_flush still send at once. A batched reply that cannot
     * be sent (a peer gone, no room) goes to handle_error with req NULL and
     * the batch's other replies still go out, as each sendto of its own
     * would. A connection slot (max_per_peer) is given back
     * when the handler ends, before the batch's replies go out. Datagrams
     * received but not started when the loop stops (ss_shutdown, or
     * ss_handle_request's one request) wait for the next loop, as they
     * would in the socket, and ss_server_close drops them; a graceful stop
     * does not start them (a pool worker drops the rest of its batch). */
    unsigned batch;
} ss_options;

/* Fill the first size bytes of *opt with the defaults listed above (every
 * option the library knows whose bytes fit; the rest of the size zero) and
 * set opt->struct_size = size. Use the macro below. */
SS_API void ss_options_init_size(ss_options *opt, size_t size);

/* Fill *opt with the defaults listed above. The function of this name (for
 * callers that cannot use the macro: (ss_options_init)(&opt), bindings from
 * other languages) fills the options of version 0.1 only; the ones appended
 * later keep their defaults whatever is stored in them. */
SS_API void ss_options_init(ss_options *opt);
#define ss_options_init(o) ss_options_init_size((o), sizeof *(o))

/* ---- server lifecycle -------------------------------------------------- */

/* Create the socket, bind and activate it (Python's bind_and_activate), and
 * for pool mode start the workers. opt NULL means the defaults. Returns NULL
 * with errno set on failure (EINVAL for a bad option or address string,
 * EADDRINUSE, EACCES, ...); nothing is leaked. The options and the handler
 * are copied. EINVAL also when opt->struct_size is not a size
 * ss_options_init wrote (smaller than version 0.1's options, not a multiple
 * of a pointer's alignment, or larger than this library's ss_options while
 * an option it does not know is non-zero), when pool_workers + pool_queue
 * overflows, when thread_stack_size is non-zero but below PTHREAD_STACK_MIN,
 * or when peer_prefix6 > 128. */
SS_API ss_server *ss_server_new(const ss_options *opt, const ss_handler *h);

/* Serve until ss_shutdown()/ss_shutdown_async(). poll_interval (seconds)
 * bounds how often service_actions runs when idle; shutdown itself wakes the
 * loop at once, and so does the end of a forked child, which is reaped then
 * (its connection closed, its slot given back) -- except on kernels without
 * pidfd_open (before 5.3), where the reap waits for the next turn, at most
 * poll_interval away. Returns 0 after a shutdown, -1 on error (errno
 * ECANCELED when a sync-mode handler returned SS_ABORT). A server may be
 * served again. */
SS_API int ss_serve_forever(ss_server *srv, double poll_interval);

/* Wait for and handle one request, waiting at most opt.timeout (if >= 0).
 * Returns 1 when a request was handled, 0 when the timeout passed (after
 * handle_timeout ran, or when a shutdown was requested), -1 on error. */
SS_API int ss_handle_request(ss_server *srv);

/* Stop ss_serve_forever. From another thread: returns once the loop has
 * stopped. From inside the loop (a sync-mode handler, a hook running in the
 * serving thread) it cannot wait for itself: it asks the loop to stop after
 * the current request and returns 0 at once. From a forked child it asks the
 * parent's loop to stop and returns at once. If no loop is running, the next
 * ss_serve_forever returns at once. Returns 0. */
SS_API int ss_shutdown(ss_server *srv);

/* Async-signal-safe: ask the loop to stop, without waiting. Safe in a
 * SIGINT/SIGTERM handler. */
SS_API void ss_shutdown_async(ss_server *srv);

/* Install handlers so that signal signo calls ss_shutdown_async(srv)
 * (SA_RESTART is not set, so blocking calls in the serving thread wake).
 * With opt.stop_grace >= 0 the signal begins a graceful stop instead (see
 * ss_server_stop) and a second one cuts at once. A signal that reaches
 * another thread while a sync handler runs is sent on to the loop's thread,
 * so that the handler's blocked call is interrupted too. One server per
 * process can be the target; a later call replaces it. Returns 0, or -1
 * with errno. */
SS_API int ss_shutdown_on_signal(ss_server *srv, int signo);

/* Run fn(srv, signo, ctx) in the serving loop's thread -- never in signal
 * context -- after signal signo arrives (SIGHUP for a reload, say): the
 * signal's handler only wakes the loop, which runs fn between requests (in
 * sync mode after the running handler returns). Several signals of one
 * kind before fn runs make one call. The handler is installed with
 * SA_RESTART, so a handler's blocking calls go on; forked request children
 * ignore signo, so a signal sent to the whole process group leaves them
 * running. With workers (pre-fork), the supervisor passes signo on to
 * every worker and each worker's loop runs fn; a signal sent to the whole
 * process group so reaches a worker twice, which a reload shrugs off.
 * One server per signal; a later call replaces fn and ctx (and
 * takes the signal over from ss_shutdown_on_signal). Call it before
 * serving. ss_server_free gives the signal back its previous action.
 * Returns 0, or -1 with errno (EINVAL: srv or fn NULL, or signo not a
 * signal that can be caught). */
SS_API int ss_server_on_signal(ss_server *srv, int signo,
                               void (*fn)(ss_server *srv, int signo, void *ctx), void *ctx);

/* Stop the server gracefully, from any thread but the loop's (a handler
 * of a threading or pool server may stop its own server):
 *   1. stop accepting (the loop is told to stop, as by ss_shutdown), and
 *      mark the server stopping: ss_server_stopping() turns true, the stop
 *      descriptor turns readable, and handlers waiting in ss_request_wait or
 *      ss_readline_ex(SS_LINE_STOP) get ECANCELED at once;
 *   2. wait up to grace seconds for the running requests to end (a second
 *      stop, by signal or ss_server_stop, ends the wait at once);
 *   3. the cut: shut down the input (SHUT_RD) of every running request's
 *      connection, so that its handler reads the end of input; output still
 *      works, so a handler can say goodbye. Threads, pool workers and forked
 *      children alike (the parent keeps a copy of each child's connection
 *      until it reaps the child). Pool requests still queued are closed
 *      unserved, at the cut or when a worker would take them while
 *      stopping. A sync handler blocked in the loop's thread is cut as well;
 *      datagram requests have no connection to cut;
 *   4. wait up to 2 seconds more for the requests to end.
 * Returns once the loop (if one runs) has returned too. Returns 0 when no
 * request is left, -1 with ETIMEDOUT when some still run after step 4
 * (ss_server_close/ss_server_free then wait as block_on_close says), EINVAL
 * for a negative or NaN grace, EDEADLK from the loop's own thread or a
 * forked request child. Called while a stop is under way, it cuts at once
 * and returns when that stop is over. The server stays stopping until
 * ss_serve_forever or ss_handle_request starts again; called before a loop
 * starts, that loop returns at once, as after ss_shutdown. */
SS_API int ss_server_stop(ss_server *srv, double grace);

/* A descriptor that turns readable (POLLIN) once a graceful stop began and
 * stays so until the server serves again, for a handler's own poll() next
 * to its other descriptors. Never read from it or close it. Valid in
 * forked request children too (the same descriptor, inherited). -1 for a
 * NULL server. */
SS_API int ss_server_stop_fd(const ss_server *srv);

/* True once a graceful stop began (ss_server_stop, or a stop signal with
 * stop_grace >= 0), until the server serves again. Works in forked
 * children (it looks at the stop descriptor). */
SS_API bool ss_server_stopping(const ss_server *srv);

/* For a program that serves more than one server (each in its own thread)
 * in forking mode: called in a request child of one server, close this
 * process's copies of another server srv's descriptors that the child has
 * no use for - srv's listening socket and, when srv forks too, the
 * parent's copies of srv's children's connections (so that those clients
 * see their connection end when their own session process ends). Use srv
 * in this process afterwards only for ss_server_stop_fd and
 * ss_server_stopping. NULL is allowed. */
SS_API void ss_server_forget(ss_server *srv);

/* Wait up to timeout seconds (< 0: without limit) for running requests
 * (threads, children, pool work) to finish. Returns 0 when none is left,
 * -1 with errno ETIMEDOUT otherwise. Does not stop the loop. */
SS_API int ss_server_drain(ss_server *srv, double timeout);

/* Number of requests being handled right now (threads, children, queued and
 * running pool work, or the one sync request). */
SS_API unsigned ss_server_active(ss_server *srv);

/* Requests counted now (see max_connections) for the peer that the socket
 * address addr (len bytes) belongs to: its IPv4 address, or its IPv6 address
 * cut to peer_prefix6 bits. 0 when neither max_connections nor max_per_peer
 * is set (nothing is counted then), for Unix socket addresses, and for
 * anything not an IPv4/IPv6 address. In a forked request child: the count
 * as of the fork. */
SS_API unsigned ss_server_peer_count(ss_server *srv, const struct sockaddr *addr, socklen_t len);

/* Close the listening socket; with block_on_close wait for running requests
 * (join non-daemon threads, wait for children, finish the pool's queue);
 * without it, queued pool requests are dropped, running ones are not waited
 * for (ss_server_free does), and children are only reaped
 * if already done. Idempotent. Must not run while ss_serve_forever runs. */
SS_API void ss_server_close(ss_server *srv);

/* ss_server_close() if needed, then wait for any requests still using the
 * server (daemon threads; pool work close did not wait for), and free it.
 * Their connections' input is shut down first, so a handler waiting on an
 * idle client sees the end of input instead of holding up the free; output
 * still works. If this server was the target of ss_shutdown_on_signal, the
 * signals get their previous actions back. NULL is allowed. */
SS_API void ss_server_free(ss_server *srv);

/* The listening (stream) or receiving (datagram) socket, -1 after close. */
SS_API int ss_server_fileno(const ss_server *srv);

/* The bound address (getsockname), so a port of 0 can be read back.
 * *len is in/out as for getsockname. Returns 0 or -1. */
SS_API int ss_server_address(const ss_server *srv, struct sockaddr *addr, socklen_t *len);

/* The bound address as text: "127.0.0.1:40001", "[::1]:40001",
 * "unix:/path". Returns buf, or NULL (errno ENOSPC) if it does not fit. */
SS_API char *ss_server_address_str(const ss_server *srv, char *buf, size_t size);

/* The bound port (0 for Unix sockets). */
SS_API int ss_server_port(const ss_server *srv);

/* The mode the server runs requests in (opt.mode). For a NULL server:
 * SS_MODE_SYNC, the default, with errno EINVAL. */
SS_API ss_mode ss_server_mode(const ss_server *srv);

/* The server's socket type (opt.type). For a NULL server: SS_STREAM, the
 * default, with errno EINVAL. */
SS_API ss_socktype ss_server_type(const ss_server *srv);

/* opt.user as given to ss_server_new; NULL for a NULL server. */
SS_API void *ss_server_user(const ss_server *srv);

/* ---- the request ------------------------------------------------------- */

/* The server that took the request (for ss_server_user, ss_server_stopping,
 * ...). In a forked request child it is the child's copy of the server. */
SS_API ss_server *ss_request_server(const ss_request *req);

/* Stream: the connected socket. Datagram: the server's socket (Python's
 * request[1]); never close it. */
SS_API int ss_request_fd(const ss_request *req);

/* The client's address. *len receives its length. With the PROXY protocol
 * and a header: the real client's address the header gave. */
SS_API const struct sockaddr *ss_request_client_address(const ss_request *req, socklen_t *len);

/* With the PROXY protocol (ss_options.proxy_protocol): the address of the
 * peer that sent the header (the proxy itself), *len its length; NULL when
 * the connection had no header (a direct client, a v2 LOCAL health check
 * and a v1 UNKNOWN header keep the connection's own address, which
 * ss_request_client_address returns then). len may be NULL. */
SS_API const struct sockaddr *ss_request_proxy_address(const ss_request *req, socklen_t *len);

/* The client's address as text ("127.0.0.1:5555", "[::1]:5555", "unix:/p"
 * or "unix:" for an unbound peer). Valid while the request lives. */
SS_API const char *ss_request_client_str(ss_request *req);

/* Datagram: the bytes received (Python's request[0]) and their length; a
 * zero-length datagram is a request like any other. NULL for streams. */
SS_API const void *ss_request_data(const ss_request *req, size_t *len);

/* Datagram: true when the datagram was longer than max_packet_size. */
SS_API bool ss_request_truncated(const ss_request *req);

/* True for a datagram request (a datagram server's), false for a stream
 * connection: the same as ss_server_type(ss_request_server(req)) ==
 * SS_DATAGRAM. */
SS_API bool ss_request_is_datagram(const ss_request *req);

/* Why the request is being turned away, in the reject hook; SS_REJECT_NONE
 * for a request that is served. */
SS_API ss_reject_reason ss_request_reject_reason(const ss_request *req);

/* Per-request user pointer (NULL at start), for setup/handle/finish to share
 * state, like attributes on Python's handler instance. */
SS_API void *ss_request_user(const ss_request *req);
SS_API void ss_request_set_user(ss_request *req, void *user);

/* Stream: set the send and receive timeout of this connection (seconds,
 * < 0 = none). A read or write that waits longer fails with ETIMEDOUT. */
SS_API int ss_request_set_timeout(ss_request *req, double seconds);

/* ---- reading (rfile) --------------------------------------------------- */
/* For a stream these read the connection through a buffer; for a datagram
 * they read the datagram's bytes, then report end of input. Timeouts fail
 * with ETIMEDOUT. */

/* Read one line: bytes up to and including '\n', at most size - 1 of them,
 * then a NUL. Returns the byte count (0 at end of input); a line longer than
 * size - 1 is returned in pieces (the piece has no '\n' at its end), as
 * Python's readline(limit). -1 on error (EINVAL when size < 2). When a
 * signal arrives after a stop was requested (ss_shutdown_on_signal and
 * Ctrl-C), a blocked read or write fails with EINTR so the handler can end;
 * otherwise interrupted calls are retried. */
SS_API ssize_t ss_readline(ss_request *req, char *buf, size_t size);

/* Read up to n bytes: buffered bytes first, otherwise one receive. Returns
 * the count, 0 at end of input, -1 on error. */
SS_API ssize_t ss_read(ss_request *req, void *buf, size_t n);

/* Read exactly n bytes. Returns n, or -1 (errno ENODATA if the input ended
 * first; the bytes read so far are lost). */
SS_API ssize_t ss_read_exact(ss_request *req, void *buf, size_t n);

/* Bytes already buffered and readable without waiting. */
SS_API size_t ss_pending(const ss_request *req);

/* ss_readline_ex flags. */
/* An over-long line (more than size - 1 bytes with its LF) is read and
 * dropped through its LF; the call fails with EMSGSIZE and *dropped holds
 * the count dropped (the whole line, LF included). Without it the line is
 * returned in pieces, as ss_readline does. */
#define SS_LINE_DISCARD 0x1u
/* While waiting for more input, a graceful stop (ss_server_stop) fails the
 * call with ECANCELED. A line already buffered is still returned. */
#define SS_LINE_STOP 0x2u

/* ss_readline for line protocols: read one line (up to and including its
 * LF, which is kept, as is a CR before it) into buf, at most size - 1 bytes,
 * then a NUL. timeout is a deadline in seconds for the whole line, however
 * many receives it takes (< 0: none beyond the connection's own receive
 * timeout, which applies to each wait). Returns the byte count including the
 * LF; a last line without LF is returned as it is; 0 at end of input. -1 on
 * error: ETIMEDOUT (the deadline or the receive timeout passed), ECANCELED
 * (SS_LINE_STOP), EMSGSIZE (SS_LINE_DISCARD), EINVAL (size < 2, a NaN
 * timeout, an unknown flag), or a receive error. After ETIMEDOUT or
 * ECANCELED the unfinished line's bytes stay buffered and the next call
 * starts with them, except for a line longer than the internal buffer
 * (8 KiB), whose first bytes were moved to buf already: those are lost.
 * After ETIMEDOUT or ECANCELED in the middle of discarding, the rest of
 * that line is read as a line of its own; *dropped counts what was dropped.
 * dropped may be NULL; it is set to 0 unless the call dropped bytes. For a
 * datagram request the line comes from the datagram's bytes and nothing is
 * waited for. */
SS_API ssize_t ss_readline_ex(ss_request *req, char *buf, size_t size, double timeout,
                              unsigned flags, size_t *dropped);

/* Wait for events (POLLIN, POLLOUT, ...) on fd and, at the same time, for
 * the server's graceful stop, so that a handler needs no signal handler or
 * pipe of its own. fd = -1 means the request's own input: bytes already
 * buffered (or the end of input already seen) make it ready at once, and
 * buffered output is sent first; for a datagram request only the stop is
 * waited for. timeout in seconds, < 0: none. Returns fd's revents (> 0)
 * when it is ready (this wins when both are), 0 when the timeout passed,
 * -1 with ECANCELED once a graceful stop began, or -1 with another errno
 * (EINVAL for fd < -1 or a NaN timeout). Interrupted waits are retried,
 * except in a sync handler after a stop signal without grace (EINTR). */
SS_API int ss_request_wait(ss_request *req, int fd, short events, double timeout);

/* ---- writing (wfile) --------------------------------------------------- */

/* Stream: send all n bytes (partial sends and EINTR handled, no SIGPIPE) or
 * fail (n = 0 sends nothing and returns 0, buf may be NULL then); with wbufsize > 0 the bytes may wait in the buffer until ss_flush,
 * a read that must wait, or the end of the request. Datagram: append to the
 * reply, which is sent to the client after finish (even when empty, as
 * Python does) unless ss_reply() was used. Returns n or -1 (EMSGSIZE when a
 * datagram reply would exceed 65507 bytes). */
SS_API ssize_t ss_write(ss_request *req, const void *buf, size_t n);

/* Formatted ss_write. Returns the byte count or -1. */
SS_API ssize_t ss_printf(ss_request *req, const char *fmt, ...) SS_PRINTF(2, 3);
SS_API ssize_t ss_vprintf(ss_request *req, const char *fmt, va_list ap) SS_PRINTF(2, 0);

/* Send what is buffered: the stream output buffer, or the datagram reply so
 * far (which then counts as replied). Returns 0 or -1. */
SS_API int ss_flush(ss_request *req);

/* Datagram: send buf to the client as one datagram now (at most 65507
 * bytes over IPv4, 65527 over IPv6, max(max_packet_size, 65507) for Unix) (through the server
 * socket); the buffered reply is then not sent at finish. Stream: same as
 * ss_write. Returns n or -1. */
SS_API ssize_t ss_reply(ss_request *req, const void *buf, size_t n);

/* ---- small helpers ----------------------------------------------------- */

/* Parse an address string as ss_options.address does, into *addr.
 * socktype is SOCK_STREAM or SOCK_DGRAM (the socket API's, not ss_socktype);
 * it only guides name resolution.
 * Returns 0, or -1 with errno EINVAL (bad syntax) / ENOENT (unknown host) /
 * ENAMETOOLONG (Unix path too long). */
SS_API int ss_parse_address(const char *str, int socktype, struct sockaddr_storage *addr,
                            socklen_t *len);

/* Format a socket address as text (the forms listed for
 * ss_request_client_str). Returns buf, or NULL with errno. */
SS_API char *ss_format_address(const struct sockaddr *addr, socklen_t len, char *buf,
                               size_t size);

/* The default handle_error: one line on stderr. Call it from your own hook
 * to extend it (Python's super().handle_error()). */
SS_API void ss_default_handle_error(ss_server *srv, ss_request *req, int err);

#ifdef __cplusplus
}
#endif

#endif /* SOCKSERV_H */
