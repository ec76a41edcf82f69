/*
 * crlf.c - line-end conversion for ASCII transfers.
 */
#include "crlf.h"

size_t crlf_from_lf(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\n')
            out[o++] = '\r';
        out[o++] = in[i];
    }
    return o;
}

size_t crlf_to_lf(const unsigned char *in, size_t n, unsigned char *out, bool *held)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (*held) {
            *held = false;
            if (in[i] != '\n')
                out[o++] = '\r';
        }
        if (in[i] == '\r') {
            *held = true;
            continue;
        }
        out[o++] = in[i];
    }
    return o;
}
