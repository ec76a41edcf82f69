/*
 * tlsarg.h - the arguments of the FTPS commands (RFC 2228, RFC 4217):
 * AUTH's mechanism, PBSZ's buffer size and PROT's level. Pure parsers,
 * unit-tested on their own.
 */
#ifndef FTPD_TLSARG_H
#define FTPD_TLSARG_H

/* AUTH TLS, and its aliases TLS-C and SSL (any case): 0; anything else
 * (TLS-P, GSSAPI, ...): -1. */
int tlsarg_auth(const char *arg);

/* PBSZ: a decimal number of at most 32 bits (RFC 2228), nothing else.
 * Returns 0 with *size set, or -1. */
int tlsarg_pbsz(const char *arg, unsigned long *size);

/* PROT: one letter, C, S, E or P (any case). Returns the letter in upper
 * case, or 0 for anything else. */
int tlsarg_prot(const char *arg);

#endif
