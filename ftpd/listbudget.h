/*
 * listbudget.h - the memory all directory listings hold together.
 *
 * A listing keeps a directory's names in memory to sort them. Each listing
 * reserves what it holds from one budget (--max-listing-memory) before it
 * grows, and gives it all back when it closes. The counter lives in shared
 * memory, so the budget is one for the whole server in threading mode and
 * in forking mode (where each session is a process of its own). A listing
 * that is refused does not fail: it is sent unsorted, holding no names.
 */
#ifndef FTPD_LISTBUDGET_H
#define FTPD_LISTBUDGET_H

#include <stddef.h>

/* Set up the budget with a limit in bytes, before sessions start (forked
 * sessions inherit the shared counter). A later call only changes the
 * limit. Until the first call every reservation succeeds. Returns 0 or -1
 * with errno. */
int listbudget_init(unsigned long long limit);

/* Take n bytes from the budget. Returns 0, or -1 with errno ENOBUFS when
 * that would exceed the limit (nothing is taken then). */
int listbudget_reserve(size_t n);

/* Give back n bytes taken with listbudget_reserve. */
void listbudget_release(size_t n);

/* Bytes reserved now by all listings (0 before listbudget_init). */
unsigned long long listbudget_used(void);

#endif
