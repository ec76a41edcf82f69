/*
 * crlf.h - line-end conversion for TYPE A (ASCII) transfers: the file holds
 * LF, the wire carries CRLF (RFC 959 3.1.1.1). Pure functions.
 */
#ifndef FTPD_CRLF_H
#define FTPD_CRLF_H

#include <stdbool.h>
#include <stddef.h>

/* LF -> CRLF, for a download: n bytes of in into out, which must hold
 * 2 * n bytes. Every LF gets a CR before it, also one that already has a
 * CR (the file is sent as it is, line ends made CRLF). Returns the
 * converted length. */
size_t crlf_from_lf(const unsigned char *in, size_t n, unsigned char *out);

/* CRLF -> LF, for an upload: n bytes of in into out (n bytes of room).
 * A CR directly before an LF is dropped; any other CR is kept. A CR at the
 * end of in is held back in *held (start with false) until the next call
 * shows whether an LF follows; after the last block a held CR is the
 * caller's to write. Returns the converted length. */
size_t crlf_to_lf(const unsigned char *in, size_t n, unsigned char *out, bool *held);

#endif
