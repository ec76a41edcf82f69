/*
 * cmd.h - the command handlers, in groups, and what the groups share.
 * Private to commands.c and the cmd_*.c files.
 *
 * A handler is called by commands_dispatch once the table's flags are met
 * (logged in, argument present, write permission); arg is NULL when the
 * line had none. It sends its own replies and returns the result of the
 * last one: 0 to go on, -1 when the control connection is gone or the
 * session must end.
 */
#ifndef FTPD_CMD_H
#define FTPD_CMD_H

#include "listing.h"
#include "session.h"

/* cmd_login.c: the session itself. */
int cmd_user(session *s, const char *arg);
int cmd_pass(session *s, const char *arg);
int cmd_acct(session *s, const char *arg);
int cmd_quit(session *s, const char *arg);
int cmd_rein(session *s, const char *arg);
int cmd_clnt(session *s, const char *arg);

/* cmd_tls.c: FTPS (RFC 4217). */
int cmd_auth(session *s, const char *arg);
int cmd_pbsz(session *s, const char *arg);
int cmd_prot(session *s, const char *arg);
int cmd_ccc(session *s, const char *arg);

/* cmd_fs.c: directories and files. */
int cmd_cwd(session *s, const char *arg);
int cmd_cdup(session *s, const char *arg);
int cmd_pwd(session *s, const char *arg);
int cmd_mkd(session *s, const char *arg);
int cmd_rmd(session *s, const char *arg);
int cmd_dele(session *s, const char *arg);
int cmd_rnfr(session *s, const char *arg);
int cmd_rnto(session *s, const char *arg);
int cmd_size(session *s, const char *arg);
int cmd_mdtm(session *s, const char *arg);
int cmd_hash(session *s, const char *arg);
int cmd_site(session *s, const char *arg);

/* cmd_xfer.c: transfer parameters and transfers. */
int cmd_type(session *s, const char *arg);
int cmd_mode(session *s, const char *arg);
int cmd_stru(session *s, const char *arg);
int cmd_port(session *s, const char *arg);
int cmd_pasv(session *s, const char *arg);
int cmd_eprt(session *s, const char *arg);
int cmd_epsv(session *s, const char *arg);
int cmd_rest(session *s, const char *arg);
int cmd_allo(session *s, const char *arg);
int cmd_abor(session *s, const char *arg);
int cmd_retr(session *s, const char *arg);
int cmd_stor(session *s, const char *arg);
int cmd_appe(session *s, const char *arg);
int cmd_stou(session *s, const char *arg);
int cmd_list(session *s, const char *arg);
int cmd_nlst(session *s, const char *arg);
int cmd_mlsd(session *s, const char *arg);

/* cmd_info.c: answers on the control connection. */
int cmd_mlst(session *s, const char *arg);
int cmd_stat(session *s, const char *arg);
int cmd_syst(session *s, const char *arg);
int cmd_noop(session *s, const char *arg);
int cmd_feat(session *s, const char *arg);
int cmd_opts(session *s, const char *arg);

/* commands.c: the table's own. */
int cmd_help(session *s, const char *arg);

/* cmd.c: shared helpers. */

/* The reply for a failed file-system call's errno (550, 553, 452, 552). */
int cmd_reply_errno(session *s, int err);

/* Split "-la dir" into options and path, as clients send them for LIST,
 * NLST and STAT: "a" or "A" among the option letters sets o->show_hidden.
 * Returns the path, or NULL for none (the current directory). */
const char *cmd_list_args(const char *arg, listing_opts *o);

/* Listing options from the session: perm facts as it may write, the MLST
 * facts OPTS MLST selected; everything else off. */
void cmd_listing_opts(session *s, listing_opts *o);

/* Log, once per listing, that memory was short and it goes out unsorted. */
void cmd_log_unsorted(session *s, const listing *l, const char *norm);

#endif
