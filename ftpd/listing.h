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

/* Returns 0 to continue, -1 to stop the listing (the listing then fails). */
typedef int (*listing_emit)(void *ctx, const char *buf, size_t n);

typedef struct listing_opts {
    bool show_hidden;  /* LIST -a: include names starting with '.' */
    bool writable;     /* the session may write: perm facts include a,c,d,f,m,p,w */
    time_t now;        /* for the six-month date rule; 0 = time(NULL) */
} listing_opts;

/* LIST / NLST of path (a directory: its entries; a file: that one entry).
 * Entries are sorted by name. Returns 0 or -1 with errno. */
int listing_list(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx);
int listing_nlst(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx);
/* MLSD of a directory (ENOTDIR for a file), including "type=cdir" for ".". */
int listing_mlsd(const vfs *v, const char *path, const listing_opts *o, listing_emit emit,
                 void *ctx);
/* MLST: the single facts line for path, without leading space and without
 * CRLF, into buf (the name part is the virtual absolute path). */
int listing_mlst(const vfs *v, const char *path, const listing_opts *o, char *buf, size_t size);

/* One "ls -l" line / MLSx facts for a stat result (used by STAT path). */
int listing_format_ls(const struct stat *st, const char *name, time_t now, char *buf,
                      size_t size);
int listing_format_facts(const struct stat *st, const char *type_override, const char *name,
                         bool writable, char *buf, size_t size);

/* MDTM / modify fact time format: YYYYMMDDHHMMSS in UTC. */
void listing_format_time(time_t t, char out[15]);

#endif
