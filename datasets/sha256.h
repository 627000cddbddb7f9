/*
 * sha256.h — SHA-256 (FIPS 180-4), for the provenance hashes a run records: the model's
 * weights, the tokenizer file, the source text and the exact token stream a run scored.
 * Streaming interface so that multi-gigabyte checkpoints are hashed without being loaded.
 */
#ifndef LCB_SHA256_H
#define LCB_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t n_bytes;     /* total bytes fed */
    uint8_t buf[64];      /* pending partial block */
    size_t n_buf;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
/* Finish and write 64 lowercase hex digits + NUL into hex (65 bytes). */
void sha256_hex(Sha256 *s, char hex[65]);
/* Hash a whole file (streamed).  Returns 0, or -1 with err naming the file. */
int sha256_file(const char *path, Sha256 *s, char *err, size_t errlen);

#endif
