// LoRA terms read straight from an adapter's serving copy (adapters that only serve), its A and
// Bᵀ in half precision or in 8-bit integers with one fp32 scale per row: per input row, the
// shrink xa = s·A·x (A: rank × in) and the expand y += B·xa with B stored transposed
// (rank × out), so the expand runs down contiguous output features. Each row is computed by the
// same operations whatever m is: a row gets the same terms alone or in a batch.
//
// A server's decode step adds one row's terms for each of many tenants, one adapter after
// another: a walk over small separate arrays, each read from memory once, so the bytes per
// weight set its pace (8-bit weights: half the bytes of half precision). Loading them and
// computing on them do not overlap on their own (the arithmetic waits on each array's first
// lines), so the kernel can be given the next adapter's arrays and asks for one of their lines
// every few steps of its own loops: they arrive while it computes (ops/bench/lora_terms.sh).
#include "attune_kernels.h"
#include "blocks.h"

#include <immintrin.h>
#include <stdint.h>

/// Weight i of a row of A or Bᵀ as fp32, before the row's scale (8-bit) or as it is (f16).
static inline float weight_at(const void *w, long i, int q8) {
    return q8 ? (float)((const int8_t *)w)[i] : half_to_float(((const uint16_t *)w)[i]);
}

/// The factors of one projection's rows: the shrink's output j is scale·as[j]·(A_j·x) and the
/// expand multiplies Bᵀ row r by xa[r]·bs[r] (8-bit); half-precision rows have no scales.
static inline float shrink_factor(int q8, const float *as, long j, float scale) { return q8 ? scale * as[j] : scale; }
static inline float expand_factor(int q8, const float *bs, long r, float xa) { return q8 ? xa * bs[r] : xa; }

static void lora_scalar(int q8, const void *a, const float *as, const void *bt, const float *bs, long rank, long in,
                        long out, long m, float scale, const float *x, float *y) {
    float xa[rank];
    for (long i = 0; i < m; i++) {
        const float *xi = x + i * in;
        float *yi = y + i * out;
        for (long j = 0; j < rank; j++) {
            float acc = 0;
            for (long k = 0; k < in; k++) acc += weight_at(a, j * in + k, q8) * xi[k];
            xa[j] = expand_factor(q8, bs, j, shrink_factor(q8, as, j, scale) * acc);
        }
        for (long o = 0; o < out; o++) {
            float acc = 0;
            for (long j = 0; j < rank; j++) acc += weight_at(bt, j * out + o, q8) * xa[j];
            yi[o] += acc;
        }
    }
}

/// Weights i…i+7 of a row of A or Bᵀ widened to fp32.
AVX2 static inline __m256 load8(const void *w, long i, int q8) {
    if (q8) return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)w + i))));
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
}

/// The lines of [next, next + bytes) asked for one per `every` steps of a loop, spread over the
/// first tile's `steps` steps (all of them when the loop has at least one step per line).
typedef struct {
    const char *at, *end;
    long every, countdown;
} line_feed;

static inline line_feed line_feed_make(const void *next, long bytes, long steps) {
    if (!next || bytes <= 0 || steps <= 0) return (line_feed){NULL, NULL, 0, 0};
    // Whole cache lines from the one holding the first byte to the one holding the last.
    const char *first = (const char *)((uintptr_t)next & ~(uintptr_t)63);
    const char *end = (const char *)next + bytes;
    const long lines = (end - first + 63) / 64, every = steps / lines > 1 ? steps / lines : 1;
    return (line_feed){first, first + 64 * lines, every, every};
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

AVX2 static inline float shrink_tail(int q8, const void *a, long row, const float *xi, long from, long in, __m256 acc0,
                                     __m256 acc1) {
    float acc = hsum256(_mm256_add_ps(acc0, acc1));
    for (long k = from; k < in; k++) acc += weight_at(a, row + k, q8) * xi[k];
    return acc;
}

/// Rows per tile: each chunk of A and Bᵀ is loaded and widened once for up to LORA_TILE input
/// rows (a domain adapter's group holds every row of its tenants).
enum { LORA_TILE = 4 };

/// Shrink rows j…j+J−1 of a tile of T input rows: each a dot in 8-float chunks (two chains)
/// summed by one fixed tree. J·T pairs of chains run side by side: a lone row (a tenant's) is
/// not held to one multiply-add per chain latency.
AVX2 static inline __attribute__((always_inline)) void shrink_rows(int q8, const void *a, const float *as, const float *bs,
                                                                   long j, long in, float scale, const float *x,
                                                                   float xa[][LORA_TILE], line_feed *feed, const int T,
                                                                   const int J) {
    const long in16 = in & ~15L;
    __m256 p0[LORA_TILE][LORA_TILE], p1[LORA_TILE][LORA_TILE];
    UNROLLED for (int u = 0; u < J; u++) UNROLLED for (int t = 0; t < T; t++) p0[u][t] = p1[u][t] = _mm256_setzero_ps();
    for (long k = 0; k < in16; k += 16) {
        UNROLLED for (int u = 0; u < J; u++) {
            line_feed_step(feed);
            const __m256 lo = load8(a, (j + u) * in + k, q8), hi = load8(a, (j + u) * in + k + 8, q8);
            UNROLLED for (int t = 0; t < T; t++) {
                p0[u][t] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x + t * in + k), p0[u][t]);
                p1[u][t] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + t * in + k + 8), p1[u][t]);
            }
        }
    }
    UNROLLED for (int u = 0; u < J; u++) UNROLLED for (int t = 0; t < T; t++) {
        const float dot = shrink_tail(q8, a, (j + u) * in, x + t * in, in16, in, p0[u][t], p1[u][t]);
        xa[j + u][t] = expand_factor(q8, bs, j + u, shrink_factor(q8, as, j + u, scale) * dot);
    }
}

/// Outputs o…o+16·O−1 of a tile of T input rows: each group of eight a chain over rank from y's
/// value, O·T pairs of chains side by side.
AVX2 static inline __attribute__((always_inline)) void expand_outputs(int q8, const void *bt, long rank, long out, long o,
                                                                      float xa[][LORA_TILE], float *y, line_feed *feed,
                                                                      const int T, const int O) {
    __m256 y0[LORA_TILE][LORA_TILE], y1[LORA_TILE][LORA_TILE];
    UNROLLED for (int u = 0; u < O; u++) UNROLLED for (int t = 0; t < T; t++) {
        y0[u][t] = _mm256_loadu_ps(y + t * out + o + 16 * u);
        y1[u][t] = _mm256_loadu_ps(y + t * out + o + 16 * u + 8);
    }
    for (long r = 0; r < rank; r++) {
        UNROLLED for (int u = 0; u < O; u++) {
            line_feed_step(feed);
            const __m256 b0 = load8(bt, r * out + o + 16 * u, q8), b1 = load8(bt, r * out + o + 16 * u + 8, q8);
            UNROLLED for (int t = 0; t < T; t++) {
                const __m256 s = _mm256_set1_ps(xa[r][t]);
                y0[u][t] = _mm256_fmadd_ps(b0, s, y0[u][t]);
                y1[u][t] = _mm256_fmadd_ps(b1, s, y1[u][t]);
            }
        }
    }
    UNROLLED for (int u = 0; u < O; u++) UNROLLED for (int t = 0; t < T; t++) {
        _mm256_storeu_ps(y + t * out + o + 16 * u, y0[u][t]);
        _mm256_storeu_ps(y + t * out + o + 16 * u + 8, y1[u][t]);
    }
}

/// T input rows (a tile) with the same operations as the scalar path in eight lanes. The rows
/// of a tile share every widened chunk of A and Bᵀ; each element's chain is the same for every
/// T (and for the rank rows or outputs run beside it), so a row gets the same bits alone or in
/// a batch.
AVX2 static inline __attribute__((always_inline)) void lora_tile(int q8, const void *a, const float *as, const void *bt,
                                                                 const float *bs, long rank, long in, long out,
                                                                 float scale, const float *x, float *y, line_feed *feed,
                                                                 const int T) {
    const int wide = LORA_TILE / T;
    float xa[rank][LORA_TILE];
    long j = 0;
    for (; j + wide <= rank; j += wide) shrink_rows(q8, a, as, bs, j, in, scale, x, xa, feed, T, wide);
    for (; j < rank; j++) shrink_rows(q8, a, as, bs, j, in, scale, x, xa, feed, T, 1);
    const long out8 = out & ~7L, out16 = out & ~15L;
    long o = 0;
    for (; o + 16 * wide <= out16; o += 16 * wide) expand_outputs(q8, bt, rank, out, o, xa, y, feed, T, wide);
    for (; o < out16; o += 16) expand_outputs(q8, bt, rank, out, o, xa, y, feed, T, 1);
    for (o = out16; o < out8; o += 8) {
        UNROLLED for (int t = 0; t < T; t++) {
            __m256 acc = _mm256_loadu_ps(y + t * out + o);
            for (long r = 0; r < rank; r++) acc = _mm256_fmadd_ps(load8(bt, r * out + o, q8), _mm256_set1_ps(xa[r][t]), acc);
            _mm256_storeu_ps(y + t * out + o, acc);
        }
    }
    for (o = out8; o < out; o++) {
        UNROLLED for (int t = 0; t < T; t++) {
            float acc = y[t * out + o];
            for (long r = 0; r < rank; r++) acc += weight_at(bt, r * out + o, q8) * xa[r][t];
            y[t * out + o] = acc;
        }
    }
}

/// Every tile of m rows; inlined into one function per precision (q8 a constant in each).
AVX2 static inline __attribute__((always_inline)) void lora_avx2(int q8, const void *a, const float *as, const void *bt, const float *bs, long rank, long in,
                           long out, long m, float scale, const float *x, float *y, const void *next, long next_bytes) {
    line_feed feed = line_feed_make(next, next_bytes, rank * (in / 16 + out / 16));
    for (long i = 0; i < m; i += LORA_TILE) {
        const float *xi = x + i * in;
        float *yi = y + i * out;
        switch (m - i < LORA_TILE ? m - i : LORA_TILE) {
        case 1: lora_tile(q8, a, as, bt, bs, rank, in, out, scale, xi, yi, &feed, 1); break;
        case 2: lora_tile(q8, a, as, bt, bs, rank, in, out, scale, xi, yi, &feed, 2); break;
        case 3: lora_tile(q8, a, as, bt, bs, rank, in, out, scale, xi, yi, &feed, 3); break;
        default: lora_tile(q8, a, as, bt, bs, rank, in, out, scale, xi, yi, &feed, 4); break;
        }
    }
}

AVX2 static void lora_f16_avx2(const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m, float scale,
                               const float *x, float *y, const void *next, long next_bytes) {
    lora_avx2(0, a, NULL, bt, NULL, rank, in, out, m, scale, x, y, next, next_bytes);
}

AVX2 static void lora_q8_avx2(const int8_t *a, const float *as, const int8_t *bt, const float *bs, long rank, long in,
                              long out, long m, float scale, const float *x, float *y, const void *next, long next_bytes) {
    lora_avx2(1, a, as, bt, bs, rank, in, out, m, scale, x, y, next, next_bytes);
}

void attune_lora_f16(attune_isa isa, const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m,
                     float scale, const float *x, float *y, const void *next, long next_bytes) {
    if (isa >= ATTUNE_ISA_AVX2) lora_f16_avx2(a, bt, rank, in, out, m, scale, x, y, next, next_bytes);
    else lora_scalar(0, a, NULL, bt, NULL, rank, in, out, m, scale, x, y);
}

void attune_lora_q8(attune_isa isa, const int8_t *a, const float *as, const int8_t *bt, const float *bs, long rank,
                    long in, long out, long m, float scale, const float *x, float *y, const void *next, long next_bytes) {
    if (isa >= ATTUNE_ISA_AVX2) lora_q8_avx2(a, as, bt, bs, rank, in, out, m, scale, x, y, next, next_bytes);
    else lora_scalar(1, a, as, bt, bs, rank, in, out, m, scale, x, y);
}
