/*
 * sha256_bench.c — SHA-256 of one file three ways, each twice (the second pass reads from the
 * page cache): lcbench's former portable C (datasets/sha256.c before libcrypto, given as OLD,
 * built with -DOLD_SHA256), libcrypto's EVP_Digest*, and libcrypto's SHA256_* (what
 * datasets/sha256.c uses now).  The numbers are in BENCHMARKS.md with the command that made them.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef OLD_SHA256
/* the former datasets/sha256.h interface, under other names (see BENCHMARKS.md for the build) */
typedef struct { uint32_t h[8]; uint64_t n_bytes; uint8_t buf[64]; size_t n_buf; } Sha256;
void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_hex(Sha256 *s, char hex[65]);
#endif

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: sha256_bench FILE\n"); return 2; }
    static unsigned char buf[1 << 16];   /* sha256_file's block */
    const char *name[] = {"portable C", "EVP_Digest", "SHA256_*"};
    for (int mode = 0; mode < 3; mode++)
        for (int rep = 0; rep < 2; rep++) {
#ifndef OLD_SHA256
            if (mode == 0) continue;
#endif
            FILE *f = fopen(argv[1], "rb");
            if (!f) { perror(argv[1]); return 1; }
            double t0 = now();
            unsigned char md[32];
            unsigned int ml;
            char hex[65] = "";
            size_t n;
            EVP_MD_CTX *c = NULL;
            SHA256_CTX l;
#ifdef OLD_SHA256
            Sha256 s;
            if (mode == 0) sha256_init(&s);
#endif
            if (mode == 1) { c = EVP_MD_CTX_new(); EVP_DigestInit_ex(c, EVP_sha256(), NULL); }
            if (mode == 2) SHA256_Init(&l);
            while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
#ifdef OLD_SHA256
                if (mode == 0) sha256_update(&s, buf, n);
#endif
                if (mode == 1) EVP_DigestUpdate(c, buf, n);
                if (mode == 2) SHA256_Update(&l, buf, n);
            }
#ifdef OLD_SHA256
            if (mode == 0) sha256_hex(&s, hex);
#endif
            if (mode == 1) { EVP_DigestFinal_ex(c, md, &ml); EVP_MD_CTX_free(c); }
            if (mode == 2) SHA256_Final(md, &l);
            if (mode) for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", md[i]);
            fclose(f);
            printf("%-10s pass %d  %.3f s  %.16s\n", name[mode], rep + 1, now() - t0, hex);
        }
    return 0;
}
