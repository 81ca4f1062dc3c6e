// LoRA terms read straight from half-precision weights (adapters that only serve): per input
// row, the shrink xa = s·A·x (A: rank × in) and the expand y += B·xa with B stored transposed
// (rank × out), so the expand runs down contiguous output features. Each row is computed by the
// same operations whatever m is: a row gets the same terms alone or in a batch.
//
// A server's decode step adds one row's terms for each of many tenants, one adapter after
// another: a walk over small separate arrays, each read from memory once. Loading them and
// computing on them do not overlap on their own (the arithmetic waits on each array's first
// lines), so the kernel can be given the next adapter's arrays and asks for one of their lines
// every few steps of its own loops: they arrive while it computes (ops/bench/lora_terms.sh).
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

/// The lines of [next, next + bytes) asked for one per `every` steps of a loop, spread over the
/// first tile's `steps` steps (all of them when the loop has at least one step per line).
typedef struct {
    const char *at, *end;
    long every, countdown;
} line_feed;

static inline line_feed line_feed_make(const void *next, long bytes, long steps) {
    if (!next || bytes <= 0 || steps <= 0) return (line_feed){NULL, NULL, 0, 0};
    const long lines = (bytes + 63) / 64, every = steps / lines > 1 ? steps / lines : 1;
    return (line_feed){next, (const char *)next + 64 * lines, every, every};
}

static inline void line_feed_step(line_feed *f) {
    if (f->every && --f->countdown == 0) {
        f->countdown = f->every;
        if (f->at < f->end) {
            __builtin_prefetch(f->at, 0, 2);
            f->at += 64;
        }
    }
}

AVX2 static inline float shrink_tail(const uint16_t *aj, const float *xi, long from, long in, __m256 acc0, __m256 acc1) {
    float acc = hsum256(_mm256_add_ps(acc0, acc1));
    for (long k = from; k < in; k++) acc += half_to_float(aj[k]) * xi[k];
    return acc;
}

/// Rows per tile: each half-precision chunk of A and Bᵀ is loaded and widened once for up to
/// LORA_TILE input rows (a domain adapter's group holds every row of its tenants).
enum { LORA_TILE = 4 };

/// T input rows (a tile) with the same operations as the scalar path in eight lanes: each
/// shrink row is a dot in 8-float chunks (two chains) summed by one fixed tree, each group of
/// eight outputs a chain over rank. The rows of a tile share every widened chunk of A and Bᵀ
/// and run side by side; each element's chain is the same for every T, so a row gets the same
/// bits alone or in a batch.
AVX2 static inline __attribute__((always_inline)) void lora_f16_tile(const uint16_t *a, const uint16_t *bt, long rank,
                                                                     long in, long out, float scale, const float *x,
                                                                     float *y, line_feed *feed, const int T) {
    float xa[LORA_TILE][rank];
    const long in16 = in & ~15L, out8 = out & ~7L, out16 = out & ~15L;
    for (long j = 0; j < rank; j++) {
        const uint16_t *aj = a + j * in;
        __m256 p0[LORA_TILE], p1[LORA_TILE];
        UNROLLED for (int t = 0; t < T; t++) p0[t] = p1[t] = _mm256_setzero_ps();
        for (long k = 0; k < in16; k += 16) {
            line_feed_step(feed);
            const __m256 lo = load_half8(aj + k), hi = load_half8(aj + k + 8);
            UNROLLED for (int t = 0; t < T; t++) {
                p0[t] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x + t * in + k), p0[t]);
                p1[t] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + t * in + k + 8), p1[t]);
            }
        }
        UNROLLED for (int t = 0; t < T; t++) xa[t][j] = scale * shrink_tail(aj, x + t * in, in16, in, p0[t], p1[t]);
    }
    for (long o = 0; o < out16; o += 16) {
        __m256 y0[LORA_TILE], y1[LORA_TILE];
        UNROLLED for (int t = 0; t < T; t++) {
            y0[t] = _mm256_loadu_ps(y + t * out + o);
            y1[t] = _mm256_loadu_ps(y + t * out + o + 8);
        }
        for (long r = 0; r < rank; r++) {
            line_feed_step(feed);
            const __m256 b0 = load_half8(bt + r * out + o), b1 = load_half8(bt + r * out + o + 8);
            UNROLLED for (int t = 0; t < T; t++) {
                const __m256 s = _mm256_set1_ps(xa[t][r]);
                y0[t] = _mm256_fmadd_ps(b0, s, y0[t]);
                y1[t] = _mm256_fmadd_ps(b1, s, y1[t]);
            }
        }
        UNROLLED for (int t = 0; t < T; t++) {
            _mm256_storeu_ps(y + t * out + o, y0[t]);
            _mm256_storeu_ps(y + t * out + o + 8, y1[t]);
        }
    }
    for (long o = out16; o < out8; o += 8) {
        UNROLLED for (int t = 0; t < T; t++) {
            __m256 acc = _mm256_loadu_ps(y + t * out + o);
            for (long r = 0; r < rank; r++) acc = _mm256_fmadd_ps(load_half8(bt + r * out + o), _mm256_set1_ps(xa[t][r]), acc);
            _mm256_storeu_ps(y + t * out + o, acc);
        }
    }
    for (long o = out8; o < out; o++) {
        UNROLLED for (int t = 0; t < T; t++) {
            float acc = y[t * out + o];
            for (long r = 0; r < rank; r++) acc += half_to_float(bt[r * out + o]) * xa[t][r];
            y[t * out + o] = acc;
        }
    }
}

AVX2 static void lora_f16_avx2(const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m, float scale,
                               const float *x, float *y, const void *next, long next_bytes) {
    line_feed feed = line_feed_make(next, next_bytes, rank * (in / 16 + out / 16));
    for (long i = 0; i < m; i += LORA_TILE) {
        const float *xi = x + i * in;
        float *yi = y + i * out;
        switch (m - i < LORA_TILE ? m - i : LORA_TILE) {
        case 1: lora_f16_tile(a, bt, rank, in, out, scale, xi, yi, &feed, 1); break;
        case 2: lora_f16_tile(a, bt, rank, in, out, scale, xi, yi, &feed, 2); break;
        case 3: lora_f16_tile(a, bt, rank, in, out, scale, xi, yi, &feed, 3); break;
        default: lora_f16_tile(a, bt, rank, in, out, scale, xi, yi, &feed, 4); break;
        }
    }
}

void attune_lora_f16(attune_isa isa, const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m,
                     float scale, const float *x, float *y, const void *next, long next_bytes) {
    if (isa >= ATTUNE_ISA_AVX2) lora_f16_avx2(a, bt, rank, in, out, m, scale, x, y, next, next_bytes);
    else lora_f16_scalar(a, bt, rank, in, out, m, scale, x, y);
}
