/*
 * sha256.h — SHA-256 (FIPS 180-4), for the provenance hashes a run records: the model's
 * weights, the tokenizer file, the source text and the exact token stream a run scored.
 * Streaming interface so that multi-gigabyte checkpoints are hashed without being loaded.
 * The compression is libcrypto's (SHA-NI / AVX2 assembly where the CPU has it: 400 MB in
 * 0.65 s against 2.9 s for the portable C it replaced, BENCHMARKS.md).  The state is a plain
 * struct (no allocation), so a hash abandoned on an error path needs no free.
 */
#ifndef LCB_SHA256_H
#define LCB_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define OPENSSL_SUPPRESS_DEPRECATED   /* SHA256_CTX: see sha256.c for why not EVP */
#include <openssl/sha.h>

typedef struct {
    SHA256_CTX c;         /* libcrypto's state: chaining value, byte count, partial block */
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
/* Finish and write 64 lowercase hex digits + NUL into hex (65 bytes). */
void sha256_hex(Sha256 *s, char hex[65]);
/* Hash a whole file (streamed).  Returns 0, or -1 with err naming the file. */
int sha256_file(const char *path, Sha256 *s, char *err, size_t errlen);

#endif
