/*
 * upper.c - ASCII upper-casing, byte for byte.
 */
#include "upper.h"

void upper_ascii(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t i;

    /* toupper() would follow the locale and could change bytes >= 0x80;
     * the service promises to touch only a-z. */
    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        d[i] = (c >= 'a' && c <= 'z') ? (unsigned char)(c - ('a' - 'A')) : c;
    }
}
