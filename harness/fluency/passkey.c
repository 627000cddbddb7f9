/*
 * passkey.c — the prompt generator of LongLoRA's passkey test (see passkey.h) and the numpy
 * legacy random numbers it depends on: MT19937 (init_genrand seeding) and RandomState.randint,
 * which for a range below 2^32 draws 32-bit words, masks them to the next power of two minus
 * one and rejects values past the range (numpy random_bounded_uint64, use_masked = True).
 */
#include "harness/fluency/passkey.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void np_random_seed(NpRandom *r, uint32_t seed) {
    r->mt[0] = seed;
    for (int i = 1; i < 624; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->mti = 624;
}

uint32_t np_random_uint32(NpRandom *r) {
    if (r->mti >= 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (r->mt[i] & 0x80000000u) | (r->mt[(i + 1) % 624] & 0x7fffffffu);
            r->mt[i] = r->mt[(i + 397) % 624] ^ (y >> 1) ^ (y & 1 ? 0x9908b0dfu : 0);
        }
        r->mti = 0;
    }
    uint32_t y = r->mt[r->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

int64_t np_random_randint(NpRandom *r, int64_t low, int64_t high) {
    uint64_t rng = (uint64_t)(high - low - 1);   /* inclusive range width */
    if (rng == 0) return low;
    /* callers stay below 2^32 (passkey ranges); numpy uses 32-bit draws there */
    if (rng == 0xFFFFFFFFu) return low + (int64_t)np_random_uint32(r);
    uint64_t mask = rng;
    mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16;
    uint64_t v;
    while ((v = (np_random_uint32(r) & mask)) > rng) {}
    return low + (int64_t)v;
}

int64_t passkey_n_garbage(int64_t i, int64_t interval) {
    /* Python: int(3.75 * (i + 1) * interval // 1024 * 1024), float floor division */
    double x = 3.75 * (double)(i + 1) * (double)interval;
    return (int64_t)(floor(x / 1024.0) * 1024.0);
}

int passkey_prompt(int64_t n_garbage, uint32_t seed, char **prompt, size_t *len, char key[16], size_t *info_off) {
    NpRandom r;
    np_random_seed(&r, seed);
    int64_t n_prefix = np_random_randint(&r, 0, n_garbage), n_suffix = n_garbage - n_prefix;
    int64_t pass_key = np_random_randint(&r, 1, 50000);
    /* garbage_inf = " ".join([garbage] * 5000); the prefix and suffix are its first characters */
    const size_t fl = strlen(PASSKEY_FILLER);
    const size_t inf_len = 5000 * fl + 4999;
    if ((size_t)n_garbage > inf_len) return -1;   /* the Python asserts len(garbage_inf) >= n_garbage */
    char info[128];
    snprintf(key, 16, "%lld", (long long)pass_key);
    snprintf(info, sizeof info, "The pass key is %s. Remember it. %s is the pass key.", key, key);
    size_t total = strlen(PASSKEY_INTRO) + 1 + (size_t)n_prefix + 1 + strlen(info) + 1 + (size_t)n_suffix + 1 + strlen(PASSKEY_QUESTION);
    char *p = malloc(total + 1), *w = p;
    if (!p) return -1;
    w += sprintf(w, "%s\n", PASSKEY_INTRO);
    for (int64_t i = 0; i < n_prefix; i++) { size_t k = (size_t)i % (fl + 1); *w++ = k < fl ? PASSKEY_FILLER[k] : ' '; }
    *w++ = '\n';
    *info_off = (size_t)(w - p);
    w += sprintf(w, "%s\n", info);
    for (int64_t i = 0; i < n_suffix; i++) { size_t k = (size_t)i % (fl + 1); *w++ = k < fl ? PASSKEY_FILLER[k] : ' '; }
    *w++ = '\n';
    w += sprintf(w, "%s", PASSKEY_QUESTION);
    *prompt = p;
    *len = (size_t)(w - p);
    return 0;
}
