/*
 * listfmt.h - the lines of a listing, formatted from a stat result: "ls -l"
 * lines, MLSx facts, times. listing.h includes it; listfmt_* are for
 * listing.c only.
 */
#ifndef FTPD_LISTFMT_H
#define FTPD_LISTFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

/* MLSx facts (RFC 3659 7.5), in the order FEAT names them. */
#define LISTING_FACT_TYPE 0x01u
#define LISTING_FACT_SIZE 0x02u
#define LISTING_FACT_MODIFY 0x04u
#define LISTING_FACT_PERM 0x08u
#define LISTING_FACT_UNIQUE 0x10u
#define LISTING_FACTS_ALL 0x1fu

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

/* A name listings show for an id, fixed in advance (listfmt_fixed_names). */
typedef struct listfmt_id_name {
    bool user; /* a user id; false: a group id */
    unsigned id;
    char name[LS_ID_NAME_MAX];
} listfmt_id_name;

/* From now on listfmt_lookup_id answers from these n names only (copied;
 * at most 8) and shows any other id as its number, without asking NSS:
 * for a session process that has chrooted, where NSS would read the
 * user's own /etc. names NULL goes back to NSS. Per process; set it
 * before any listing runs (a forked session is one thread). */
void listfmt_fixed_names(const listfmt_id_name *names, size_t n);

/* One "ls -l" line without CRLF into buf; target (may be NULL) is a
 * symlink's text, shown after " -> ". Returns the length, or -1 with errno
 * ENAMETOOLONG if buf is too small. */
int listfmt_ls_line(const struct stat *st, const char *owner, const char *group, const char *name,
                    const char *target, time_t now, char *buf, size_t size);

/* One "ls -l" line / MLSx facts for a stat result, without CRLF. now 0 =
 * time(NULL). type_override NULL = from st_mode. facts: the LISTING_FACT_*
 * bits to show, in the order type, size (files only), modify, perm, unique;
 * with none the line is " name". ENAMETOOLONG if buf is too small. */
/* listing_format_ls is for the unit tests, which check the "ls -l" line
 * of a made-up stat; the server formats through listing_next. */
int listing_format_ls(const struct stat *st, const char *name, time_t now, char *buf, size_t size);
int listing_format_facts(const struct stat *st, const char *type_override, const char *name,
                         bool writable, unsigned facts, char *buf, size_t size);

/* MDTM / modify fact time format: YYYYMMDDHHMMSS in UTC. */
void listing_format_time(time_t t, char out[15]);

#endif
