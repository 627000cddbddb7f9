/*
 * passkey.h — LongLoRA's passkey-retrieval test (passkey_retrivial.py, after landmark
 * attention's), reproduced byte for byte: the prompt is
 *     intro \n garbage_prefix \n "The pass key is K. Remember it. K is the pass key." \n
 *     garbage_suffix \n "What is the pass key? The pass key is"
 * where garbage_prefix/suffix are the first n_prefix / n_garbage - n_prefix characters of the
 * filler sentence joined by spaces 5000 times, and n_prefix = randint(0, n_garbage), K =
 * randint(1, 50000), drawn by numpy's legacy RandomState seeded with the test's seed (MT19937,
 * masked rejection sampling), as the Python does.  Lengths: n_garbage = int(3.75 * (i+1) *
 * interval // 1024 * 1024) characters for i = 0 .. max_tokens/interval - 1; seeds 0 .. N-1.
 */
#ifndef LCB_PASSKEY_H
#define LCB_PASSKEY_H

#include <stddef.h>
#include <stdint.h>

#define PASSKEY_INTRO "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there."
#define PASSKEY_FILLER "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
#define PASSKEY_QUESTION "What is the pass key? The pass key is"

/* numpy.random.RandomState (legacy): seed(s), then randint(low, high) (high exclusive). */
typedef struct { uint32_t mt[624]; int mti; } NpRandom;
void np_random_seed(NpRandom *r, uint32_t seed);
uint32_t np_random_uint32(NpRandom *r);
int64_t np_random_randint(NpRandom *r, int64_t low, int64_t high);

/* n_garbage of sweep point i (LongLoRA's formula, float arithmetic as in Python). */
int64_t passkey_n_garbage(int64_t i, int64_t interval);

/* The prompt (malloc'ed, NUL-terminated) and the key as text; *info_off = byte offset of the
 * key line.  n_garbage >= 1 (numpy refuses randint(0, 0)). */
int passkey_prompt(int64_t n_garbage, uint32_t seed, char **prompt, size_t *len, char key[16], size_t *info_off);

#endif
