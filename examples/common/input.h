/*
 * input.h - the clients' stdin: bounded lines, and the ">>: " prompt shown
 * only when a person types (stdin is a terminal).
 */
#ifndef EX_INPUT_H
#define EX_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define INPUT_PROMPT ">>: "

typedef enum input_status {
    INPUT_LINE,     /* a line (without its '\n') is in the buffer */
    INPUT_TOO_LONG, /* the line did not fit; it was read and dropped */
    INPUT_EOF,      /* no more input */
    INPUT_ERROR     /* reading failed; errno tells why */
} input_status;

/* Read the next line from f into buf, without its '\n', at most size bytes;
 * NUL bytes are kept. *len receives the length. A last line without '\n'
 * counts as a line. */
input_status input_line(FILE *f, char *buf, size_t size, size_t *len);

/* True when stdin is a terminal: prompts are shown then. */
bool input_interactive(void);

/* Show the prompt (if interactive) and flush stdout. */
void input_prompt(bool interactive);

#endif /* EX_INPUT_H */
