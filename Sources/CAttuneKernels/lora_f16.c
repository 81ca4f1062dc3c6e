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

/// The same operations as the scalar path in eight lanes: each shrink row is a dot in 8-float
/// chunks (two chains) summed by one fixed tree, each group of eight outputs a chain over rank.
AVX2 static void lora_f16_avx2(const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m, float scale,
                               const float *x, float *y) {
    float xa[rank];
    const long in8 = in & ~15L, out8 = out & ~7L;
    for (long i = 0; i < m; i++) {
        const float *xi = x + i * in;
        float *yi = y + i * out;
        for (long j = 0; j < rank; j++) {
            const uint16_t *aj = a + j * in;
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
            for (long k = 0; k < in8; k += 16) {
                acc0 = _mm256_fmadd_ps(load_half8(aj + k), _mm256_loadu_ps(xi + k), acc0);
                acc1 = _mm256_fmadd_ps(load_half8(aj + k + 8), _mm256_loadu_ps(xi + k + 8), acc1);
            }
            float acc = hsum256(_mm256_add_ps(acc0, acc1));
            for (long k = in8; k < in; k++) acc += half_to_float(aj[k]) * xi[k];
            xa[j] = scale * acc;
        }
        for (long o = 0; o < out8; o += 8) {
            __m256 acc = _mm256_loadu_ps(yi + o);
            for (long j = 0; j < rank; j++) acc = _mm256_fmadd_ps(load_half8(bt + j * out + o), _mm256_set1_ps(xa[j]), acc);
            _mm256_storeu_ps(yi + o, acc);
        }
        for (long o = out8; o < out; o++) {
            float acc = yi[o];
            for (long j = 0; j < rank; j++) acc += half_to_float(bt[j * out + o]) * xa[j];
            yi[o] = acc;
        }
    }
}

void attune_lora_f16(attune_isa isa, const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m,
                     float scale, const float *x, float *y) {
    if (isa >= ATTUNE_ISA_AVX2) lora_f16_avx2(a, bt, rank, in, out, m, scale, x, y);
    else lora_f16_scalar(a, bt, rank, in, out, m, scale, x, y);
}
