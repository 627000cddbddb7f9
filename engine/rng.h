/*
 * rng.h — the weights of random:SHAPE:SEED models, one generator for the CPU and the GPU.
 *
 * Why this file exists: the CPU (engine/model.c) and the CUDA backend (engine/cuda/kernels.cu)
 * must build the same random: model bit for bit, so that a CPU and a GPU run of random:llama2-7b
 * score the same weights.  The generator used to be Box-Muller with double log/cos/sin, whose
 * last bits differ between glibc and CUDA's libdevice; here it is integer arithmetic and one
 * float multiply, and both sides include these same `static inline` functions (compiled as C on
 * the host, as `__host__ __device__` under nvcc).
 *
 * Counter-based: element `i` of tensor `t` (its row-major index in the checkpoint's (out, in)
 * layout) is a pure function of (seed, t, i), so any block of a tensor (a tensor-parallel shard, a
 * thread's share) is generated on its own, in any order, with the same values.
 *
 *   key  = mix64(mix64(seed) + (t + 1) * GOLDEN)             one key per (seed, tensor)
 *   h_j  = mix64(key + (3 i + j + 1) * GOLDEN), j = 0, 1, 2    splitmix64's stream from the key
 *   S    = the sum of the twelve 16-bit fields of h_0, h_1, h_2    (integers, exact)
 *   x    = 2 S - 12 (2^16 - 1)                                 an even integer, |x| <= 786420
 *   w    = (float)x * (std * 2^-17)                            the only float operations
 *
 * The normal is approximated by the Irwin-Hall sum of k = 12 uniforms: each 16-bit field is
 * uniform on {0 .. M-1}, M = 2^16, with variance (M^2 - 1) / 12, so S - 6 (M - 1) has mean 0 and
 * variance exactly M^2 - 1, and x / (2 sqrt(M^2 - 1)) has variance 1.  1 / (2 sqrt(M^2 - 1)) is
 * 2^-17 (1 + 1.2e-10), which rounds to 2^-17 in float, so w = std * z with z of mean 0 and
 * variance 1 - 2.3e-10.  It is an approximation of N(0, std^2): the tails stop at
 * |z| <= 6 (M - 1) / sqrt(M^2 - 1) ~ 6.0 and the excess kurtosis is -6 / (5 k) = -0.1.
 *
 * Exactness: (float)x is exact (|x| < 2^24); std * 2^-17 is exact (a power of two, std normal);
 * the product is one correctly rounded IEEE multiply with no addition after it, so no fused
 * multiply-add contraction can apply, on any compiler or flag.  The result is the same float on
 * every machine; bf16/fp16 weights on the GPU are this float rounded once more.
 */
#ifndef LCB_RNG_H
#define LCB_RNG_H

#include <stdint.h>

#ifdef __CUDACC__
#define LCB_HD __host__ __device__
#else
#define LCB_HD
#endif

#define LCB_RNG_GOLDEN 0x9e3779b97f4a7c15ull /* splitmix64's increment, 2^64 / golden ratio */

/* Tensor numbers of a random: model: the embedding, the LM head (skipped when tied), then four
 * matrices per layer in this order.  A matrix is numbered whether or not a shape has biases. */
enum { LCB_RNG_EMBED = 0, LCB_RNG_LM_HEAD = 1, LCB_RNG_FIRST_LAYER = 2 };
enum { LCB_RNG_WQKV = 0, LCB_RNG_WO = 1, LCB_RNG_WUP = 2, LCB_RNG_WDOWN = 3, LCB_RNG_PER_LAYER = 4 };

static inline LCB_HD uint64_t lcb_rng_layer_tensor(int layer, int which) {
    return LCB_RNG_FIRST_LAYER + (uint64_t)layer * LCB_RNG_PER_LAYER + (uint64_t)which;
}

/* splitmix64's finaliser (Steele, Lea, Flood 2014): every input bit reaches every output bit */
static inline LCB_HD uint64_t lcb_rng_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* the key of tensor t of the model with this seed */
static inline LCB_HD uint64_t lcb_rng_key(uint64_t seed, uint64_t tensor) {
    return lcb_rng_mix64(lcb_rng_mix64(seed) + (tensor + 1) * LCB_RNG_GOLDEN);
}

/* sum of the four 16-bit fields of h, in [0, 4 (2^16 - 1)] */
static inline LCB_HD uint32_t lcb_rng_sum16(uint64_t h) {
    const uint64_t lo = 0x0000ffff0000ffffull;
    uint64_t a = (h & lo) + ((h >> 16) & lo); /* two 17-bit sums, in the 32-bit halves */
    return (uint32_t)(a & 0xffffffffu) + (uint32_t)(a >> 32);
}

/* x = 2 S - 12 (2^16 - 1) for element `index` under `key`: an even integer in [-786420, 786420],
 * the Irwin-Hall sum of 12 uniforms centred and doubled; x / 2^17 has mean 0 and variance ~1 */
static inline LCB_HD int32_t lcb_rng_irwin_hall(uint64_t key, uint64_t index) {
    const uint64_t c = 3 * index + 1;
    uint32_t s = lcb_rng_sum16(lcb_rng_mix64(key + c * LCB_RNG_GOLDEN)) +
                 lcb_rng_sum16(lcb_rng_mix64(key + (c + 1) * LCB_RNG_GOLDEN)) +
                 lcb_rng_sum16(lcb_rng_mix64(key + (c + 2) * LCB_RNG_GOLDEN));
    return 2 * (int32_t)s - 12 * 65535;
}

/* element `index` of the tensor with `key`, ~ N(0, std^2) (the approximation above) */
static inline LCB_HD float lcb_rng_normal_key(uint64_t key, uint64_t index, float std) {
    const float scale = std * (1.0f / 131072.0f); /* std 2^-17: exact */
    return (float)lcb_rng_irwin_hall(key, index) * scale;
}

/* element `index` of tensor `tensor` of the random model with `seed`, ~ N(0, std^2) */
static inline LCB_HD float lcb_rng_normal(uint64_t seed, uint64_t tensor, uint64_t index, float std) {
    return lcb_rng_normal_key(lcb_rng_key(seed, tensor), index, std);
}

#endif
