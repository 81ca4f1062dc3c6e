// One query head's attention over its cached positions in a decode step: the scores q·k_j and
// the probability-weighted sum of the v_j. Eight positions' dot products are reduced into one
// vector by a tree of horizontal adds, and the weighted sum keeps the output in registers, so
// neither pays a horizontal sum or a call per position.
#include "attune_kernels.h"
#include "blocks.h"

#include <immintrin.h>

static void scores_scalar(const float *q, long hd, const float *keys, long ld, long n, float scale, float *s) {
    for (long j = 0; j < n; j++) {
        float acc = 0;
        for (long d = 0; d < hd; d++) acc += q[d] * keys[j * ld + d];
        s[j] = acc * scale;
    }
}

static void mix_scalar(const float *p, long hd, const float *values, long ld, long n, float *out) {
    for (long d = 0; d < hd; d++) out[d] = 0;
    for (long j = 0; j < n; j++)
        for (long d = 0; d < hd; d++) out[d] += p[j] * values[j * ld + d];
}

/// The eight lane sums of a[0…7] as one vector, in order.
AVX2 static inline __m256 hsum8x8(const __m256 a[8]) {
    const __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
    return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

AVX2 static void scores_avx2(const float *q, long hd, const float *keys, long ld, long n, float scale, float *s) {
    const __m256 sc = _mm256_set1_ps(scale);
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 acc[8];
        UNROLLED for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();
        for (long d = 0; d < hd; d += 8) {
            const __m256 qv = _mm256_loadu_ps(q + d);
            UNROLLED for (int t = 0; t < 8; t++) acc[t] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(keys + (j + t) * ld + d), acc[t]);
        }
        _mm256_storeu_ps(s + j, _mm256_mul_ps(hsum8x8(acc), sc));
    }
    for (; j < n; j++) {
        __m256 acc = _mm256_setzero_ps();
        for (long d = 0; d < hd; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(keys + j * ld + d), acc);
        s[j] = hsum256(acc) * scale;
    }
}

/// Up to 64 output values at a time in eight accumulators.
AVX2 static void mix_avx2(const float *p, long hd, const float *values, long ld, long n, float *out) {
    for (long d0 = 0; d0 < hd; d0 += 64) {
        const long chunks = (hd - d0) / 8 < 8 ? (hd - d0) / 8 : 8;
        __m256 acc[8];
        UNROLLED for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();
        for (long j = 0; j < n; j++) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            const float *v = values + j * ld + d0;
            UNROLLED for (int c = 0; c < 8; c++)
                if (c < chunks) acc[c] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + 8 * c), acc[c]);
        }
        UNROLLED for (int c = 0; c < 8; c++)
            if (c < chunks) _mm256_storeu_ps(out + d0 + 8 * c, acc[c]);
    }
}

void attune_attention_scores(attune_isa isa, const float *q, long hd, const float *keys, long ld, long n, float scale,
                             float *scores) {
    if (isa >= ATTUNE_ISA_AVX2 && hd % 8 == 0) scores_avx2(q, hd, keys, ld, n, scale, scores);
    else scores_scalar(q, hd, keys, ld, n, scale, scores);
}

void attune_attention_mix(attune_isa isa, const float *p, long hd, const float *values, long ld, long n, float *out) {
    if (isa >= ATTUNE_ISA_AVX2 && hd % 8 == 0) mix_avx2(p, hd, values, ld, n, out);
    else mix_scalar(p, hd, values, ld, n, out);
}
