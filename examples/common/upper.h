/*
 * upper.h - the service of the seed's programs: ASCII upper-casing.
 */
#ifndef EX_UPPER_H
#define EX_UPPER_H

#include <stddef.h>

/* Copy n bytes from src to dst with the ASCII letters a-z made upper-case;
 * every other byte (including bytes >= 0x80 and NUL) is copied unchanged, so
 * the result does not depend on the locale. dst and src may be the same. */
void upper_ascii(void *dst, const void *src, size_t n);

#endif /* EX_UPPER_H */
