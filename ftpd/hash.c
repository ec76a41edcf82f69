/*
 * hash.c - file digests for the HASH command, with OpenSSL's EVP interface.
 *
 * hash_ctx wraps one EVP_MD_CTX, so the caller decides how much to digest
 * between other work. hash_file reads with pread in large chunks, so the
 * descriptor's offset is left alone (the same descriptor may be in use for
 * a transfer) and a range costs no seeking. Buffers live on the heap:
 * sessions may run on small thread stacks.
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

struct hash_ctx {
    EVP_MD_CTX *md;
    size_t md_size; /* digest bytes */
};

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

hash_ctx *hash_begin(const char *algo)
{
    const char *name = hash_lookup(algo);
    const EVP_MD *type;
    hash_ctx *h;

    if (name == NULL) {
        errno = EINVAL;
        return NULL;
    }
    type = hash_md(name);
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        goto fail;
    h->md = EVP_MD_CTX_new();
    if (h->md == NULL) {
        errno = ENOMEM;
        goto fail;
    }
    if (EVP_DigestInit_ex(h->md, type, NULL) != 1) {
        errno = EINVAL;
        goto fail;
    }
    h->md_size = (size_t)EVP_MD_size(type);
    return h;
fail:
    hash_free(h);
    return NULL;
}

int hash_update(hash_ctx *h, const void *buf, size_t n)
{
    if (EVP_DigestUpdate(h->md, buf, n) != 1) {
        errno = EIO;
        return -1;
    }
    return 0;
}

size_t hash_hex_size(const hash_ctx *h)
{
    return h->md_size * 2 + 1;
}

int hash_end(hash_ctx *h, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (size < hash_hex_size(h)) {
        errno = ERANGE;
        return -1;
    }
    if (EVP_DigestFinal_ex(h->md, md, &md_len) != 1) {
        errno = EIO;
        return -1;
    }
    for (size_t i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[2 * (size_t)md_len] = '\0';
    return 0;
}

void hash_free(hash_ctx *h)
{
    int saved = errno;

    if (h != NULL) {
        EVP_MD_CTX_free(h->md);
        free(h);
    }
    errno = saved;
}

int hash_file(int fd, const char *algo, off_t start, off_t end, char *out, size_t size)
{
    struct stat st;
    int rc = -1;
    unsigned char *buf = NULL;
    hash_ctx *h = NULL;

    if (hash_lookup(algo) == NULL || start < 0 || (end >= 0 && end < start)) {
        errno = EINVAL;
        return -1;
    }
    /* A buffer too small is refused before any reading. */
    if (size < (size_t)EVP_MD_size(hash_md(hash_lookup(algo))) * 2 + 1) {
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
    if (buf == NULL) {
        errno = ENOMEM;
        goto out;
    }
    h = hash_begin(algo);
    if (h == NULL)
        goto out;
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
        if (hash_update(h, buf, (size_t)n) < 0)
            goto out;
        pos += n;
    }
    rc = hash_end(h, out, size);
out:;
    int saved = errno;
    hash_free(h);
    free(buf);
    errno = saved;
    return rc;
}
