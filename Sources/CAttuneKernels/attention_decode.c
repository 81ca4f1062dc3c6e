// One query head's attention over its cached positions in a decode step: the scores q·k_j and
// the probability-weighted sum of the v_j, over fp32 or half-precision caches (widened in
// registers). Eight positions' dot products are reduced into one vector by a tree of horizontal
// adds, and the weighted sum keeps the output in registers, so neither pays a horizontal sum or
// a call per position. Also the conversions that fill and read a half-precision cache.
#include "attune_kernels.h"
#include "blocks.h"

#include <immintrin.h>

/// Element i of a cache row of fp32 (half = 0) or IEEE half (half = 1) values.
static inline float cached(const void *row, long i, int half) {
    return half ? half_to_float(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

static void scores_scalar(const float *q, long hd, const void *keys, int half, long ld, long n, float scale, float *s) {
    for (long j = 0; j < n; j++) {
        float acc = 0;
        for (long d = 0; d < hd; d++) acc += q[d] * cached(keys, j * ld + d, half);
        s[j] = acc * scale;
    }
}

static void mix_scalar(const float *p, long hd, const void *values, int half, long ld, long n, float *out) {
    for (long d = 0; d < hd; d++) out[d] = 0;
    for (long j = 0; j < n; j++)
        for (long d = 0; d < hd; d++) out[d] += p[j] * cached(values, j * ld + d, half);
}

/// Eight cached values from element i on, as fp32.
AVX2 static inline __m256 load8(const void *row, long i, int half) {
    return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)))
                : _mm256_loadu_ps((const float *)row + i);
}

/// The eight lane sums of a[0…7] as one vector, in order.
AVX2 static inline __m256 hsum8x8(const __m256 a[8]) {
    const __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
    return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

AVX2 static inline __attribute__((always_inline)) void scores_avx2(const float *q, long hd, const void *keys, int half,
                                                                    long ld, long n, float scale, float *s) {
    const __m256 sc = _mm256_set1_ps(scale);
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 acc[8];
        UNROLLED for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();
        for (long d = 0; d < hd; d += 8) {
            const __m256 qv = _mm256_loadu_ps(q + d);
            UNROLLED for (int t = 0; t < 8; t++) acc[t] = _mm256_fmadd_ps(qv, load8(keys, (j + t) * ld + d, half), acc[t]);
        }
        _mm256_storeu_ps(s + j, _mm256_mul_ps(hsum8x8(acc), sc));
    }
    for (; j < n; j++) {
        __m256 acc = _mm256_setzero_ps();
        for (long d = 0; d < hd; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8(keys, j * ld + d, half), acc);
        s[j] = hsum256(acc) * scale;
    }
}

/// Up to 64 output values at a time in eight accumulators.
AVX2 static inline __attribute__((always_inline)) void mix_avx2(const float *p, long hd, const void *values, int half,
                                                                 long ld, long n, float *out) {
    for (long d0 = 0; d0 < hd; d0 += 64) {
        const long chunks = (hd - d0) / 8 < 8 ? (hd - d0) / 8 : 8;
        __m256 acc[8];
        UNROLLED for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();
        for (long j = 0; j < n; j++) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            UNROLLED for (int c = 0; c < 8; c++)
                if (c < chunks) acc[c] = _mm256_fmadd_ps(pj, load8(values, j * ld + d0 + 8 * c, half), acc[c]);
        }
        UNROLLED for (int c = 0; c < 8; c++)
            if (c < chunks) _mm256_storeu_ps(out + d0 + 8 * c, acc[c]);
    }
}

// One instance of each SIMD kernel per cache precision, the precision a constant in each.
AVX2 static void scores_f32_avx2(const float *q, long hd, const void *k, long ld, long n, float scale, float *s) {
    scores_avx2(q, hd, k, 0, ld, n, scale, s);
}
AVX2 static void scores_f16_avx2(const float *q, long hd, const void *k, long ld, long n, float scale, float *s) {
    scores_avx2(q, hd, k, 1, ld, n, scale, s);
}
AVX2 static void mix_f32_avx2(const float *p, long hd, const void *v, long ld, long n, float *out) {
    mix_avx2(p, hd, v, 0, ld, n, out);
}
AVX2 static void mix_f16_avx2(const float *p, long hd, const void *v, long ld, long n, float *out) {
    mix_avx2(p, hd, v, 1, ld, n, out);
}

void attune_attention_scores(attune_isa isa, const float *q, long hd, const float *keys, long ld, long n, float scale,
                             float *scores) {
    if (isa >= ATTUNE_ISA_AVX2 && hd % 8 == 0) scores_f32_avx2(q, hd, keys, ld, n, scale, scores);
    else scores_scalar(q, hd, keys, 0, ld, n, scale, scores);
}

void attune_attention_mix(attune_isa isa, const float *p, long hd, const float *values, long ld, long n, float *out) {
    if (isa >= ATTUNE_ISA_AVX2 && hd % 8 == 0) mix_f32_avx2(p, hd, values, ld, n, out);
    else mix_scalar(p, hd, values, 0, ld, n, out);
}

void attune_attention_scores_f16(attune_isa isa, const float *q, long hd, const uint16_t *keys, long ld, long n,
                                 float scale, float *scores) {
    if (isa >= ATTUNE_ISA_AVX2 && hd % 8 == 0) scores_f16_avx2(q, hd, keys, ld, n, scale, scores);
    else scores_scalar(q, hd, keys, 1, ld, n, scale, scores);
}

void attune_attention_mix_f16(attune_isa isa, const float *p, long hd, const uint16_t *values, long ld, long n,
                              float *out) {
    if (isa >= ATTUNE_ISA_AVX2 && hd % 8 == 0) mix_f16_avx2(p, hd, values, ld, n, out);
    else mix_scalar(p, hd, values, 1, ld, n, out);
}

/// float → IEEE half, rounded to nearest, ties to even (as vcvtps2ph with that mode); values past
/// the largest half become infinity, NaN stays NaN.
static inline uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t mag = x & 0x7FFFFFFF, e = mag >> 23;
    if (mag > 0x7F800000) return sign | 0x7E00 | (uint16_t)((mag >> 13) & 0x3FF);
    if (mag >= 0x477FF000) return sign | 0x7C00;
    uint32_t h, rem, tie;
    if (e >= 113) {  // a normal half: rebias the exponent, round off 13 mantissa bits
        h = ((e - 112) << 10) | ((mag >> 13) & 0x3FF);
        rem = mag & 0x1FFF;
        tie = 0x1000;
    } else {  // a subnormal half (or zero): units of 2^-24
        if (e < 102) return sign;
        const uint32_t mant = (mag & 0x7FFFFF) | 0x800000, shift = 126 - e;
        h = mant >> shift;
        rem = mant & ((1u << shift) - 1);
        tie = 1u << (shift - 1);
    }
    if (rem > tie || (rem == tie && (h & 1))) h++;
    return sign | (uint16_t)h;
}

AVX2 static void to_half_avx2(const float *x, uint16_t *h, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) h[i] = float_to_half(x[i]);
}

AVX2 static void from_half_avx2(const uint16_t *h, float *x, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) x[i] = half_to_float(h[i]);
}

void attune_f32_to_f16(attune_isa isa, const float *x, uint16_t *h, long n) {
    if (isa >= ATTUNE_ISA_AVX2) to_half_avx2(x, h, n);
    else for (long i = 0; i < n; i++) h[i] = float_to_half(x[i]);
}

void attune_f16_to_f32(attune_isa isa, const uint16_t *h, float *x, long n) {
    if (isa >= ATTUNE_ISA_AVX2) from_half_avx2(h, x, n);
    else for (long i = 0; i < n; i++) x[i] = half_to_float(h[i]);
}
