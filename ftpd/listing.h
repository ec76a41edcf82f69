/*
 * listing.h - directory listings in the formats FTP clients parse.
 *
 * LIST: "ls -l" lines ("drwxr-xr-x 1 owner group 4096 Nov 25 18:40 name"),
 * the date as "Mon DD HH:MM" within six months, else "Mon DD  YYYY".
 * NLST: one name per line. MLSD/MLST: RFC 3659 facts
 * "type=file;size=12;modify=20261125184000;perm=adfrw;unique=803g1a; name".
 * Lines end in CRLF. Output goes through an emit callback so the caller
 * decides where it goes (a data connection, a control reply, a buffer).
 * Names containing CR or LF are skipped in LIST/NLST/MLSD (they would break
 * the line format); nothing here follows a symlink out of the root.
 */
#ifndef FTPD_LISTING_H
#define FTPD_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include "path.h"

/* A directory's names are held in memory to be sorted; past either bound
 * the listing fails with ENOBUFS rather than grow without limit. */
#define LISTING_MAX_ENTRIES 200000
#define LISTING_MAX_NAME_BYTES (16u << 20)

/* Called once per line, the line including its CRLF (callers that write to
 * a socket should buffer). Returns 0 to continue, -1 to stop the listing
 * (the listing then fails with the callback's errno, EPIPE if it set none). */
typedef int (*listing_emit)(void *ctx, const char *buf, size_t n);

typedef struct listing_opts {
    bool show_hidden;  /* LIST -a: include names starting with '.' */
    bool writable;     /* the session may write: perm facts include a,c,d,f,m,p,w */
    time_t now;        /* for the six-month date rule; 0 = time(NULL) */
} listing_opts;

/* LIST / NLST of path (a directory: its entries; a file: that one entry).
 * Entries are sorted by name (byte order); "." and ".." are never listed;
 * dot files only with show_hidden. Dates are in UTC. A symlink whose target
 * lies beneath the root is shown "name -> target", others as a bare link.
 * Returns 0 or -1 with errno. */
int listing_list(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx);
int listing_nlst(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx);
/* MLSD of a directory (ENOTDIR for a file), including "type=cdir" for ".".
 * Lists every entry (dot files too). A symlink that resolves beneath the
 * root is shown with its target's facts, others as type=OS.unix=symlink. */
int listing_mlsd(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx);
/* MLST: the single facts line for path, without leading space and without
 * CRLF, into buf (the name part is the virtual absolute path). */
int listing_mlst(const vfs *v, const char *path, const listing_opts *o, char *buf, size_t size);

/* One "ls -l" line / MLSx facts for a stat result (used by STAT path),
 * without CRLF. now 0 = time(NULL). type_override NULL = from st_mode.
 * Facts: type, size (files only), modify, perm, unique. ENAMETOOLONG if
 * buf is too small. */
int listing_format_ls(const struct stat *st, const char *name, time_t now, char *buf,
                      size_t size);
int listing_format_facts(const struct stat *st, const char *type_override, const char *name,
                         bool writable, char *buf, size_t size);

/* MDTM / modify fact time format: YYYYMMDDHHMMSS in UTC. */
void listing_format_time(time_t t, char out[15]);

#endif
