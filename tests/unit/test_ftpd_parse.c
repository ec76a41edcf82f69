/*
 * test_ftpd_parse.c - the pure parsers of sockserv-ftpd: the command
 * split and the dispatch flags of the command table (with every handler
 * replaced by a recorder), commands that arrive mid-transfer, HELP, the
 * LIST options, the PORT/EPRT/EPSV arguments with good and hostile
 * inputs, the v4-mapped address helpers, and the ASCII line-end
 * conversion in both directions across block boundaries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../ftpd/cmd.c"
#include "../../ftpd/commands.c"
#include "../../ftpd/crlf.c"
#include "../../ftpd/netaddr.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- recorders in place of the control connection and the handlers ---- */

static int replies;          /* replies sent since the last reset */
static int last_code;        /* code of the last reply */
static char last_text[512];  /* its text */
static const char *called;   /* handler called last, NULL for none */
static bool called_null_arg; /* it got arg == NULL */
static char called_arg[512]; /* else its argument */
static off_t called_rest;    /* s->rest when it ran */

static void record_reply(int code, const char *fmt, va_list ap) SS_PRINTF(2, 0);

static void record_reply(int code, const char *fmt, va_list ap)
{
    replies++;
    last_code = code;
    vsnprintf(last_text, sizeof(last_text), fmt, ap);
}

int reply(session *s, int code, const char *fmt, ...)
{
    va_list ap;

    (void)s;
    va_start(ap, fmt);
    record_reply(code, fmt, ap);
    va_end(ap);
    return 0;
}

int reply_begin(session *s, int code, const char *fmt, ...)
{
    va_list ap;

    (void)s;
    va_start(ap, fmt);
    record_reply(code, fmt, ap);
    va_end(ap);
    return 0;
}

int reply_line(session *s, const char *fmt, ...)
{
    (void)s;
    (void)fmt;
    return 0;
}

void log_msg(const char *fmt, ...)
{
    (void)fmt;
}

const char *listing_unsorted(const listing *l)
{
    (void)l;
    return NULL;
}

static void record_call(const char *name, session *s, const char *arg)
{
    called = name;
    called_null_arg = arg == NULL;
    snprintf(called_arg, sizeof(called_arg), "%s", arg != NULL ? arg : "");
    called_rest = s->rest;
}

#define STUB(name)                                                                                 \
    int cmd_##name(session *s, const char *arg)                                                    \
    {                                                                                              \
        record_call(#name, s, arg);                                                                \
        return 0;                                                                                  \
    }
STUB(user)
STUB(pass)
STUB(acct)
STUB(rein)
STUB(clnt)
STUB(auth)
STUB(pbsz)
STUB(prot)
STUB(ccc)
STUB(cwd)
STUB(cdup)
STUB(pwd)
STUB(mkd)
STUB(rmd)
STUB(dele)
STUB(rnfr)
STUB(rnto)
STUB(size)
STUB(mdtm)
STUB(hash)
STUB(site)
STUB(type)
STUB(mode)
STUB(stru)
STUB(port)
STUB(pasv)
STUB(eprt)
STUB(epsv)
STUB(rest)
STUB(allo)
STUB(abor)
STUB(retr)
STUB(stor)
STUB(appe)
STUB(stou)
STUB(list)
STUB(nlst)
STUB(mlsd)
STUB(mlst)
STUB(stat)
STUB(syst)
STUB(noop)
STUB(feat)
STUB(opts)

int cmd_quit(session *s, const char *arg)
{
    record_call("quit", s, arg);
    return -1;
}

static session sess; /* large: not on the stack */

static ftpd_config sess_cfg;

static session *fresh(bool logged_in, bool can_write, bool can_modify)
{
    memset(&sess, 0, sizeof(sess));
    memset(&sess_cfg, 0, sizeof(sess_cfg));
    sess.cfg = &sess_cfg;
    sess.logged_in = logged_in;
    sess.can_write = can_write;
    sess.can_modify = can_modify;
    sess.type = 'A';
    replies = 0;
    last_code = 0;
    last_text[0] = '\0';
    called = NULL;
    return &sess;
}

/* Dispatch line; returns the handler called (NULL for none). */
static const char *run(session *s, const char *line)
{
    called = NULL;
    replies = 0;
    last_code = 0;
    commands_dispatch(s, line);
    return called;
}

/* ---- split and dispatch ---- */

static void test_split(void **state)
{
    char verb[FTPD_VERB_MAX + 1];
    const char *arg = (const char *)1;

    (void)state;
    assert_int_equal(split("retr a b", verb, &arg), 0);
    assert_string_equal(verb, "RETR");
    assert_string_equal(arg, "a b");
    assert_int_equal(split("NOOP", verb, &arg), 0);
    assert_string_equal(verb, "NOOP");
    assert_null(arg);
    /* A tab separates too; only the first separator is taken away. */
    assert_int_equal(split("CwD\t dir", verb, &arg), 0);
    assert_string_equal(verb, "CWD");
    assert_string_equal(arg, " dir");
    /* A verb and a separator but no argument: an empty argument. */
    assert_int_equal(split("STAT ", verb, &arg), 0);
    assert_string_equal(arg, "");
    assert_int_equal(split("", verb, &arg), -1);
    assert_int_equal(split(" NOOP", verb, &arg), -1);
    assert_int_equal(split("ABCDEFGH x", verb, &arg), 0); /* FTPD_VERB_MAX letters */
    assert_int_equal(split("ABCDEFGHI x", verb, &arg), -1);
}

static void test_dispatch_unknown_and_login(void **state)
{
    session *s = fresh(false, false, false);

    (void)state;
    assert_null(run(s, ""));
    assert_int_equal(last_code, 500);
    assert_null(run(s, "XYZZY"));
    assert_int_equal(last_code, 500);
    assert_null(run(s, "AVERYLONGVERB x"));
    assert_int_equal(last_code, 500);
    /* Before a login only F_PRE commands run. */
    assert_null(run(s, "CWD /"));
    assert_int_equal(last_code, 530);
    assert_null(run(s, "RETR x"));
    assert_int_equal(last_code, 530);
    assert_string_equal(run(s, "user anonymous"), "user");
    assert_string_equal(called_arg, "anonymous");
    assert_string_equal(run(s, "PASS"), "pass");
    assert_true(called_null_arg);
    assert_string_equal(run(s, "SYST"), "syst");
    assert_string_equal(run(s, "FEAT"), "feat");
    assert_string_equal(run(s, "ABOR"), "abor");
    /* QUIT's -1 ends the session. */
    assert_int_equal(commands_dispatch(s, "QUIT"), -1);
    s->logged_in = true;
    assert_string_equal(run(s, "cwd /"), "cwd");
    assert_string_equal(called_arg, "/");
}

/* --tls required: USER and PASS (anonymous too) wait for AUTH TLS; the
 * FTPS commands themselves run before a login. */
static void test_dispatch_tls_required(void **state)
{
    session *s = fresh(false, false, false);

    (void)state;
    sess_cfg.tls_mode = FTPD_TLS_REQUIRED;
    assert_null(run(s, "USER alice"));
    assert_int_equal(last_code, 530);
    assert_non_null(strstr(last_text, "TLS required"));
    assert_null(run(s, "USER anonymous"));
    assert_int_equal(last_code, 530);
    assert_null(run(s, "PASS secret"));
    assert_int_equal(last_code, 530);
    assert_string_equal(run(s, "AUTH TLS"), "auth");
    assert_string_equal(run(s, "PBSZ 0"), "pbsz");
    assert_string_equal(run(s, "PROT P"), "prot");
    assert_string_equal(run(s, "CCC"), "ccc");
    /* Once the control connection is protected they run. */
    s->ctrl_tls = (struct tls_conn *)(void *)&sess_cfg; /* any non-NULL */
    assert_string_equal(run(s, "USER alice"), "user");
    s->ctrl_tls = NULL;
    /* --tls optional leaves USER alone. */
    sess_cfg.tls_mode = FTPD_TLS_OPTIONAL;
    assert_string_equal(run(s, "USER alice"), "user");
}

static void test_dispatch_arguments(void **state)
{
    session *s = fresh(true, true, true);

    (void)state;
    /* F_ARG: a missing or empty argument is refused before the handler. */
    assert_null(run(s, "CWD"));
    assert_int_equal(last_code, 501);
    assert_string_equal(last_text, "CWD needs an argument.");
    assert_null(run(s, "CWD "));
    assert_int_equal(last_code, 501);
    /* Without F_ARG the handler decides (LIST with no path). */
    assert_string_equal(run(s, "LIST"), "list");
    assert_true(called_null_arg);
    /* F_TRIM: trailing blanks go from word arguments ... */
    assert_string_equal(run(s, "TYPE I \t "), "type");
    assert_string_equal(called_arg, "I");
    assert_string_equal(run(s, "PORT 127,0,0,1,4,1  "), "port");
    assert_string_equal(called_arg, "127,0,0,1,4,1");
    /* ... and an argument of blanks only becomes empty, which F_ARG refuses. */
    assert_null(run(s, "TYPE   "));
    assert_int_equal(last_code, 501);
    /* ... but not from paths, where a blank may be part of a name. */
    assert_string_equal(run(s, "CWD dir  "), "cwd");
    assert_string_equal(called_arg, "dir  ");
    assert_string_equal(run(s, "RETR  lead"), "retr");
    assert_string_equal(called_arg, " lead");
    /* A word argument too long to trim is passed on as it is. */
    {
        char line[TRIM_ARG_MAX + 32];
        memset(line, 'x', sizeof(line));
        memcpy(line, "OPTS ", 5);
        line[sizeof(line) - 3] = ' ';
        line[sizeof(line) - 2] = ' ';
        line[sizeof(line) - 1] = '\0';
        assert_string_equal(run(s, line), "opts");
        assert_int_equal(strlen(called_arg), sizeof(line) - 1 - 5);
    }
}

static void test_dispatch_permissions(void **state)
{
    session *s = fresh(true, false, false);

    (void)state;
    /* Read-only: F_WRITE and F_MODIFY refused, reading allowed. */
    assert_null(run(s, "STOR x"));
    assert_int_equal(last_code, 550);
    assert_null(run(s, "MKD d"));
    assert_int_equal(last_code, 550);
    assert_null(run(s, "DELE x"));
    assert_int_equal(last_code, 550);
    assert_null(run(s, "STOU"));
    assert_int_equal(last_code, 550);
    assert_string_equal(run(s, "RETR x"), "retr");
    /* May write new files, may not modify: STOR yes, APPE/DELE/RNFR no. */
    s->can_write = true;
    assert_string_equal(run(s, "STOR x"), "stor");
    assert_string_equal(run(s, "MKD d"), "mkd");
    assert_null(run(s, "APPE x"));
    assert_int_equal(last_code, 550);
    assert_null(run(s, "RNFR x"));
    assert_int_equal(last_code, 550);
    assert_null(run(s, "RMD d"));
    assert_int_equal(last_code, 550);
    s->can_modify = true;
    assert_string_equal(run(s, "APPE x"), "appe");
    assert_string_equal(run(s, "DELE x"), "dele");
}

static void test_dispatch_rest_and_rnfr(void **state)
{
    session *s = fresh(true, true, true);

    (void)state;
    /* REST survives the parameter commands (F_KEEPREST) ... */
    s->rest = 100;
    run(s, "TYPE I");
    run(s, "PASV");
    run(s, "EPSV");
    run(s, "PORT 1,2,3,4,5,6");
    run(s, "EPRT |1|1.2.3.4|1025|");
    run(s, "MODE S");
    run(s, "STRU F");
    assert_int_equal(s->rest, 100);
    /* ... and the transfer command sees it; any other command drops it. */
    assert_string_equal(run(s, "RETR x"), "retr");
    assert_int_equal(called_rest, 100);
    assert_int_equal(s->rest, 0);
    s->rest = 100;
    run(s, "PWD");
    assert_int_equal(s->rest, 0);
    s->rest = 100;
    run(s, "NOSUCH"); /* refused before any handler: REST stays */
    assert_int_equal(s->rest, 100);
    run(s, "LIST");
    assert_int_equal(s->rest, 0);

    /* RNTO must follow RNFR at once. */
    s->have_rnfr = true;
    run(s, "RNTO b");
    assert_true(s->have_rnfr); /* the handler (stubbed here) clears it */
    run(s, "RNFR a");
    assert_true(s->have_rnfr);
    run(s, "NOOP");
    assert_false(s->have_rnfr);
}

static void test_during_transfer(void **state)
{
    session *s = fresh(true, true, true);

    (void)state;
    assert_int_equal(commands_during_transfer(s, "ABOR"), XCMD_ABORT);
    assert_int_equal(commands_during_transfer(s, "abor"), XCMD_ABORT);
    assert_int_equal(replies, 0);
    assert_int_equal(commands_during_transfer(s, "NOOP"), XCMD_CONTINUE);
    assert_int_equal(last_code, 200);
    s->xfer.direction = 'o';
    s->xfer.total = 1000;
    s->xfer.done = 10;
    snprintf(s->xfer.path, sizeof(s->xfer.path), "/f");
    assert_int_equal(commands_during_transfer(s, "STAT"), XCMD_CONTINUE);
    assert_int_equal(last_code, 213);
    assert_string_equal(last_text, "Status: sending /f, 10 of 1000 bytes transferred.");
    s->xfer.direction = 'h';
    assert_int_equal(commands_during_transfer(s, "stat"), XCMD_CONTINUE);
    assert_string_equal(last_text, "Status: hashing /f, 10 of 1000 bytes.");
    assert_false(s->have_pending);
    /* Everything else, STAT with a path too, waits for the final reply. */
    replies = 0;
    assert_int_equal(commands_during_transfer(s, "STAT /x"), XCMD_DEFER);
    assert_true(s->have_pending);
    assert_string_equal(s->pending, "STAT /x");
    assert_int_equal(commands_during_transfer(s, "RETR y"), XCMD_DEFER);
    assert_string_equal(s->pending, "RETR y");
    assert_int_equal(commands_during_transfer(s, ""), XCMD_DEFER);
    assert_int_equal(replies, 0);
}

static void test_help(void **state)
{
    session *s = fresh(false, false, false);

    (void)state;
    assert_null(run(s, "HELP retr  "));
    assert_int_equal(last_code, 214);
    assert_string_equal(last_text, "Syntax: RETR path");
    run(s, "HELP xyzzy");
    assert_int_equal(last_code, 502);
    run(s, "HELP ABCDEFGHIJ");
    assert_int_equal(last_code, 502);
    run(s, "HELP");
    assert_int_equal(last_code, 214);
    assert_string_equal(last_text, "Help OK.");
}

/* ---- LIST options ---- */

static const char *largs(const char *arg, bool *hidden)
{
    listing_opts o;

    memset(&o, 0, sizeof(o));
    arg = cmd_list_args(arg, &o);
    *hidden = o.show_hidden;
    return arg;
}

static void test_list_args(void **state)
{
    bool h;

    (void)state;
    assert_null(largs(NULL, &h));
    assert_false(h);
    assert_null(largs("", &h));
    assert_string_equal(largs("-la dir", &h), "dir");
    assert_true(h);
    assert_null(largs("-l", &h));
    assert_false(h);
    assert_null(largs("-A  ", &h));
    assert_true(h);
    assert_string_equal(largs("-l -a  x y", &h), "x y");
    assert_true(h);
    /* "-1" is an option as ls(1) knows it; "./-1" names a file. */
    assert_null(largs("-1", &h));
    assert_false(h);
    assert_string_equal(largs("./-1", &h), "./-1");
    /* Names that only start with '-' stay paths. */
    assert_string_equal(largs("-", &h), "-");
    assert_string_equal(largs("- x", &h), "- x");
    assert_string_equal(largs("-a/b", &h), "-a/b");
    assert_false(h);
    assert_string_equal(largs("-l-a", &h), "-l-a");
    assert_false(h);
    assert_string_equal(largs("-l -x.txt", &h), "-x.txt");
    assert_false(h);
}

/* ---- PORT, EPRT, EPSV ---- */

static bool port_ok(const char *arg, const char *host, unsigned port)
{
    struct sockaddr_in sin;
    char text[INET_ADDRSTRLEN];

    if (netaddr_parse_port(arg, &sin) < 0)
        return false;
    assert_int_equal(sin.sin_family, AF_INET);
    assert_non_null(inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text)));
    assert_string_equal(text, host);
    assert_int_equal(ntohs(sin.sin_port), port);
    return true;
}

static void test_port(void **state)
{
    struct sockaddr_in sin;
    static const char *const bad[] = {
        "",
        "1,2,3,4,5",
        "1,2,3,4,5,6,7",
        "256,0,0,1,4,1",
        "1,2,3,4,256,1",
        "1,2,3,4,5,256",
        "1,2,3,4,5,-1",
        "-1,2,3,4,5,6",
        "+1,2,3,4,5,6",
        " 1,2,3,4,5,6",
        "1,2,3,4,5,6 ",
        "1, 2,3,4,5,6",
        "1,,3,4,5,6",
        "1,2,3,4,5,",
        ",1,2,3,4,5,6",
        "1.2.3.4,5,6",
        "0x1,2,3,4,5,6",
        "00000001,2,3,4,5,6",
        "99999999999999999999,2,3,4,5,6",
        "1;2;3;4;5;6",
    };

    (void)state;
    assert_true(port_ok("127,0,0,1,4,1", "127.0.0.1", 1025));
    assert_true(port_ok("0,0,0,0,0,0", "0.0.0.0", 0));
    assert_true(port_ok("255,255,255,255,255,255", "255.255.255.255", 65535));
    assert_true(port_ok("010,0,0,1,0,21", "10.0.0.1", 21)); /* decimal, not octal */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("PORT %s\n", bad[i]);
        assert_int_equal(netaddr_parse_port(bad[i], &sin), -1);
    }
}

static int eprt(const char *arg, struct sockaddr_storage *t, socklen_t *len)
{
    memset(t, 0xa5, sizeof(*t));
    *len = 0;
    return netaddr_parse_eprt(arg, t, len);
}

static void test_eprt(void **state)
{
    struct sockaddr_storage t;
    socklen_t len;
    char text[INET6_ADDRSTRLEN];
    char longaddr[64];

    (void)state;
    assert_int_equal(eprt("|1|127.0.0.1|1025|", &t, &len), NETADDR_EPRT_OK);
    assert_int_equal(t.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(netaddr_port(&t), 1025);
    assert_int_equal(eprt("|2|::1|65535|", &t, &len), NETADDR_EPRT_OK);
    assert_int_equal(t.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(netaddr_port(&t), 65535);
    assert_non_null(
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&t)->sin6_addr, text, sizeof(text)));
    assert_string_equal(text, "::1");
    /* Any delimiter from 33 to 126. */
    assert_int_equal(eprt("!1!10.0.0.1!2000!", &t, &len), NETADDR_EPRT_OK);
    assert_int_equal(eprt("~2~fe80::1~2000~", &t, &len), NETADDR_EPRT_OK);
    assert_int_equal(eprt("|2|::ffff:1.2.3.4|2000|", &t, &len), NETADDR_EPRT_OK);
    /* Port 0 parses; refusing low ports is the caller's policy. */
    assert_int_equal(eprt("|1|1.2.3.4|0|", &t, &len), NETADDR_EPRT_OK);
    assert_int_equal(netaddr_port(&t), 0);

    /* Delimiters and fields. */
    assert_int_equal(eprt("", &t, &len), NETADDR_EPRT_SYNTAX);
    assert_int_equal(eprt(" 1 1.2.3.4 2000 ", &t, &len), NETADDR_EPRT_SYNTAX);
    assert_int_equal(eprt("\x7f"
                          "1\x7f"
                          "1.2.3.4\x7f"
                          "2000\x7f",
                          &t, &len),
                     NETADDR_EPRT_SYNTAX);
    assert_int_equal(eprt("|1|1.2.3.4|2000", &t, &len), NETADDR_EPRT_SYNTAX);
    assert_int_equal(eprt("|1|1.2.3.4|2000|x", &t, &len), NETADDR_EPRT_SYNTAX);
    assert_int_equal(eprt("|1|1.2.3.4|2000||", &t, &len), NETADDR_EPRT_SYNTAX);
    assert_int_equal(eprt("||1.2.3.4|2000|", &t, &len), NETADDR_EPRT_SYNTAX);
    assert_int_equal(eprt("|1||2000|", &t, &len), NETADDR_EPRT_SYNTAX);
    assert_int_equal(eprt("|1|1.2.3.4||", &t, &len), NETADDR_EPRT_SYNTAX);
    assert_int_equal(eprt("|1!1.2.3.4!2000!", &t, &len), NETADDR_EPRT_SYNTAX);
    /* An address field longer than any address. */
    snprintf(longaddr, sizeof(longaddr), "|2|%0*d|2000|", INET6_ADDRSTRLEN + 1, 1);
    assert_int_equal(eprt(longaddr, &t, &len), NETADDR_EPRT_SYNTAX);
    /* Network protocol. */
    assert_int_equal(eprt("|3|1.2.3.4|2000|", &t, &len), NETADDR_EPRT_AF);
    assert_int_equal(eprt("|0|1.2.3.4|2000|", &t, &len), NETADDR_EPRT_AF);
    assert_int_equal(eprt("|x|1.2.3.4|2000|", &t, &len), NETADDR_EPRT_AF);
    assert_int_equal(eprt("|-1|1.2.3.4|2000|", &t, &len), NETADDR_EPRT_AF);
    /* Port. */
    assert_int_equal(eprt("|1|1.2.3.4|65536|", &t, &len), NETADDR_EPRT_PORT);
    assert_int_equal(eprt("|1|1.2.3.4|-1|", &t, &len), NETADDR_EPRT_PORT);
    assert_int_equal(eprt("|1|1.2.3.4|+80|", &t, &len), NETADDR_EPRT_PORT);
    assert_int_equal(eprt("|1|1.2.3.4|0x50|", &t, &len), NETADDR_EPRT_PORT);
    assert_int_equal(eprt("|1|1.2.3.4|99999999|", &t, &len), NETADDR_EPRT_PORT);
    /* Address of the wrong family, or none. */
    assert_int_equal(eprt("|1|::1|2000|", &t, &len), NETADDR_EPRT_ADDR);
    assert_int_equal(eprt("|2|1.2.3.4|2000|", &t, &len), NETADDR_EPRT_ADDR);
    assert_int_equal(eprt("|1|256.1.1.1|2000|", &t, &len), NETADDR_EPRT_ADDR);
    assert_int_equal(eprt("|1|1.2.3|2000|", &t, &len), NETADDR_EPRT_ADDR);
    assert_int_equal(eprt("|1|localhost|2000|", &t, &len), NETADDR_EPRT_ADDR);
    assert_int_equal(eprt("|2|fe80::1%eth0|2000|", &t, &len), NETADDR_EPRT_ADDR);
}

static void test_epsv(void **state)
{
    (void)state;
    assert_int_equal(netaddr_parse_epsv(NULL), NETADDR_EPSV_ANY);
    assert_int_equal(netaddr_parse_epsv(""), NETADDR_EPSV_ANY);
    assert_int_equal(netaddr_parse_epsv("ALL"), NETADDR_EPSV_ALL);
    assert_int_equal(netaddr_parse_epsv("all"), NETADDR_EPSV_ALL);
    assert_int_equal(netaddr_parse_epsv("1"), NETADDR_EPSV_IPV4);
    assert_int_equal(netaddr_parse_epsv("2"), NETADDR_EPSV_IPV6);
    assert_int_equal(netaddr_parse_epsv("3"), NETADDR_EPSV_UNSUPPORTED);
    assert_int_equal(netaddr_parse_epsv("01"), NETADDR_EPSV_UNSUPPORTED);
    assert_int_equal(netaddr_parse_epsv("99999999999999999999"), NETADDR_EPSV_UNSUPPORTED);
    assert_int_equal(netaddr_parse_epsv("x"), NETADDR_EPSV_SYNTAX);
    assert_int_equal(netaddr_parse_epsv("-1"), NETADDR_EPSV_SYNTAX);
    assert_int_equal(netaddr_parse_epsv("1 "), NETADDR_EPSV_SYNTAX);
    assert_int_equal(netaddr_parse_epsv("ALLX"), NETADDR_EPSV_SYNTAX);
}

static struct sockaddr_storage sa(const char *text, unsigned port)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
    }
    netaddr_set_port(&ss, port);
    return ss;
}

static void test_addresses(void **state)
{
    struct sockaddr_storage v4 = sa("192.0.2.1", 21), mapped = sa("::ffff:192.0.2.1", 2121);
    struct sockaddr_storage other = sa("192.0.2.2", 21), v6 = sa("2001:db8::1", 21);
    struct sockaddr_storage v6b = sa("2001:db8::2", 21), unix_addr;
    char text[INET6_ADDRSTRLEN];

    (void)state;
    assert_true(netaddr_same_host(&v4, &mapped));
    assert_true(netaddr_same_host(&mapped, &v4));
    assert_false(netaddr_same_host(&v4, &other));
    assert_false(netaddr_same_host(&v4, &v6));
    assert_true(netaddr_same_host(&v6, &v6));
    assert_false(netaddr_same_host(&v6, &v6b));
    assert_int_equal(netaddr_port(&mapped), 2121);
    netaddr_host(&mapped, text, sizeof(text));
    assert_string_equal(text, "192.0.2.1");
    netaddr_host(&v6, text, sizeof(text));
    assert_string_equal(text, "2001:db8::1");
    memset(&unix_addr, 0, sizeof(unix_addr));
    unix_addr.ss_family = AF_UNIX;
    netaddr_host(&unix_addr, text, sizeof(text));
    assert_string_equal(text, "?");
    assert_int_equal(netaddr_port(&unix_addr), 0);
    assert_false(netaddr_same_host(&unix_addr, &unix_addr));
    assert_true(netaddr_unspecified(&(struct sockaddr_storage){.ss_family = AF_INET}));
    assert_true(netaddr_unspecified(&(struct sockaddr_storage){.ss_family = AF_INET6}));
    assert_false(netaddr_unspecified(&v4));
    assert_false(netaddr_unspecified(&unix_addr));
}

/* ---- CRLF ---- */

static size_t encode(const char *in, char *out)
{
    size_t n = crlf_from_lf((const unsigned char *)in, strlen(in), (unsigned char *)out);
    out[n] = '\0';
    return n;
}

/* Decode text split into blocks at the given cut points, as the data
 * connection may deliver it; the CR held at the end is written as the
 * transfer loop writes it. */
static void decode_cut(const char *in, const size_t *cuts, size_t ncuts, char *out)
{
    bool held = false;
    size_t o = 0, from = 0, len = strlen(in);

    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        o += crlf_to_lf((const unsigned char *)in + from, to - from, (unsigned char *)out + o,
                        &held);
        from = to;
    }
    if (held)
        out[o++] = '\r';
    out[o] = '\0';
}

static void decode(const char *in, char *out)
{
    decode_cut(in, NULL, 0, out);
}

static void test_crlf_encode(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(encode("", out), 0);
    assert_int_equal(encode("a\nb\n", out), 6);
    assert_string_equal(out, "a\r\nb\r\n");
    assert_string_equal((encode("\n\n", out), out), "\r\n\r\n");
    /* Bytes other than LF go as they are, a CR before an LF included. */
    assert_string_equal((encode("a\rb\r\n", out), out), "a\rb\r\r\n");
    assert_int_equal(crlf_from_lf((const unsigned char *)"\0\n", 2, (unsigned char *)out), 3);
    assert_memory_equal(out, "\0\r\n", 3);
}

static void test_crlf_decode(void **state)
{
    char out[64];
    bool held = false;

    (void)state;
    decode("a\r\nb\r\n", out);
    assert_string_equal(out, "a\nb\n");
    /* Bare LF and bare CR stay. */
    decode("a\nb", out);
    assert_string_equal(out, "a\nb");
    decode("a\rb", out);
    assert_string_equal(out, "a\rb");
    decode("\r\r\n", out);
    assert_string_equal(out, "\r\n");
    decode("x\r", out);
    assert_string_equal(out, "x\r");
    /* A CR at the end of a block is held until the next one shows. */
    assert_int_equal(crlf_to_lf((const unsigned char *)"ab\r", 3, (unsigned char *)out, &held), 2);
    assert_true(held);
    assert_int_equal(crlf_to_lf((const unsigned char *)"\nc", 2, (unsigned char *)out, &held), 2);
    assert_false(held);
    assert_memory_equal(out, "\nc", 2);
    held = false;
    crlf_to_lf((const unsigned char *)"\r", 1, (unsigned char *)out, &held);
    assert_true(held);
    assert_int_equal(crlf_to_lf((const unsigned char *)"z", 1, (unsigned char *)out, &held), 2);
    assert_memory_equal(out, "\rz", 2);
    held = false;
    crlf_to_lf((const unsigned char *)"\r", 1, (unsigned char *)out, &held);
    assert_int_equal(crlf_to_lf((const unsigned char *)"\r", 1, (unsigned char *)out, &held), 1);
    assert_true(held);
    assert_memory_equal(out, "\r", 1);
    /* An empty block keeps the held CR. */
    assert_int_equal(crlf_to_lf((const unsigned char *)"", 0, (unsigned char *)out, &held), 0);
    assert_true(held);
}

/* Every way of cutting a text into two or three blocks decodes alike, and
 * encoding then decoding gives back a text without CRs. */
static void test_crlf_boundaries(void **state)
{
    static const char *const texts[] = {
        "a\r\nb\r\n", "\r\n\r\n", "\r\r\n\n\r", "x\ry\r\n\rz\r", "\n\r\n\r\r\r\n", "",
    };
    char whole[64], cut[64], enc[128];

    (void)state;
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        size_t len = strlen(texts[t]);

        decode(texts[t], whole);
        for (size_t i = 0; i <= len; i++) {
            for (size_t j = i; j <= len; j++) {
                size_t cuts[2] = {i, j};
                decode_cut(texts[t], cuts, 2, cut);
                assert_string_equal(cut, whole);
            }
        }
    }
    encode("one\ntwo\n\nthree", enc);
    decode(enc, whole);
    assert_string_equal(whole, "one\ntwo\n\nthree");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_dispatch_unknown_and_login),
        cmocka_unit_test(test_dispatch_tls_required),
        cmocka_unit_test(test_dispatch_arguments),
        cmocka_unit_test(test_dispatch_permissions),
        cmocka_unit_test(test_dispatch_rest_and_rnfr),
        cmocka_unit_test(test_during_transfer),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_list_args),
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_eprt),
        cmocka_unit_test(test_epsv),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_crlf_encode),
        cmocka_unit_test(test_crlf_decode),
        cmocka_unit_test(test_crlf_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
