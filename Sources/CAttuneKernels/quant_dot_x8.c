// Decode's Q4_1 products in quantized mode on rows interleaved in groups of eight: one vector
// holds four nibble bytes of each of eight rows, so a 32-element block of eight rows is eight
// byte-product instructions against broadcast activation bytes, and the eight rows' scales
// are converted, multiplied and accumulated as one vector each: about four instructions per
// row-block where the row-major kernel (quant_dot.c) spends sixteen on unpacking, scales and
// lane sums. Every path (portable, AVX2, AVX-512 VNNI) computes each output with the same
// operations in the same order (an exact integer block dot, then two fused multiply-adds into
// the block's even/odd accumulator), whatever the number of activation rows.
#include "attune_kernels.h"
#include "blocks.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/// A group-block: the same block of eight rows. [d₀…d₇ as f16][m₀…m₇ as f16], then four
/// chunks c = 0…3 of 32 bytes: row j's bytes 4c…4c+3 of its 16 nibble bytes at 4j (low nibbles
/// are elements 4c…4c+3, high nibbles 16+4c…16+4c+3).
enum { GROUP = 8, GROUP_BYTES = GROUP * Q4_1_BYTES, NIBBLES_AT = 32 };

void attune_interleave_q4_1(const void *src, long blocks, long rows, void *dst) {
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (long g = 0; g < rows / GROUP; g++) {
        for (long b = 0; b < blocks; b++) {
            uint8_t *o = d + (g * blocks + b) * GROUP_BYTES;
            for (int j = 0; j < GROUP; j++) {
                const uint8_t *blk = s + ((g * GROUP + j) * blocks + b) * Q4_1_BYTES;
                memcpy(o + 2 * j, blk, 2);
                memcpy(o + 16 + 2 * j, blk + 2, 2);
                for (int c = 0; c < 4; c++) memcpy(o + NIBBLES_AT + 32 * c + 4 * j, blk + 4 + 4 * c, 4);
            }
        }
    }
}

void attune_interleaved_q4_1_row(const void *w, long blocks, long r, void *row) {
    const uint8_t *grp = (const uint8_t *)w + (r / GROUP) * blocks * GROUP_BYTES;
    const int j = (int)(r % GROUP);
    uint8_t *out = row;
    for (long b = 0; b < blocks; b++) {
        const uint8_t *gb = grp + b * GROUP_BYTES;
        uint8_t *blk = out + b * Q4_1_BYTES;
        memcpy(blk, gb + 2 * j, 2);
        memcpy(blk + 2, gb + 16 + 2 * j, 2);
        for (int c = 0; c < 4; c++) memcpy(blk + 4 + 4 * c, gb + NIBBLES_AT + 32 * c + 4 * j, 4);
    }
}

// MARK: - Portable reference

/// Per row and activation row: two accumulators (even and odd blocks), each block adding
/// dot·(d·xs) and then m·Σx by fused multiply-adds; the output is their sum.
static void matmul_x8_scalar(const uint8_t *w, long blocks, long g0, long g1, long m, const int8_t *xq0,
                             const float *xs0, const float *xsum0, float *y, long ldy) {
    for (long g = g0; g < g1; g++) {
        const uint8_t *grp = w + g * blocks * GROUP_BYTES;
        for (long i = 0; i < m; i++) {
            for (int j = 0; j < GROUP; j++) {
                float acc[2] = {0, 0};
                for (long b = 0; b < blocks; b++) {
                    const uint8_t *gb = grp + b * GROUP_BYTES;
                    const int8_t *x = xq0 + QK * (i * blocks + b);
                    int32_t dot = 0;
                    for (int c = 0; c < 4; c++) {
                        for (int t = 0; t < 4; t++) {
                            const uint8_t q = gb[NIBBLES_AT + 32 * c + 4 * j + t];
                            dot += (q & 0xF) * x[4 * c + t] + (q >> 4) * x[16 + 4 * c + t];
                        }
                    }
                    const float d = half_to_float(load_u16(gb + 2 * j)), mn = half_to_float(load_u16(gb + 16 + 2 * j));
                    const long xb = i * blocks + b;
                    acc[b & 1] = fmaf((float)dot, d * xs0[xb], acc[b & 1]);
                    acc[b & 1] = fmaf(mn, xsum0[xb], acc[b & 1]);
                }
                y[i * ldy + g * GROUP + j] = acc[0] + acc[1];
            }
        }
    }
}

// MARK: - SIMD tiles

#define VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

/// Activation rows per tile: a group-block's nibbles are unpacked once for up to TILE rows.
enum { TILE = 4 };

/// The eight vectors of a group-block's elements as bytes: w[c] the low nibbles of chunk c
/// (elements 4c…4c+3 of each row), w[4 + c] the high ones (elements 16+4c…).
#define UNPACK_GROUP(gb, w)                                                                            \
    UNROLLED for (int c = 0; c < 4; c++) {                                                             \
        const __m256i v = _mm256_loadu_si256((const __m256i *)((gb) + NIBBLES_AT + 32 * c));           \
        w[c] = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));                                            \
        w[4 + c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));                  \
    }

/// Σ over a block of one activation row with eight rows' weights, exact in 32-bit lanes.
VNNI static inline __m256i dot_x8_vnni(const __m256i w[8], const int8_t *x) {
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    UNROLLED for (int c = 0; c < 4; c++) {
        lo = _mm256_dpbusd_epi32(lo, w[c], _mm256_set1_epi32((int)load_u32((const uint8_t *)x + 4 * c)));
        hi = _mm256_dpbusd_epi32(hi, w[4 + c], _mm256_set1_epi32((int)load_u32((const uint8_t *)x + 16 + 4 * c)));
    }
    return _mm256_add_epi32(lo, hi);
}

/// As dot_x8_vnni with AVX2: the eight 16-bit pair sums add without overflow (|x| ≤ 127, so
/// each is at most 2·15·127 and all eight 30,480) before one widening to 32 bits.
AVX2 static inline __m256i dot_x8_avx2(const __m256i w[8], const int8_t *x) {
    __m256i p = _mm256_setzero_si256();
    UNROLLED for (int c = 0; c < 4; c++) {
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w[c], _mm256_set1_epi32((int)load_u32((const uint8_t *)x + 4 * c))));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w[4 + c], _mm256_set1_epi32((int)load_u32((const uint8_t *)x + 16 + 4 * c))));
    }
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/// One group of eight weight rows × T activation rows, the accumulators in registers.
#define GROUP_TILE(NAME, ATTR, DOT, T)                                                                   \
    ATTR static inline void NAME##_##T(const uint8_t *grp, long blocks, const int8_t *xq, const float *xs, \
                                       const float *xsum, float *y, long ldy) {                          \
        __m256 acc[T][2];                                                                                \
        UNROLLED for (int k = 0; k < T; k++) acc[k][0] = acc[k][1] = _mm256_setzero_ps();               \
        for (long b = 0; b < blocks; b++) {                                                              \
            const uint8_t *gb = grp + b * GROUP_BYTES;                                                   \
            __m256i w[8];                                                                                \
            UNPACK_GROUP(gb, w)                                                                          \
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)gb));                     \
            const __m256 mn = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 16)));             \
            const int h = (int)(b & 1);                                                                  \
            UNROLLED for (int k = 0; k < T; k++) {                                                       \
                const long x = k * blocks + b;                                                           \
                const __m256 dot = _mm256_cvtepi32_ps(DOT(w, xq + QK * x));                              \
                acc[k][h] = _mm256_fmadd_ps(dot, _mm256_mul_ps(d, _mm256_set1_ps(xs[x])), acc[k][h]);    \
                acc[k][h] = _mm256_fmadd_ps(mn, _mm256_set1_ps(xsum[x]), acc[k][h]);                     \
            }                                                                                            \
        }                                                                                                \
        UNROLLED for (int k = 0; k < T; k++) _mm256_storeu_ps(y + k * ldy, _mm256_add_ps(acc[k][0], acc[k][1])); \
    }

#define GROUP_TILES(NAME, ATTR, DOT)                                                                     \
    GROUP_TILE(NAME, ATTR, DOT, 1)                                                                       \
    GROUP_TILE(NAME, ATTR, DOT, 2)                                                                       \
    GROUP_TILE(NAME, ATTR, DOT, 3)                                                                       \
    GROUP_TILE(NAME, ATTR, DOT, 4)

GROUP_TILES(x8_tile_avx2, AVX2, dot_x8_avx2)
GROUP_TILES(x8_tile_vnni, VNNI, dot_x8_vnni)

/// Groups [g0, g1) × m activation rows in tiles of up to TILE rows. A core's share is one
/// contiguous stream here, which the hardware prefetcher follows: asking for the group after
/// next as the row-major kernel does (PREFETCH_ROWS in quant_dot.c) made decode slower on Zen 4
/// (`attune bench model --weights quantized --prompt-tokens 64`, alternated: 237–286 with,
/// 267–318 tok/s without).
#define TILED_GROUPS(NAME)                                                                               \
    for (long g = g0; g < g1; g++) {                                                                     \
        const uint8_t *grp = w + g * blocks * GROUP_BYTES;                                               \
        for (long i = 0; i < m; i += TILE) {                                                             \
            const long x = i * blocks;                                                                   \
            float *out = y + i * ldy + g * GROUP;                                                        \
            switch (m - i < TILE ? m - i : TILE) {                                                       \
            case 1: NAME##_1(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, out, ldy); break;            \
            case 2: NAME##_2(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, out, ldy); break;            \
            case 3: NAME##_3(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, out, ldy); break;            \
            default: NAME##_4(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, out, ldy); break;           \
            }                                                                                            \
        }                                                                                                \
    }

AVX2 static void matmul_x8_avx2(const uint8_t *w, long blocks, long g0, long g1, long m, const int8_t *xq0,
                                const float *xs0, const float *xsum0, float *y, long ldy) {
    TILED_GROUPS(x8_tile_avx2)
}

VNNI static void matmul_x8_vnni(const uint8_t *w, long blocks, long g0, long g1, long m, const int8_t *xq0,
                                const float *xs0, const float *xsum0, float *y, long ldy) {
    TILED_GROUPS(x8_tile_vnni)
}

// MARK: - Dispatch

void attune_matmul_q4_1x8_q8(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                             const int8_t *xq, const float *xscales, const float *xsums, float *y, long ldy) {
    const long g0 = r0 / GROUP, g1 = r1 / GROUP;
    switch (isa) {
    case ATTUNE_ISA_AVX512_VNNI: matmul_x8_vnni(w, blocks, g0, g1, m, xq, xscales, xsums, y, ldy); break;
    case ATTUNE_ISA_AVX2: matmul_x8_avx2(w, blocks, g0, g1, m, xq, xscales, xsums, y, ldy); break;
    default: matmul_x8_scalar(w, blocks, g0, g1, m, xq, xscales, xsums, y, ldy); break;
    }
}
