/*
 * hash.h - file digests for the HASH command (draft-bryan-ftpext-hash).
 *
 * The digest is incremental (hash_begin, hash_update, hash_end) so the
 * server can read the file in steps and serve the control connection in
 * between (xfer_digest in xfer.c); hash_file does it all in one call.
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

/* A digest in progress. */
typedef struct hash_ctx hash_ctx;

/* Start a digest with algorithm algo (any spelling hash_lookup takes).
 * Returns it, or NULL with errno (EINVAL for an unknown algorithm, ENOMEM). */
hash_ctx *hash_begin(const char *algo);

/* Add n bytes. Returns 0 or -1 with errno EIO. */
int hash_update(hash_ctx *h, const void *buf, size_t n);

/* Bytes hash_end needs for the hex digest with its NUL. */
size_t hash_hex_size(const hash_ctx *h);

/* Finish: the digest as lower-case hex into out (NUL-terminated). Returns 0
 * or -1 with errno (ERANGE if out is too small, nothing written then; EIO).
 * The context must still be freed; it takes no more updates. */
int hash_end(hash_ctx *h, char *out, size_t size);

/* Release a digest, finished or not. NULL is ignored; errno is kept. */
void hash_free(hash_ctx *h);

/* Digest bytes [start, end) of the open file fd (end < 0 = to the end of the
 * file) with algorithm algo, as lower-case hex into out (NUL-terminated).
 * Returns 0 or -1 with errno (EINVAL for a bad algorithm or range).
 * An end beyond the file's size is cut at the size; a start beyond it is
 * EINVAL. EISDIR for a directory, ERANGE if out is too small. The file
 * offset of fd is not changed (pread). Runs to the end without a pause:
 * the server digests with xfer_digest, which can be interrupted. */
int hash_file(int fd, const char *algo, off_t start, off_t end, char *out, size_t size);

#endif
