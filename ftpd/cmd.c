/*
 * cmd.c - helpers the command groups share: errno as a reply, LIST
 * options, listing options from the session.
 */
#include "cmd.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "control.h"
#include "log.h"

int cmd_reply_errno(session *s, int err)
{
    switch (err) {
    case ENOENT:
        return reply(s, 550, "No such file or directory.");
    case EACCES:
    case EPERM:
    case EXDEV:
    case ELOOP:
        return reply(s, 550, "Permission denied.");
    case EEXIST:
        return reply(s, 550, "File exists.");
    case ENOTEMPTY:
        return reply(s, 550, "Directory not empty.");
    case ENOTDIR:
        return reply(s, 550, "Not a directory.");
    case EISDIR:
        return reply(s, 550, "Is a directory.");
    case ENAMETOOLONG:
        return reply(s, 553, "File name too long.");
    case EINVAL:
        return reply(s, 553, "File name not allowed.");
    case ENOSPC:
        return reply(s, 452, "Insufficient storage space.");
    case EDQUOT:
    case EFBIG:
        return reply(s, 552, "Exceeded storage allocation.");
    default:
        return reply(s, 550, "Requested action not taken: %s.", strerror(err));
    }
}

/* Split "-la dir" into options and path, as clients send them for LIST and
 * NLST; "a" among the letters shows hidden names. Only words of letters and
 * digits after a '-' count as options ("-1" as ls(1) knows it), so a name
 * such as "-" stays a path; "./-1" names a file called "-1". */
const char *cmd_list_args(const char *arg, listing_opts *o)
{
    while (arg != NULL && arg[0] == '-' && isalnum((unsigned char)arg[1])) {
        const char *p = arg + 1;

        while (isalnum((unsigned char)*p))
            p++;
        if (*p != ' ' && *p != '\0')
            break;
        if (memchr(arg, 'a', (size_t)(p - arg)) != NULL ||
            memchr(arg, 'A', (size_t)(p - arg)) != NULL)
            o->show_hidden = true;
        while (*p == ' ')
            p++;
        arg = p;
    }
    return arg != NULL && *arg != '\0' ? arg : NULL;
}

/* OPTS MLST keeps its selection in the bits the formatter takes. */
_Static_assert(MLST_ALL == LISTING_FACTS_ALL, "MLST fact bits and listing fact bits differ");

void cmd_listing_opts(session *s, listing_opts *o)
{
    memset(o, 0, sizeof(*o));
    /* perm facts promise only what the session may do to what exists. */
    o->writable = s->can_modify;
    o->omit_facts = LISTING_FACTS_ALL & ~s->mlst_facts;
}

/* Logs, once per listing, that memory was short and the entries go out
 * unsorted. */
void cmd_log_unsorted(session *s, const listing *l, const char *norm)
{
    const char *why = listing_unsorted(l);

    if (why != NULL)
        log_msg("%s: listing %s in directory order: %s", s->peer_str, norm, why);
}
