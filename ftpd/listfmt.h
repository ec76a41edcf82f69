/*
 * listfmt.h - the lines of a listing, formatted from a stat result: "ls -l"
 * lines, MLSx facts, times. Private to listing.c and listfmt.c; the public
 * formatters (listing_format_*) are declared in listing.h.
 */
#ifndef FTPD_LISTFMT_H
#define FTPD_LISTFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

/* Longest owner or group name shown, with its NUL; longer ones are shown
 * as numbers. */
#define LS_ID_NAME_MAX 33
/* Scratch space for getpwuid_r / getgrgid_r; a bigger entry falls back to
 * the numeric id. */
#define LS_PWBUF_SIZE 8192

/* The name of user (or group) id into out; the numeric id if unknown, or
 * if the name is too long or holds blanks or control characters (they
 * would shift the columns clients parse). scratch (scratch_size bytes) is
 * for the lookup; NULL gives the number. */
void listfmt_lookup_id(bool user, unsigned id, char *out, size_t size, char *scratch,
                       size_t scratch_size);

/* One "ls -l" line without CRLF into buf; target (may be NULL) is a
 * symlink's text, shown after " -> ". Returns the length, or -1 with errno
 * ENAMETOOLONG if buf is too small. */
int listfmt_ls_line(const struct stat *st, const char *owner, const char *group, const char *name,
                    const char *target, time_t now, char *buf, size_t size);

#endif
