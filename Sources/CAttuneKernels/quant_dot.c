// Integer dot products of 4/8-bit weight rows with 8-bit activations (decode's matrix products):
// each activation row is quantized once per matrix, each 32-element block then costs one
// byte-product instruction sequence and one fp32 multiply-add of the two scales.
// Every output element is computed by the same instructions in the same order whatever the
// number of activation rows: a sequence decodes to the same logits alone or in a batch.
#include "attune_kernels.h"
#include "blocks.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

// MARK: - Portable reference

static void quantize_scalar(const float *x, long n, int8_t *q, float *scales, float *sums, int32_t *qsums) {
    for (long b = 0; b < n / QK; b++) {
        const float *xb = x + QK * b;
        float amax = 0, sum = 0;
        for (int i = 0; i < QK; i++) { amax = fmaxf(amax, fabsf(xb[i])); sum += xb[i]; }
        const float inv = amax > 0 ? 127.0f / amax : 0.0f;
        int32_t qsum = 0;
        for (int i = 0; i < QK; i++) qsum += q[QK * b + i] = (int8_t)nearbyintf(xb[i] * inv);
        scales[b] = amax / 127.0f;
        sums[b] = sum;
        qsums[b] = qsum;
    }
}

static void matmul_q4_1_scalar(const uint8_t *w, long blocks, long r0, long r1, long m,
                               const int8_t *xq0, const float *xs0, const float *xsum0, float *y, long ldy) {
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * blocks * Q4_1_BYTES;
        for (long i = 0; i < m; i++) {
            const int8_t *xq = xq0 + i * QK * blocks;
            const float *xs = xs0 + i * blocks;
            const float *xsum = xsum0 + i * blocks;
            float acc = 0;
            for (long b = 0; b < blocks; b++) {
                const uint8_t *blk = row + b * Q4_1_BYTES;
                const int8_t *x = xq + QK * b;
                int32_t dot = 0;
                for (int j = 0; j < 16; j++) dot += (blk[4 + j] & 0xF) * x[j] + (blk[4 + j] >> 4) * x[j + 16];
                acc += half_to_float(load_u16(blk)) * xs[b] * (float)dot + half_to_float(load_u16(blk + 2)) * xsum[b];
            }
            y[i * ldy + r] = acc;
        }
    }
}

static void matmul_q8_0_scalar(const uint8_t *w, long blocks, long r0, long r1, long m,
                               const int8_t *xq0, const float *xs0, float *y, long ldy) {
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * blocks * Q8_0_BYTES;
        for (long i = 0; i < m; i++) {
            const int8_t *xq = xq0 + i * QK * blocks;
            const float *xs = xs0 + i * blocks;
            float acc = 0;
            for (long b = 0; b < blocks; b++) {
                const uint8_t *blk = row + b * Q8_0_BYTES;
                const int8_t *q = (const int8_t *)(blk + 2), *x = xq + QK * b;
                int32_t dot = 0;
                for (int j = 0; j < QK; j++) dot += q[j] * x[j];
                acc += half_to_float(load_u16(blk)) * xs[b] * (float)dot;
            }
            y[i * ldy + r] = acc;
        }
    }
}

// MARK: - AVX2

#define VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

AVX2 static void quantize_avx2(const float *x, long n, int8_t *q, float *scales, float *sums, int32_t *qsums) {
    const __m256 signMask = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (long b = 0; b < n / QK; b++) {
        const float *xb = x + QK * b;
        __m256 v[4], amax = _mm256_setzero_ps(), sum = _mm256_setzero_ps();
        for (int g = 0; g < 4; g++) {
            v[g] = _mm256_loadu_ps(xb + 8 * g);
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(signMask, v[g]));
            sum = _mm256_add_ps(sum, v[g]);
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float a = _mm_cvtss_f32(m);
        const __m256 inv = _mm256_set1_ps(a > 0 ? 127.0f / a : 0.0f);
        __m256i i[4];
        for (int g = 0; g < 4; g++)
            i[g] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[g], inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        // packs works within 128-bit lanes; the permutation restores element order.
        const __m256i p16a = _mm256_packs_epi32(i[0], i[1]), p16b = _mm256_packs_epi32(i[2], i[3]);
        const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b), order);
        _mm256_storeu_si256((__m256i *)(q + QK * b), p8);
        scales[b] = a / 127.0f;
        sums[b] = hsum256(sum);
        // Every element is within ±127 before packing (no saturation): these are the bytes' sum.
        const __m256i s32 = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(1, 0, 3, 2)));
        qsums[b] = _mm_cvtsi128_si32(_mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 3, 0, 1))));
    }
}

/// The 32 nibbles of a Q4_1/Q4_0 block as bytes in element order (low nibbles are elements
/// 0–15, high nibbles 16–31): the 16 bytes loaded into both halves, the upper half shifted by a
/// nibble, then masked.
AVX2 static inline __m256i unpack_nibbles(const uint8_t *p) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
}

/// Activation rows per tile: a weight block is prepared once for up to TILE rows (ROW_TILE).
enum { TILE = 4 };

/// Each row first asks for the row PREFETCH_ROWS ahead: a decode step's products are short
/// streams (a core's share of a 576-column matrix is ≈ 100 KB) that the hardware prefetcher
/// alone follows late (measured: one-token decode 84–103 → 103–113 tok/s on a 2-core Sapphire
/// Rapids). A prefetch past the matrix's end is a hint that cannot fault.
enum { PREFETCH_ROWS = 8 };

AVX2 static inline __m256i q4_1_prep(const uint8_t *blk) { return unpack_nibbles(blk + 4); }
AVX2 static inline __m256i q8_0_prep(const uint8_t *blk) { return _mm256_loadu_si256((const __m256i *)(blk + 2)); }

AVX2 static inline __m256 q4_1_dot_avx2(__m256i w, const int8_t *x) {
    const __m256i p = _mm256_maddubs_epi16(w, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

AVX2 static inline __m256 q8_0_dot_avx2(__m256i q, const int8_t *x) {
    // maddubs multiplies unsigned by signed bytes: |q| · (x with q's sign).
    const __m256i v = _mm256_loadu_si256((const __m256i *)x);
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(v, q));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

VNNI static inline __m256 q4_1_dot_vnni(__m256i w, const int8_t *x) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), w, _mm256_loadu_si256((const __m256i *)x)));
}

VNNI static inline __m256 q8_0_dot_vnni(__m256i q, const int8_t *x) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)x);
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(q), _mm256_sign_epi8(v, q)));
}

/// One weight row × T activation rows (a tile), the accumulators in registers. PREP(blk) turns
/// a weight block into what every row of the tile multiplies and DOT(prepared, x) is its unscaled
/// product with one activation row-block (32 XTYPE elements). A block's [d, m] scales are
/// converted at once and multiplied by SCALES(xs, xsum, x), the activation row-block's [scale,
/// exact sum], in one vector product, whose first lane scales DOT and whose second, for Q4_1
/// (OFFSET), adds m·Σx to a running sum. Even and odd blocks go to separate accumulators (two
/// chains of multiply-adds instead of one). The per-row instructions are the same for every T, so
/// each output is the same for any m.
#define ROW_TILE(NAME, ATTR, BYTES, OFFSET, PREP, DOT, XTYPE, SCALES, T)                                \
    ATTR static inline void NAME##_##T(const uint8_t *row, long blocks, const XTYPE *xa, const float *xs,  \
                                       const float *xsum, float *y, long ldy) {                          \
        __m256 acc[T][2];                                                                                \
        __m128 off[T][2];                                                                                \
        UNROLLED for (int k = 0; k < T; k++) {                                                           \
            acc[k][0] = acc[k][1] = _mm256_setzero_ps();                                                 \
            off[k][0] = off[k][1] = _mm_setzero_ps();                                                    \
        }                                                                                                \
        for (long b0 = 0; b0 < blocks; b0 += 2) {                                                        \
            UNROLLED for (int h = 0; h < 2; h++) {                                                       \
                const long b = b0 + h;                                                                   \
                if (h == 1 && b == blocks) break;                                                        \
                const uint8_t *blk = row + b * (BYTES);                                                  \
                const __typeof__(PREP(blk)) w = PREP(blk);                                               \
                const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((OFFSET) ? (int)load_u32(blk) : load_u16(blk))); \
                UNROLLED for (int k = 0; k < T; k++) {                                                   \
                    const long x = k * blocks + b;                                                       \
                    const __m128 p = _mm_mul_ps(dm, SCALES(xs, xsum, x, OFFSET));                        \
                    if (OFFSET) off[k][h] = _mm_add_ps(off[k][h], p);                                    \
                    acc[k][h] = _mm256_fmadd_ps(DOT(w, xa + QK * x), _mm256_broadcastss_ps(p), acc[k][h]); \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
        UNROLLED for (int k = 0; k < T; k++) {                                                           \
            const __m128 o = _mm_add_ps(off[k][0], off[k][1]);                                           \
            y[k * ldy] = hsum256(_mm256_add_ps(acc[k][0], acc[k][1])) + _mm_cvtss_f32(_mm_movehdup_ps(o)); \
        }                                                                                                \
    }

/// Rows [r0, r1) × m activation rows in tiles of up to TILE rows, each weight block prepared
/// once per tile (NAME##_1 … NAME##_4 from ROW_TILES); activation row i starts at
/// X0 + 32·blocks·i, its scales and sums at XS0/XSUM0 + blocks·i.
#define TILED_ROWS(NAME, BYTES, X0, XS0, XSUM0)                                                          \
    for (long r = r0; r < r1; r++) {                                                                   \
        const uint8_t *row = w + r * blocks * (BYTES);                                                \
        for (long p = 0; p < blocks * (BYTES); p += 64)                                               \
            _mm_prefetch((const char *)row + PREFETCH_ROWS * blocks * (BYTES) + p, _MM_HINT_T0);      \
        for (long i = 0; i < m; i += TILE) {                                                           \
            const long x = i * blocks;                                                                 \
            float *out = y + i * ldy + r;                                                              \
            switch (m - i < TILE ? m - i : TILE) {                                                     \
            case 1: NAME##_1(row, blocks, (X0) + QK * x, (XS0) + x, (XSUM0) + x, out, ldy); break;     \
            case 2: NAME##_2(row, blocks, (X0) + QK * x, (XS0) + x, (XSUM0) + x, out, ldy); break;     \
            case 3: NAME##_3(row, blocks, (X0) + QK * x, (XS0) + x, (XSUM0) + x, out, ldy); break;     \
            default: NAME##_4(row, blocks, (X0) + QK * x, (XS0) + x, (XSUM0) + x, out, ldy); break;    \
            }                                                                                          \
        }                                                                                              \
    }

#define ROW_TILES(NAME, ATTR, BYTES, OFFSET, PREP, DOT, XTYPE, SCALES)                                   \
    ROW_TILE(NAME, ATTR, BYTES, OFFSET, PREP, DOT, XTYPE, SCALES, 1)                                     \
    ROW_TILE(NAME, ATTR, BYTES, OFFSET, PREP, DOT, XTYPE, SCALES, 2)                                     \
    ROW_TILE(NAME, ATTR, BYTES, OFFSET, PREP, DOT, XTYPE, SCALES, 3)                                     \
    ROW_TILE(NAME, ATTR, BYTES, OFFSET, PREP, DOT, XTYPE, SCALES, 4)

/// 8-bit activations: each row-block has its own scale (and, for Q4_1, its exact sum).
#define INT8_SCALES(xs, xsum, x, OFFSET)                                                                 \
    ((OFFSET) ? _mm_unpacklo_ps(_mm_load_ss((xs) + (x)), _mm_load_ss((xsum) + (x))) : _mm_load_ss((xs) + (x)))

ROW_TILES(q4_1_tile_avx2, AVX2, Q4_1_BYTES, 1, q4_1_prep, q4_1_dot_avx2, int8_t, INT8_SCALES)
ROW_TILES(q8_0_tile_avx2, AVX2, Q8_0_BYTES, 0, q8_0_prep, q8_0_dot_avx2, int8_t, INT8_SCALES)
ROW_TILES(q4_1_tile_vnni, VNNI, Q4_1_BYTES, 1, q4_1_prep, q4_1_dot_vnni, int8_t, INT8_SCALES)
ROW_TILES(q8_0_tile_vnni, VNNI, Q8_0_BYTES, 0, q8_0_prep, q8_0_dot_vnni, int8_t, INT8_SCALES)

AVX2 static void matmul_q4_1_avx2(const uint8_t *w, long blocks, long r0, long r1, long m,
                                  const int8_t *xq0, const float *xs0, const float *xsum0, float *y, long ldy) {
    TILED_ROWS(q4_1_tile_avx2, Q4_1_BYTES, xq0, xs0, xsum0)
}

AVX2 static void matmul_q8_0_avx2(const uint8_t *w, long blocks, long r0, long r1, long m,
                                  const int8_t *xq0, const float *xs0, float *y, long ldy) {
    TILED_ROWS(q8_0_tile_avx2, Q8_0_BYTES, xq0, xs0, xs0) // Q8_0 has no offset term: its sums are never read
}

// MARK: - AVX-512 VNNI (256-bit vectors: vpdpbusd replaces the two-instruction AVX2 sequence)

VNNI static void matmul_q4_1_vnni(const uint8_t *w, long blocks, long r0, long r1, long m,
                                  const int8_t *xq0, const float *xs0, const float *xsum0, float *y, long ldy) {
    TILED_ROWS(q4_1_tile_vnni, Q4_1_BYTES, xq0, xs0, xsum0)
}

VNNI static void matmul_q8_0_vnni(const uint8_t *w, long blocks, long r0, long r1, long m,
                                  const int8_t *xq0, const float *xs0, float *y, long ldy) {
    TILED_ROWS(q8_0_tile_vnni, Q8_0_BYTES, xq0, xs0, xs0) // Q8_0 has no offset term: its sums are never read
}

// MARK: - fp32 activations (dense mode: the 4/8-bit blocks widened to fp32 in registers)

static void matmul_q4_1_f32_scalar(const uint8_t *w, long blocks, long r0, long r1, long m,
                                   const float *x0, const float *xsum0, float *y, long ldy) {
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * blocks * Q4_1_BYTES;
        for (long i = 0; i < m; i++) {
            const float *x = x0 + i * QK * blocks, *xsum = xsum0 + i * blocks;
            float acc = 0;
            for (long b = 0; b < blocks; b++) {
                const uint8_t *blk = row + b * Q4_1_BYTES;
                const float *xb = x + QK * b;
                float dot = 0;
                for (int j = 0; j < 16; j++) dot += (float)(blk[4 + j] & 0xF) * xb[j] + (float)(blk[4 + j] >> 4) * xb[j + 16];
                acc += half_to_float(load_u16(blk)) * dot + half_to_float(load_u16(blk + 2)) * xsum[b];
            }
            y[i * ldy + r] = acc;
        }
    }
}

static void matmul_q8_0_f32_scalar(const uint8_t *w, long blocks, long r0, long r1, long m,
                                   const float *x0, float *y, long ldy) {
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = w + r * blocks * Q8_0_BYTES;
        for (long i = 0; i < m; i++) {
            const float *x = x0 + i * QK * blocks;
            float acc = 0;
            for (long b = 0; b < blocks; b++) {
                const uint8_t *blk = row + b * Q8_0_BYTES;
                const int8_t *q = (const int8_t *)(blk + 2);
                float dot = 0;
                for (int j = 0; j < QK; j++) dot += (float)q[j] * x[QK * b + j];
                acc += half_to_float(load_u16(blk)) * dot;
            }
            y[i * ldy + r] = acc;
        }
    }
}

/// The 32 weights of a block as four vectors of 8 floats in element order.
typedef struct { __m256 v[4]; } widened_block;

#define WIDEN_BLOCK(WIDEN, bytes)                                                                      \
    ({                                                                                                 \
        const __m128i lo = _mm256_castsi256_si128(bytes), hi = _mm256_extracti128_si256(bytes, 1);     \
        (widened_block){{_mm256_cvtepi32_ps(WIDEN(lo)), _mm256_cvtepi32_ps(WIDEN(_mm_srli_si128(lo, 8))), \
                         _mm256_cvtepi32_ps(WIDEN(hi)), _mm256_cvtepi32_ps(WIDEN(_mm_srli_si128(hi, 8)))}}; \
    })

AVX2 static inline widened_block q4_1_widen(const uint8_t *blk) { return WIDEN_BLOCK(_mm256_cvtepu8_epi32, q4_1_prep(blk)); }
AVX2 static inline widened_block q8_0_widen(const uint8_t *blk) { return WIDEN_BLOCK(_mm256_cvtepi8_epi32, q8_0_prep(blk)); }

/// Σ_j w_j · x_j over one block, eight lanes wide.
AVX2 static inline __m256 f32_dot(widened_block w, const float *xb) {
    __m256 s = _mm256_mul_ps(w.v[0], _mm256_loadu_ps(xb));
    s = _mm256_fmadd_ps(w.v[1], _mm256_loadu_ps(xb + 8), s);
    s = _mm256_fmadd_ps(w.v[2], _mm256_loadu_ps(xb + 16), s);
    return _mm256_fmadd_ps(w.v[3], _mm256_loadu_ps(xb + 24), s);
}

/// fp32 activations carry no scale of their own: [1, exact sum].
#define F32_SCALES(xs, xsum, x, OFFSET)                                                                  \
    ((OFFSET) ? _mm_unpacklo_ps(_mm_set_ss(1), _mm_load_ss((xsum) + (x))) : _mm_set_ss(1))

ROW_TILES(q4_1_f32_tile_avx2, AVX2, Q4_1_BYTES, 1, q4_1_widen, f32_dot, float, F32_SCALES)
ROW_TILES(q8_0_f32_tile_avx2, AVX2, Q8_0_BYTES, 0, q8_0_widen, f32_dot, float, F32_SCALES)

AVX2 static void matmul_q4_1_f32_avx2(const uint8_t *w, long blocks, long r0, long r1, long m,
                                      const float *x0, const float *xsum0, float *y, long ldy) {
    TILED_ROWS(q4_1_f32_tile_avx2, Q4_1_BYTES, x0, xsum0, xsum0) // fp32 rows have no scales
}

AVX2 static void matmul_q8_0_f32_avx2(const uint8_t *w, long blocks, long r0, long r1, long m,
                                      const float *x0, float *y, long ldy) {
    TILED_ROWS(q8_0_f32_tile_avx2, Q8_0_BYTES, x0, x0, x0) // neither scales nor sums: never read
}

AVX2 static void block_sums_avx2(const float *x, long n, float *sums) {
    for (long b = 0; b < n / QK; b++) {
        const float *xb = x + QK * b;
        const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(xb), _mm256_loadu_ps(xb + 8)),
                                       _mm256_add_ps(_mm256_loadu_ps(xb + 16), _mm256_loadu_ps(xb + 24)));
        sums[b] = hsum256(s);
    }
}

static void block_sums_scalar(const float *x, long n, float *sums) {
    for (long b = 0; b < n / QK; b++) {
        float s = 0;
        for (int j = 0; j < QK; j++) s += x[QK * b + j];
        sums[b] = s;
    }
}

// MARK: - Dispatch

void attune_quantize_q8(attune_isa isa, const float *x, long n, int8_t *q, float *scales, float *sums, int32_t *qsums) {
    if (isa >= ATTUNE_ISA_AVX2) quantize_avx2(x, n, q, scales, sums, qsums);
    else quantize_scalar(x, n, q, scales, sums, qsums);
}

void attune_matmul_q4_1_q8(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                           const int8_t *xq, const float *xscales, const float *xsums, float *y, long ldy) {
    switch (isa) {
    case ATTUNE_ISA_AVX512_VNNI: matmul_q4_1_vnni(w, blocks, r0, r1, m, xq, xscales, xsums, y, ldy); break;
    case ATTUNE_ISA_AVX2: matmul_q4_1_avx2(w, blocks, r0, r1, m, xq, xscales, xsums, y, ldy); break;
    default: matmul_q4_1_scalar(w, blocks, r0, r1, m, xq, xscales, xsums, y, ldy); break;
    }
}

void attune_matmul_q8_0_q8(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                           const int8_t *xq, const float *xscales, float *y, long ldy) {
    switch (isa) {
    case ATTUNE_ISA_AVX512_VNNI: matmul_q8_0_vnni(w, blocks, r0, r1, m, xq, xscales, y, ldy); break;
    case ATTUNE_ISA_AVX2: matmul_q8_0_avx2(w, blocks, r0, r1, m, xq, xscales, y, ldy); break;
    default: matmul_q8_0_scalar(w, blocks, r0, r1, m, xq, xscales, y, ldy); break;
    }
}

void attune_block_sums(attune_isa isa, const float *x, long n, float *sums) {
    if (isa >= ATTUNE_ISA_AVX2) block_sums_avx2(x, n, sums);
    else block_sums_scalar(x, n, sums);
}

void attune_matmul_q4_1_f32(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                            const float *x, const float *xsums, float *y, long ldy) {
    if (isa >= ATTUNE_ISA_AVX2) matmul_q4_1_f32_avx2(w, blocks, r0, r1, m, x, xsums, y, ldy);
    else matmul_q4_1_f32_scalar(w, blocks, r0, r1, m, x, xsums, y, ldy);
}

void attune_matmul_q8_0_f32(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                            const float *x, float *y, long ldy) {
    if (isa >= ATTUNE_ISA_AVX2) matmul_q8_0_f32_avx2(w, blocks, r0, r1, m, x, y, ldy);
    else matmul_q8_0_f32_scalar(w, blocks, r0, r1, m, x, y, ldy);
}
