/*
 * tlsarg.c - the arguments of AUTH, PBSZ and PROT (see tlsarg.h).
 */
#include "tlsarg.h"

#include <ctype.h>
#include <stddef.h>
#include <strings.h>

int tlsarg_auth(const char *arg)
{
    if (arg == NULL)
        return -1;
    if (strcasecmp(arg, "TLS") == 0 || strcasecmp(arg, "TLS-C") == 0 || strcasecmp(arg, "SSL") == 0)
        return 0;
    return -1;
}

int tlsarg_pbsz(const char *arg, unsigned long *size)
{
    unsigned long v = 0;
    size_t i;

    if (arg == NULL || arg[0] == '\0')
        return -1;
    /* Bounded by the 32-bit limit: at most 10 digits get through. */
    for (i = 0; arg[i] != '\0'; i++) {
        if (arg[i] < '0' || arg[i] > '9' || i >= 10)
            return -1;
        v = v * 10 + (unsigned long)(arg[i] - '0');
    }
    if (v > 0xffffffffUL)
        return -1;
    *size = v;
    return 0;
}

int tlsarg_prot(const char *arg)
{
    int c;

    if (arg == NULL || arg[0] == '\0' || arg[1] != '\0')
        return 0;
    c = toupper((unsigned char)arg[0]);
    return c == 'C' || c == 'S' || c == 'E' || c == 'P' ? c : 0;
}
