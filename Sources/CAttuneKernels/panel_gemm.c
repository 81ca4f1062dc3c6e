// Batched products of 4/8-bit weight rows with many fp32 activation rows (a decode step of a
// large batch): each group of four weight rows is widened once into a small fp32 panel that
// stays in L1, then multiplied with every activation row in register tiles. The weights stream
// from memory once per call in their stored size, and no fp32 copy of the matrix is read.
// Every output element is the same sequence of operations whatever m is and wherever its row
// falls in a tile: an accumulator per (activation row, weight row) over 16- or 8-float chunks in
// order, then a fixed reduction tree of that accumulator alone.
#include "attune_kernels.h"
#include "blocks.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/// Weight rows per panel.
enum { NR = 4 };

/// One weight row as fp32, the values the dequantizer produces (Q4_1: q·d + m; Q8_0: q·d).
static void widen_row_scalar(int format, const uint8_t *row, long blocks, float *out) {
    for (long b = 0; b < blocks; b++) {
        float *o = out + QK * b;
        if (format == ATTUNE_PANEL_Q4_1) {
            const uint8_t *blk = row + b * Q4_1_BYTES;
            const float d = half_to_float(load_u16(blk)), m = half_to_float(load_u16(blk + 2));
            for (int j = 0; j < 16; j++) {
                o[j] = (float)(blk[4 + j] & 0xF) * d + m;
                o[j + 16] = (float)(blk[4 + j] >> 4) * d + m;
            }
        } else {
            const uint8_t *blk = row + b * Q8_0_BYTES;
            const float d = half_to_float(load_u16(blk));
            for (int j = 0; j < QK; j++) o[j] = (float)(int8_t)blk[2 + j] * d;
        }
    }
}

static void panel_gemm_scalar(int format, const uint8_t *w, long blocks, long r0, long r1, long m,
                              const float *x, float *y, long ldy) {
    const long cols = QK * blocks, rowBytes = blocks * (format == ATTUNE_PANEL_Q4_1 ? Q4_1_BYTES : Q8_0_BYTES);
    float *panel = malloc((size_t)cols * sizeof(float));
    for (long r = r0; r < r1; r++) {
        widen_row_scalar(format, w + r * rowBytes, blocks, panel);
        for (long i = 0; i < m; i++) {
            const float *xi = x + i * cols;
            float acc = 0;
            for (long c = 0; c < cols; c++) acc += panel[c] * xi[c];
            y[i * ldy + r] = acc;
        }
    }
    free(panel);
}

// MARK: - AVX-512

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))

AVX512 static inline float half_avx512(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

AVX512 static void widen_row_avx512(int format, const uint8_t *row, long blocks, float *out) {
    for (long b = 0; b < blocks; b++) {
        if (format == ATTUNE_PANEL_Q4_1) {
            const uint8_t *blk = row + b * Q4_1_BYTES;
            const __m512 d = _mm512_set1_ps(half_avx512(blk)), m = _mm512_set1_ps(half_avx512(blk + 2));
            const __m128i packed = _mm_loadu_si128((const __m128i *)(blk + 4)), mask = _mm_set1_epi8(0x0F);
            const __m128i lo = _mm_and_si128(packed, mask), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
            _mm512_storeu_ps(out + QK * b, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), d), m));
            _mm512_storeu_ps(out + QK * b + 16, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), d), m));
        } else {
            const uint8_t *blk = row + b * Q8_0_BYTES;
            const __m512 d = _mm512_set1_ps(half_avx512(blk));
            const __m128i q0 = _mm_loadu_si128((const __m128i *)(blk + 2)), q1 = _mm_loadu_si128((const __m128i *)(blk + 18));
            _mm512_storeu_ps(out + QK * b, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d));
            _mm512_storeu_ps(out + QK * b + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d));
        }
    }
}

/// The sums of four vectors, in order, by one fixed tree per vector.
AVX512 static inline __m128 sum4_avx512(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
    const __m512 abcd = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
    const __m512 pairs = _mm512_add_ps(abcd, _mm512_permute_ps(abcd, 0x4E));
    const __m512 all = _mm512_add_ps(pairs, _mm512_permute_ps(pairs, 0xB1));
    return _mm512_castps512_ps128(_mm512_maskz_compress_ps(0x1111, all));
}

/// A register tile: MR activation rows × the four panel rows, 4·MR accumulators of VEC (WIDTH
/// floats) over the row, then SUM4's fixed tree per accumulator; ATTR, LOAD, ZERO and FMA give the
/// instruction set. Written into `y` or, with `accumulate`, added to what it holds.
#define PANEL_TILE(NAME, ATTR, VEC, WIDTH, LOAD, ZERO, FMA, SUM4, MR)                                 \
    ATTR static inline void NAME##_##MR(const float *panel, long ldp, long kn, const float *x, long ldx, float *y, \
                                        long ldy, int accumulate) {                                  \
        VEC acc[MR][NR];                                                                             \
        for (int i = 0; i < MR; i++)                                                                 \
            for (int r = 0; r < NR; r++) acc[i][r] = ZERO();                                         \
        for (long c = 0; c < kn; c += WIDTH) {                                                       \
            VEC wv[NR];                                                                              \
            for (int r = 0; r < NR; r++) wv[r] = LOAD(panel + r * ldp + c);                          \
            for (int i = 0; i < MR; i++) {                                                           \
                const VEC xv = LOAD(x + i * ldx + c);                                                \
                for (int r = 0; r < NR; r++) acc[i][r] = FMA(wv[r], xv, acc[i][r]);                  \
            }                                                                                        \
        }                                                                                            \
        for (int i = 0; i < MR; i++) {                                                               \
            const __m128 s = SUM4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);                       \
            _mm_storeu_ps(y + i * ldy, accumulate ? _mm_add_ps(_mm_loadu_ps(y + i * ldy), s) : s);   \
        }                                                                                            \
    }

/// AVX-512: 6 rows × 4 in 16-float chunks (24 of the 32 zmm registers accumulate).
#define PANEL_TILE_AVX512(MR) \
    PANEL_TILE(tile_avx512, AVX512, __m512, 16, _mm512_loadu_ps, _mm512_setzero_ps, _mm512_fmadd_ps, sum4_avx512, MR)
PANEL_TILE_AVX512(1)
PANEL_TILE_AVX512(2)
PANEL_TILE_AVX512(3)
PANEL_TILE_AVX512(4)
PANEL_TILE_AVX512(5)
PANEL_TILE_AVX512(6)

typedef void (*widen_fn)(int format, const uint8_t *row, long blocks, float *out);
typedef void (*tile_fn)(const float *panel, long ldp, long kn, const float *x, long ldx, float *y, long ldy, int accumulate);

/// The loop shared by the SIMD paths: each group of four weight rows is widened whole into the
/// panel (its bytes read once, in order), then multiplied KC columns at a time, so a tile's
/// slices of the panel and of up to `mr` activation rows stay in L1 (`tiles[t - 1]` for t rows;
/// the m rows are split into equal tiles). A group with fewer than four rows (the end of
/// [r0, r1)) is accumulated in `tail`.
static void panel_gemm_blocked(int format, const uint8_t *w, long blocks, long r0, long r1, long m, const float *x,
                               float *y, long ldy, widen_fn widen, const tile_fn *tiles, long mr) {
    enum { KC = 512 };
    const long cols = QK * blocks, rowBytes = blocks * (format == ATTUNE_PANEL_Q4_1 ? Q4_1_BYTES : Q8_0_BYTES);
    const long ntiles = (m + mr - 1) / mr;
    float *panel = malloc((size_t)(NR * cols + m * NR) * sizeof(float)), *tail = panel + NR * cols;
    for (long r = r0; r < r1; r += NR) {
        const long n = r1 - r < NR ? r1 - r : NR;
        for (long k = 0; k < NR; k++) {
            if (k < n) widen(format, w + (r + k) * rowBytes, blocks, panel + k * cols);
            else memset(panel + k * cols, 0, (size_t)cols * sizeof(float));
        }
        float *out = n == NR ? y + r : tail;
        const long ld = n == NR ? ldy : NR;
        for (long kb = 0; kb < cols; kb += KC) {
            const long kn = cols - kb < KC ? cols - kb : KC;
            for (long j = 0; j < ntiles; j++) {
                const long i = m * j / ntiles, t = m * (j + 1) / ntiles - i;
                tiles[t - 1](panel + kb, cols, kn, x + i * cols + kb, cols, out + i * ld, ld, kb > 0);
            }
        }
        if (n < NR)
            for (long i = 0; i < m; i++)
                for (long k = 0; k < n; k++) y[i * ldy + r + k] = tail[i * NR + k];
    }
    free(panel);
}

static const tile_fn tiles_avx512[] = {tile_avx512_1, tile_avx512_2, tile_avx512_3, tile_avx512_4, tile_avx512_5, tile_avx512_6};

// MARK: - AVX2

AVX2 static inline float half_avx2(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

AVX2 static void widen_row_avx2(int format, const uint8_t *row, long blocks, float *out) {
    for (long b = 0; b < blocks; b++) {
        if (format == ATTUNE_PANEL_Q4_1) {
            const uint8_t *blk = row + b * Q4_1_BYTES;
            const __m256 d = _mm256_set1_ps(half_avx2(blk)), m = _mm256_set1_ps(half_avx2(blk + 2));
            const __m128i packed = _mm_loadu_si128((const __m128i *)(blk + 4)), mask = _mm_set1_epi8(0x0F);
            const __m128i lo = _mm_and_si128(packed, mask), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
            const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
            for (int g = 0; g < 4; g++)
                _mm256_storeu_ps(out + QK * b + 8 * g,
                                 _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[g])), d), m));
        } else {
            const uint8_t *blk = row + b * Q8_0_BYTES;
            const __m256 d = _mm256_set1_ps(half_avx2(blk));
            for (int g = 0; g < 4; g++) {
                const __m128i q = _mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * g));
                _mm256_storeu_ps(out + QK * b + 8 * g, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
            }
        }
    }
}

/// The sums of four vectors, in order, by one fixed tree per vector.
AVX2 static inline __m128 sum4_avx2(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/// AVX2: up to 2 rows × 4 in 8-float chunks (16 ymm registers hold accumulators, weights and the
/// input).
#define PANEL_TILE_AVX2(MR) \
    PANEL_TILE(tile_avx2, AVX2, __m256, 8, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_fmadd_ps, sum4_avx2, MR)
PANEL_TILE_AVX2(1)
PANEL_TILE_AVX2(2)

static const tile_fn tiles_avx2[] = {tile_avx2_1, tile_avx2_2};

// MARK: - Dispatch

void attune_panel_gemm(attune_isa isa, attune_panel_format format, const void *w, long blocks, long r0, long r1,
                       long m, const float *x, float *y, long ldy) {
    if (isa == ATTUNE_ISA_AVX512_VNNI) panel_gemm_blocked(format, w, blocks, r0, r1, m, x, y, ldy, widen_row_avx512, tiles_avx512, 6);
    else if (isa == ATTUNE_ISA_AVX2) panel_gemm_blocked(format, w, blocks, r0, r1, m, x, y, ldy, widen_row_avx2, tiles_avx2, 2);
    else panel_gemm_scalar(format, w, blocks, r0, r1, m, x, y, ldy);
}
