/* SHA-256 for provenance checksums and stage fingerprints, by OpenSSL's libcrypto (it uses
 * the CPU's SHA extensions where present: a 5 GB checkpoint hashes in seconds). The Hugging
 * Face Hub lists the SHA-256 of every LFS file, so recorded checksums compare directly. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "reprshift/pipeline.h"

static void to_hex(const unsigned char *md, char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

void rs_sha256_hex(const void *data, size_t n, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    /* EVP_Digest fails only on allocation failure; an empty hex string then never matches */
    if (!EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) || len != 32) {
        hex[0] = '\0';
        return;
    }
    to_hex(md, hex);
}

int rs_sha256_file(const char *path, char hex[65], int64_t *bytes, rs_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rs_errk(err, RS_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = (size_t)1 << 20;
    uint8_t *buf = malloc(cap);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = 0;
    if (!buf || !ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        rc = rs_errk(err, RS_ENOMEM, "%s: cannot start SHA-256 (out of memory)", path);
        goto done;
    }
    int64_t total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = rs_errk(err, RS_EIO, "%s: read error: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0) break;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)r)) {
            rc = rs_errf(err, "%s: SHA-256 update failed", path);
            goto done;
        }
        total += r;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_DigestFinal_ex(ctx, md, &len) || len != 32) {
        rc = rs_errf(err, "%s: SHA-256 final failed", path);
        goto done;
    }
    to_hex(md, hex);
    if (bytes) *bytes = total;
done:
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    return rc;
}
