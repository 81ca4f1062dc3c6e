// LoRA terms read straight from half-precision weights (adapters that only serve): per input
// row, the shrink xa = s·A·x (A: rank × in) and the expand y += B·xa with B stored transposed
// (rank × out), so the expand runs down contiguous output features. Each row is computed by the
// same operations whatever m is: a row gets the same terms alone or in a batch.
#include "attune_kernels.h"
#include "blocks.h"

#include <immintrin.h>
#include <string.h>

static void lora_f16_scalar(const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m, float scale,
                            const float *x, float *y) {
    float xa[rank];
    for (long i = 0; i < m; i++) {
        const float *xi = x + i * in;
        float *yi = y + i * out;
        for (long j = 0; j < rank; j++) {
            float acc = 0;
            for (long k = 0; k < in; k++) acc += half_to_float(a[j * in + k]) * xi[k];
            xa[j] = scale * acc;
        }
        for (long o = 0; o < out; o++) {
            float acc = 0;
            for (long j = 0; j < rank; j++) acc += half_to_float(bt[j * out + o]) * xa[j];
            yi[o] += acc;
        }
    }
}

AVX2 static inline __m256 load_half8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/// Shrink row j of A against x in 8-float chunks (two chains) summed by one fixed tree.
#define SHRINK_CHAINS(aj, acc0, acc1)                                                      \
    acc0 = _mm256_fmadd_ps(load_half8((aj) + k), _mm256_loadu_ps(xi + k), acc0);         \
    acc1 = _mm256_fmadd_ps(load_half8((aj) + k + 8), _mm256_loadu_ps(xi + k + 8), acc1)

AVX2 static inline float shrink_tail(const uint16_t *aj, const float *xi, long from, long in, __m256 acc0, __m256 acc1) {
    float acc = hsum256(_mm256_add_ps(acc0, acc1));
    for (long k = from; k < in; k++) acc += half_to_float(aj[k]) * xi[k];
    return acc;
}

/// The same operations as the scalar path in eight lanes: each shrink row is a dot in 8-float
/// chunks (two chains) summed by one fixed tree, each group of eight outputs a chain over rank.
/// Two shrink rows and four groups of outputs run side by side, so that independent chains
/// hide the multiply-add latency; each element's chain is unchanged.
AVX2 static void lora_f16_avx2(const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m, float scale,
                               const float *x, float *y) {
    float xa[rank];
    const long in16 = in & ~15L, out8 = out & ~7L, out32 = out & ~31L;
    for (long i = 0; i < m; i++) {
        const float *xi = x + i * in;
        float *yi = y + i * out;
        long j = 0;
        for (; j + 1 < rank; j += 2) {
            const uint16_t *a0 = a + j * in, *a1 = a0 + in;
            __m256 p0 = _mm256_setzero_ps(), p1 = _mm256_setzero_ps(), q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
            for (long k = 0; k < in16; k += 16) {
                SHRINK_CHAINS(a0, p0, p1);
                SHRINK_CHAINS(a1, q0, q1);
            }
            xa[j] = scale * shrink_tail(a0, xi, in16, in, p0, p1);
            xa[j + 1] = scale * shrink_tail(a1, xi, in16, in, q0, q1);
        }
        for (; j < rank; j++) {
            const uint16_t *aj = a + j * in;
            __m256 p0 = _mm256_setzero_ps(), p1 = _mm256_setzero_ps();
            for (long k = 0; k < in16; k += 16) { SHRINK_CHAINS(aj, p0, p1); }
            xa[j] = scale * shrink_tail(aj, xi, in16, in, p0, p1);
        }
        for (long o = 0; o < out32; o += 32) {
            __m256 y0 = _mm256_loadu_ps(yi + o), y1 = _mm256_loadu_ps(yi + o + 8);
            __m256 y2 = _mm256_loadu_ps(yi + o + 16), y3 = _mm256_loadu_ps(yi + o + 24);
            for (long r = 0; r < rank; r++) {
                const uint16_t *br = bt + r * out + o;
                const __m256 s = _mm256_set1_ps(xa[r]);
                y0 = _mm256_fmadd_ps(load_half8(br), s, y0);
                y1 = _mm256_fmadd_ps(load_half8(br + 8), s, y1);
                y2 = _mm256_fmadd_ps(load_half8(br + 16), s, y2);
                y3 = _mm256_fmadd_ps(load_half8(br + 24), s, y3);
            }
            _mm256_storeu_ps(yi + o, y0);
            _mm256_storeu_ps(yi + o + 8, y1);
            _mm256_storeu_ps(yi + o + 16, y2);
            _mm256_storeu_ps(yi + o + 24, y3);
        }
        for (long o = out32; o < out8; o += 8) {
            __m256 acc = _mm256_loadu_ps(yi + o);
            for (long r = 0; r < rank; r++) acc = _mm256_fmadd_ps(load_half8(bt + r * out + o), _mm256_set1_ps(xa[r]), acc);
            _mm256_storeu_ps(yi + o, acc);
        }
        for (long o = out8; o < out; o++) {
            float acc = yi[o];
            for (long r = 0; r < rank; r++) acc += half_to_float(bt[r * out + o]) * xa[r];
            yi[o] = acc;
        }
    }
}

void attune_lora_f16(attune_isa isa, const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m,
                     float scale, const float *x, float *y) {
    if (isa >= ATTUNE_ISA_AVX2) lora_f16_avx2(a, bt, rank, in, out, m, scale, x, y);
    else lora_f16_scalar(a, bt, rank, in, out, m, scale, x, y);
}
