/*
 * input.c - the clients' stdin.
 */
#include "input.h"

#include <unistd.h>

input_status input_line(FILE *f, char *buf, size_t size, size_t *len)
{
    size_t n = 0;
    bool too_long = false;
    int c;

    /* getc rather than fgets: a line may hold NUL bytes and we need its
     * true length. */
    for (;;) {
        c = getc(f);
        if (c == EOF)
            break;
        if (c == '\n')
            break;
        if (n < size)
            buf[n++] = (char)c;
        else
            too_long = true;
    }
    *len = n;
    if (c == EOF && ferror(f))
        return INPUT_ERROR;
    if (too_long)
        return INPUT_TOO_LONG;
    if (c == EOF && n == 0)
        return INPUT_EOF;
    return INPUT_LINE;
}

bool input_interactive(void)
{
    return isatty(STDIN_FILENO) == 1;
}

void input_prompt(bool interactive)
{
    if (interactive)
        fputs(INPUT_PROMPT, stdout);
    fflush(stdout);
}
