/*
 * hash.c - file digests for the HASH command, with OpenSSL's EVP interface.
 *
 * The file is read with pread in large chunks, so the descriptor's offset is
 * left alone (the same descriptor may be in use for a transfer) and a range
 * costs no seeking. The buffer lives on the heap: sessions may run on small
 * thread stacks.
 */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes read per pread call. */
#define HASH_CHUNK ((size_t)256 * 1024)

const char *const hash_algorithms[] = {"SHA-256", "SHA-1", "MD5", NULL};

const char *hash_lookup(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; hash_algorithms[i] != NULL; i++)
        if (strcasecmp(name, hash_algorithms[i]) == 0)
            return hash_algorithms[i];
    return NULL;
}

static const EVP_MD *hash_md(const char *canonical)
{
    if (strcmp(canonical, "SHA-256") == 0)
        return EVP_sha256();
    if (strcmp(canonical, "SHA-1") == 0)
        return EVP_sha1();
    return EVP_md5();
}

int hash_file(int fd, const char *algo, off_t start, off_t end, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    struct stat st;
    int rc = -1;
    unsigned char *buf = NULL;
    EVP_MD_CTX *ctx = NULL;
    const char *name = hash_lookup(algo);

    if (name == NULL || start < 0 || (end >= 0 && end < start)) {
        errno = EINVAL;
        return -1;
    }
    const EVP_MD *type = hash_md(name);
    if (size < (size_t)EVP_MD_size(type) * 2 + 1) {
        errno = ERANGE;
        return -1;
    }
    if (fstat(fd, &st) < 0)
        return -1;
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return -1;
    }
    /* A range past the end is cut at the end; one starting beyond it is an
     * error, as nothing of it exists. */
    if (start > st.st_size) {
        errno = EINVAL;
        return -1;
    }
    if (end < 0 || end > st.st_size)
        end = st.st_size;

    buf = malloc(HASH_CHUNK);
    ctx = EVP_MD_CTX_new();
    if (buf == NULL || ctx == NULL) {
        errno = ENOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(ctx, type, NULL) != 1) {
        errno = EINVAL;
        goto out;
    }
    (void)posix_fadvise(fd, start, end - start, POSIX_FADV_SEQUENTIAL);
    off_t pos = start;
    while (pos < end) {
        size_t want = (end - pos) < (off_t)HASH_CHUNK ? (size_t)(end - pos) : HASH_CHUNK;
        ssize_t n = pread(fd, buf, want, pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto out;
        }
        if (n == 0)
            break; /* the file shrank while we read: digest what was there */
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            errno = EIO;
            goto out;
        }
        pos += n;
    }
    if (EVP_DigestFinal_ex(ctx, md, &md_len) != 1) {
        errno = EIO;
        goto out;
    }
    for (size_t i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[2 * (size_t)md_len] = '\0';
    rc = 0;
out:;
    int saved = errno;
    EVP_MD_CTX_free(ctx);
    free(buf);
    errno = saved;
    return rc;
}
