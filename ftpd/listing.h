/*
 * listing.h - directory listings in the formats FTP clients parse.
 *
 * LIST: "ls -l" lines ("drwxr-xr-x 1 owner group 4096 Nov 25 18:40 name"),
 * the date as "Mon DD HH:MM" within six months, else "Mon DD  YYYY".
 * NLST: one name per line. MLSD/MLST: RFC 3659 facts
 * "type=file;size=12;modify=20261125184000;perm=adfrw;unique=803g1a; name".
 * Lines end in CRLF. Names containing CR or LF are skipped in LIST/NLST/MLSD
 * (they would break the line format); nothing here follows a symlink out of
 * the root.
 *
 * A listing is a pull iterator: listing_open() looks at the path and reads
 * the directory's names, and listing_read() / listing_next() format lines as
 * the caller asks for them, so the formatted text is never held in memory.
 * Entries are sorted by name (byte order) unless memory is short: the names
 * are held to be sorted only within the per-listing bounds below and the
 * server-wide budget (listbudget.h); past them the directory is read again
 * and listed in directory order, holding no names. Either way every entry
 * is listed once, and the choice is made before the first line.
 */
#ifndef FTPD_LISTING_H
#define FTPD_LISTING_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "listfmt.h"
#include "path.h"

/* A directory with more names, or more bytes of names, than this is listed
 * unsorted rather than held in memory. */
#define LISTING_MAX_ENTRIES 200000
#define LISTING_MAX_NAME_BYTES (16u << 20)
/* Names memory is taken from the listing budget in steps of this size. */
#define LISTING_BUDGET_CHUNK (64u << 10)
/* Longest line of any listing, CRLF included: the fixed columns, a name and
 * a symlink target (or an MLST path). */
#define LISTING_LINE_MAX (256 + NAME_MAX + VFS_PATH_MAX)

typedef enum listing_kind {
    LISTING_LIST, /* "ls -l" lines */
    LISTING_NLST, /* bare names */
    LISTING_MLSD  /* RFC 3659 facts, "type=cdir" for the directory first */
} listing_kind;

typedef struct listing_opts {
    bool show_hidden;    /* LIST -a: include names starting with '.' */
    bool writable;       /* the session may write: perm facts include a,c,d,f,m,p,w */
    time_t now;          /* for the six-month date rule; 0 = time(NULL) */
    unsigned omit_facts; /* LISTING_FACT_* bits left out of MLSD/MLST lines
                            (OPTS MLST); 0 shows every fact */
} listing_opts;

typedef struct listing listing;

/* Start a listing of path (NULL or "" = the current directory): a
 * directory lists its entries, a file (LIST/NLST only) that one entry.
 * "." and ".." are never listed; dot files only with show_hidden (MLSD
 * lists them all). Dates are in UTC. A symlink whose target lies beneath
 * the root is shown "name -> target" in LIST and with its target's facts in
 * MLSD; others as a bare link. Every error about the path (ENOENT, EXDEV,
 * EACCES, ENOTDIR for MLSD of a file, ...) is reported here, before any line.
 * Returns the listing, or NULL with errno. */
listing *listing_open(const vfs *v, const char *path, listing_kind kind, const listing_opts *o);

/* Fill buf with as many whole lines as fit in cap bytes. A line longer
 * than cap on its own is handed out in cap-sized pieces by this and the
 * following calls, so no byte is lost; with cap >= LISTING_LINE_MAX every
 * read ends at a line end. Returns the byte count, 0 when the listing is
 * complete, or -1 with errno (EINVAL for cap 0; a failure met after some
 * lines were formatted is reported by the next call). */
ssize_t listing_read(listing *l, char *buf, size_t cap);

/* The next line (CRLF included; after a listing_read that stopped inside a
 * line, the rest of that line) in *line, valid until the next call.
 * Returns its length, 0 when the listing is complete, or -1 with errno. */
ssize_t listing_next(listing *l, const char **line);

/* NULL when the entries come sorted by name; otherwise why they come in
 * directory order (for the log). */
const char *listing_unsorted(const listing *l);

/* End the listing; gives back its memory and its share of the budget.
 * NULL is allowed. */
void listing_close(listing *l);

/* Called once per line, the line including its CRLF. Returns 0 to continue,
 * -1 to stop the listing (the listing then fails with the callback's errno,
 * EPIPE if it set none). */
typedef int (*listing_emit)(void *ctx, const char *buf, size_t n);

/* The whole listing of path through emit, one call per line: listing_open
 * and listing_next in one. Returns 0 or -1 with errno. */
int listing_list(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx);
int listing_nlst(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx);
int listing_mlsd(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx);

/* MLST: the single facts line for path, without leading space and without
 * CRLF, into buf (the name part is the virtual absolute path); facts as
 * o->omit_facts selects them. */
int listing_mlst(const vfs *v, const char *path, const listing_opts *o, char *buf, size_t size);

#endif
