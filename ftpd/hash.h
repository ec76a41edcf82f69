/*
 * hash.h - file digests for the HASH command (draft-bryan-ftpext-hash).
 */
#ifndef FTPD_HASH_H
#define FTPD_HASH_H

#include <stddef.h>
#include <sys/types.h>

/* Supported algorithm names, in the order FEAT lists them. */
extern const char *const hash_algorithms[]; /* "SHA-256", "SHA-1", "MD5", NULL */

/* Is name (case-insensitive) a supported algorithm? Returns its canonical
 * spelling or NULL. */
const char *hash_lookup(const char *name);

/* Room for any supported digest as hex, with its NUL (SHA-256: 65). */
#define HASH_HEX_MAX 65

/* Digest bytes [start, end) of the open file fd (end < 0 = to the end of the
 * file) with algorithm algo, as lower-case hex into out (NUL-terminated).
 * Returns 0 or -1 with errno (EINVAL for a bad algorithm or range).
 * An end beyond the file's size is cut at the size; a start beyond it is
 * EINVAL. EISDIR for a directory, ERANGE if out is too small. The file
 * offset of fd is not changed (pread). */
int hash_file(int fd, const char *algo, off_t start, off_t end, char *out, size_t size);

#endif
