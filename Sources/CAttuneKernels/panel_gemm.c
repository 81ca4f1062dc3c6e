// Batched products of 4/8-bit weight rows with many fp32 activation rows (a decode step of a
// large batch). Groups of weight rows are widened once into an fp32 panel that stays in cache and
// multiplied with every activation row in register tiles, so the weights stream from memory once
// per call in their stored size and no fp32 copy of the matrix is read. Two tile forms:
// - the dot form (attune_panel_gemm_rows, a few activation rows): vectors run along the row, an
//   accumulator per (activation row, weight row), then a fixed reduction tree per accumulator;
// - the broadcast form (attune_panel_gemm, 16 or more rows packed column-major): a vector holds one
//   column of 16 activation rows and meets a broadcast weight, so no accumulator needs a
//   horizontal sum and each weight loaded serves a whole tile of rows.
// In either form an element is computed the same way whatever m is and wherever its row falls.
#include "attune_kernels.h"
#include "blocks.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/// Weight rows per group of the dot form.
enum { DOT_ROWS = 4 };

static long packed_stride(long m) { return (m + ATTUNE_PANEL_LANES - 1) / ATTUNE_PANEL_LANES * ATTUNE_PANEL_LANES; }

/// A buffer of at least `floats` floats owned by the calling thread (slot 0: packed input, 1: the
/// panel), grown as needed and kept: a fresh buffer each call costs page faults.
static float *thread_buffer(int slot, size_t floats) {
    static _Thread_local float *buffers[2];
    static _Thread_local size_t sizes[2];
    if (sizes[slot] < floats) {
        free(buffers[slot]);
        buffers[slot] = malloc(floats * sizeof(float));
        sizes[slot] = buffers[slot] ? floats : 0;
    }
    return buffers[slot];
}

/// The calling thread's panel buffer. A kernel cannot report an error to its caller, so running
/// out of memory for these few kilobytes ends the process with a message instead of a fault.
static float *panel_buffer(size_t floats) {
    float *panel = thread_buffer(1, floats);
    if (!panel) {
        fprintf(stderr, "attune: out of memory for a %zu-float weight panel\n", floats);
        abort();
    }
    return panel;
}

const float *attune_panel_pack(long m, long cols, const float *x) {
    enum { CB = 64 };
    const long ld = packed_stride(m);
    float *xt = thread_buffer(0, (size_t)(cols * ld));
    if (!xt) return NULL;
    for (long cb = 0; cb < cols; cb += CB) {
        const long cn = cols - cb < CB ? cols - cb : CB;
        for (long i = 0; i < ld; i++)
            for (long c = cb; c < cb + cn; c++) xt[c * ld + i] = i < m ? x[i * cols + c] : 0;
    }
    return xt;
}

static long row_bytes(int format, long blocks) { return blocks * (format == ATTUNE_PANEL_Q4_1 ? Q4_1_BYTES : Q8_0_BYTES); }

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

/// A half-precision scale of a block (F16C; every SIMD path has it).
AVX2 static inline float half_f16c(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

/// The reference of both forms: activation (i, c) at x[i·si + c·sc].
static void panel_gemm_scalar(int format, const uint8_t *w, long blocks, long r0, long r1, long m, const float *x,
                              long si, long sc, float *y, long ldy) {
    const long cols = QK * blocks;
    float *panel = panel_buffer((size_t)cols);
    for (long r = r0; r < r1; r++) {
        widen_row_scalar(format, w + r * row_bytes(format, blocks), blocks, panel);
        for (long i = 0; i < m; i++) {
            float acc = 0;
            for (long c = 0; c < cols; c++) acc = fmaf(panel[c], x[i * si + c * sc], acc);
            y[i * ldy + r] = acc;
        }
    }
}

/// A dot-form tile: MR activation rows × the DOT_ROWS panel rows, DOT_ROWS·MR accumulators of VEC
/// (WIDTH floats) over the row, then SUM4's fixed tree per accumulator. Written into `y` or, with
/// `accumulate`, added to what it holds.
#define DOT_TILE(NAME, ATTR, VEC, WIDTH, LOAD, ZERO, FMA, SUM4, MR)                                      \
    ATTR static void NAME##_##MR(const float *panel, long ldp, long kn, const float *x, long ldx, float *y,   \
                                 long ldy, int accumulate) {                                                 \
        VEC acc[MR][DOT_ROWS];                                                                           \
        UNROLLED for (int i = 0; i < MR; i++)                                                            \
            UNROLLED for (int r = 0; r < DOT_ROWS; r++) acc[i][r] = ZERO();                              \
        for (long c = 0; c < kn; c += WIDTH) {                                                           \
            VEC wv[DOT_ROWS];                                                                            \
            UNROLLED for (int r = 0; r < DOT_ROWS; r++) wv[r] = LOAD(panel + r * ldp + c);               \
            UNROLLED for (int i = 0; i < MR; i++) {                                                      \
                const VEC xv = LOAD(x + i * ldx + c);                                                    \
                UNROLLED for (int r = 0; r < DOT_ROWS; r++) acc[i][r] = FMA(wv[r], xv, acc[i][r]);       \
            }                                                                                            \
        }                                                                                                \
        UNROLLED for (int i = 0; i < MR; i++) {                                                          \
            const __m128 s = SUM4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);                           \
            _mm_storeu_ps(y + i * ldy, accumulate ? _mm_add_ps(_mm_loadu_ps(y + i * ldy), s) : s);       \
        }                                                                                                \
    }

/// A broadcast-form tile: NR weight rows × V vectors of WIDTH packed activation rows, NR·V
/// accumulators over kn columns; each step loads the V vectors of a packed column and broadcasts
/// each row's weight. The accumulators start at zero or, with `resume`, at what `acc` holds (the
/// earlier column blocks), and end in `acc` (row r's vector v at acc[r·ldo + v·WIDTH]).
#define BROADCAST_TILE(NAME, ATTR, VEC, WIDTH, LOAD, STORE, SET1, ZERO, FMA, V, NR)                      \
    ATTR static void NAME##_##V##x##NR(const float *panel, long ldp, long kn, const float *xt, long ldx,  \
                                       float *acc, long ldo, int resume) {                               \
        VEC a[NR][V];                                                                                    \
        UNROLLED for (int r = 0; r < NR; r++)                                                            \
            UNROLLED for (int v = 0; v < V; v++) a[r][v] = resume ? LOAD(acc + r * ldo + v * WIDTH) : ZERO(); \
        for (long c = 0; c < kn; c++) {                                                                  \
            VEC xv[V];                                                                                   \
            UNROLLED for (int v = 0; v < V; v++) xv[v] = LOAD(xt + c * ldx + v * WIDTH);                 \
            UNROLLED for (int r = 0; r < NR; r++) {                                                      \
                const VEC wv = SET1(panel[r * ldp + c]);                                                 \
                UNROLLED for (int v = 0; v < V; v++) a[r][v] = FMA(wv, xv[v], a[r][v]);                  \
            }                                                                                            \
        }                                                                                                \
        UNROLLED for (int r = 0; r < NR; r++)                                                            \
            UNROLLED for (int v = 0; v < V; v++) STORE(acc + r * ldo + v * WIDTH, a[r][v]);              \
    }

typedef void (*widen_fn)(int format, const uint8_t *row, long blocks, float *out);
typedef void (*tile_fn)(const float *panel, long ldp, long kn, const float *x, long ldx, float *y, long ldy, int flag);

/// A SIMD path: its widening; its dot tiles for 1…`dot_mr` activation rows; its broadcast tiles,
/// `tiles[v - 1]` for v·ATTUNE_PANEL_LANES packed rows with `rows[v - 1]` weight rows (a divisor
/// of `group`, the rows widened at a time), v up to `units`.
typedef struct {
    widen_fn widen;
    const tile_fn *dot_tiles;
    long dot_mr;
    const tile_fn *tiles;
    const int *rows;
    long units, group;
} panel_path;

/// The dot form: each group of DOT_ROWS weight rows is widened whole into the panel (its bytes
/// read once, in order), then multiplied 512 columns at a time, so a tile's slices of the panel and
/// of its activation rows stay in L1 (the m rows are split into equal tiles). A group with fewer
/// rows (the end of [r0, r1)) is accumulated in `tail`.
static void panel_gemm_dot(int format, const uint8_t *w, long blocks, long r0, long r1, long m, const float *x,
                           float *y, long ldy, const panel_path *path) {
    enum { KC = 512 };
    const long cols = QK * blocks, rowBytes = row_bytes(format, blocks), mr = path->dot_mr;
    const long ntiles = (m + mr - 1) / mr;
    float *panel = panel_buffer((size_t)(DOT_ROWS * cols + m * DOT_ROWS)), *tail = panel + DOT_ROWS * cols;
    for (long r = r0; r < r1; r += DOT_ROWS) {
        const long n = r1 - r < DOT_ROWS ? r1 - r : DOT_ROWS;
        for (long k = 0; k < DOT_ROWS; k++) {
            if (k < n) path->widen(format, w + (r + k) * rowBytes, blocks, panel + k * cols);
            else memset(panel + k * cols, 0, (size_t)cols * sizeof(float));
        }
        float *out = n == DOT_ROWS ? y + r : tail;
        const long ld = n == DOT_ROWS ? ldy : DOT_ROWS;
        for (long kb = 0; kb < cols; kb += KC) {
            const long kn = cols - kb < KC ? cols - kb : KC;
            for (long j = 0; j < ntiles; j++) {
                const long i = m * j / ntiles, t = m * (j + 1) / ntiles - i;
                path->dot_tiles[t - 1](panel + kb, cols, kn, x + i * cols + kb, cols, out + i * ld, ld, kb > 0);
            }
        }
        if (n < DOT_ROWS)
            for (long i = 0; i < m; i++)
                for (long k = 0; k < n; k++) y[i * ldy + r + k] = tail[i * DOT_ROWS + k];
    }
}

/// The broadcast form, 128 columns at a time: each group's slice of weight rows is widened into an
/// L1-sized panel (the group's bytes are read once, in order, over the column blocks) and
/// multiplied by tiles over the packed activation rows; the group's accumulators live in `acc`
/// between column blocks and are written to y transposed at the end. Rows past r1 in the last
/// group are zeros.
static void panel_gemm_broadcast(int format, const uint8_t *w, long blocks, long r0, long r1, long m, const float *xt,
                                 float *y, long ldy, const panel_path *path) {
    enum { KC = 128 };
    const long cols = QK * blocks, ld = packed_stride(m), g = path->group, rowBytes = row_bytes(format, blocks);
    const long blockBytes = row_bytes(format, 1);
    float *panel = panel_buffer((size_t)(g * KC + g * ld)), *acc = panel + g * KC;
    for (long r = r0; r < r1; r += g) {
        const long n = r1 - r < g ? r1 - r : g;
        if (n < g) memset(panel + n * KC, 0, (size_t)((g - n) * KC) * sizeof(float));
        for (long kb = 0; kb < cols; kb += KC) {
            const long kn = cols - kb < KC ? cols - kb : KC;
            for (long k = 0; k < n; k++)
                path->widen(format, w + (r + k) * rowBytes + kb / QK * blockBytes, kn / QK, panel + k * KC);
            for (long i0 = 0; i0 < ld;) {
                const long v = (ld - i0) / ATTUNE_PANEL_LANES < path->units ? (ld - i0) / ATTUNE_PANEL_LANES : path->units;
                const long nr = path->rows[v - 1];
                for (long rr = 0; rr < n; rr += nr)
                    path->tiles[v - 1](panel + rr * KC, KC, kn, xt + kb * ld + i0, ld, acc + rr * ld + i0, ld, kb > 0);
                i0 += v * ATTUNE_PANEL_LANES;
            }
        }
        for (long i = 0; i < m; i++)
            for (long k = 0; k < n; k++) y[i * ldy + r + k] = acc[k * ld + i];
    }
}

// MARK: - AVX-512

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))

AVX512 static void widen_row_avx512(int format, const uint8_t *row, long blocks, float *out) {
    for (long b = 0; b < blocks; b++) {
        if (format == ATTUNE_PANEL_Q4_1) {
            const uint8_t *blk = row + b * Q4_1_BYTES;
            const __m512 d = _mm512_set1_ps(half_f16c(blk)), m = _mm512_set1_ps(half_f16c(blk + 2));
            const __m128i packed = _mm_loadu_si128((const __m128i *)(blk + 4)), mask = _mm_set1_epi8(0x0F);
            const __m128i lo = _mm_and_si128(packed, mask), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
            _mm512_storeu_ps(out + QK * b, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), d), m));
            _mm512_storeu_ps(out + QK * b + 16, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), d), m));
        } else {
            const uint8_t *blk = row + b * Q8_0_BYTES;
            const __m512 d = _mm512_set1_ps(half_f16c(blk));
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

/// Dot form: up to 6 rows × 4 in 16-float chunks (24 of the 32 zmm registers accumulate).
#define DOT_TILE_AVX512(MR) \
    DOT_TILE(dot_avx512, AVX512, __m512, 16, _mm512_loadu_ps, _mm512_setzero_ps, _mm512_fmadd_ps, sum4_avx512, MR)
DOT_TILE_AVX512(1)
DOT_TILE_AVX512(2)
DOT_TILE_AVX512(3)
DOT_TILE_AVX512(4)
DOT_TILE_AVX512(5)
DOT_TILE_AVX512(6)

/// Broadcast form: 24 accumulators whatever the shape (24×1, 12×2, 8×3, 6×4 weight rows × zmm
/// vectors), the rest of the 32 registers for the input vectors.
#define BROADCAST_TILE_AVX512(V, NR) \
    BROADCAST_TILE(tile_avx512, AVX512, __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, \
                   _mm512_setzero_ps, _mm512_fmadd_ps, V, NR)
BROADCAST_TILE_AVX512(1, 24)
BROADCAST_TILE_AVX512(2, 12)
BROADCAST_TILE_AVX512(3, 8)
BROADCAST_TILE_AVX512(4, 6)

static const tile_fn dot_avx512[] = {dot_avx512_1, dot_avx512_2, dot_avx512_3, dot_avx512_4, dot_avx512_5, dot_avx512_6};
static const tile_fn tiles_avx512[] = {tile_avx512_1x24, tile_avx512_2x12, tile_avx512_3x8, tile_avx512_4x6};
static const int rows_avx512[] = {24, 12, 8, 6};
static const panel_path path_avx512 = {widen_row_avx512, dot_avx512, 6, tiles_avx512, rows_avx512, 4, 24};

// MARK: - AVX2

AVX2 static void widen_row_avx2(int format, const uint8_t *row, long blocks, float *out) {
    for (long b = 0; b < blocks; b++) {
        if (format == ATTUNE_PANEL_Q4_1) {
            const uint8_t *blk = row + b * Q4_1_BYTES;
            const __m256 d = _mm256_set1_ps(half_f16c(blk)), m = _mm256_set1_ps(half_f16c(blk + 2));
            const __m128i packed = _mm_loadu_si128((const __m128i *)(blk + 4)), mask = _mm_set1_epi8(0x0F);
            const __m128i lo = _mm_and_si128(packed, mask), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
            const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
            for (int g = 0; g < 4; g++)
                _mm256_storeu_ps(out + QK * b + 8 * g,
                                 _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[g])), d), m));
        } else {
            const uint8_t *blk = row + b * Q8_0_BYTES;
            const __m256 d = _mm256_set1_ps(half_f16c(blk));
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

/// Dot form: up to 2 rows × 4 in 8-float chunks (16 ymm registers hold accumulators, weights and
/// the input).
#define DOT_TILE_AVX2(MR) \
    DOT_TILE(dot_avx2, AVX2, __m256, 8, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_fmadd_ps, sum4_avx2, MR)
DOT_TILE_AVX2(1)
DOT_TILE_AVX2(2)

/// Broadcast form: 6 weight rows × 2 ymm vectors, one packed unit of 16 rows (12 accumulators, the
/// two input vectors and the broadcast weight in the 16 registers).
BROADCAST_TILE(tile_avx2, AVX2, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_setzero_ps,
               _mm256_fmadd_ps, 2, 6)

static const tile_fn dot_avx2[] = {dot_avx2_1, dot_avx2_2};
static const tile_fn tiles_avx2[] = {tile_avx2_2x6};
static const int rows_avx2[] = {6};
static const panel_path path_avx2 = {widen_row_avx2, dot_avx2, 2, tiles_avx2, rows_avx2, 1, 12};

// MARK: - Dispatch

static const panel_path *simd_path(attune_isa isa) {
    return isa == ATTUNE_ISA_AVX512_VNNI ? &path_avx512 : isa == ATTUNE_ISA_AVX2 ? &path_avx2 : NULL;
}

void attune_panel_gemm_rows(attune_isa isa, attune_panel_format format, const void *w, long blocks, long r0, long r1,
                            long m, const float *x, float *y, long ldy) {
    const panel_path *path = simd_path(isa);
    if (path) panel_gemm_dot(format, w, blocks, r0, r1, m, x, y, ldy, path);
    else panel_gemm_scalar(format, w, blocks, r0, r1, m, x, QK * blocks, 1, y, ldy);
}

void attune_panel_gemm(attune_isa isa, attune_panel_format format, const void *w, long blocks, long r0, long r1,
                       long m, const float *xt, float *y, long ldy) {
    const panel_path *path = simd_path(isa);
    if (path) panel_gemm_broadcast(format, w, blocks, r0, r1, m, xt, y, ldy, path);
    else panel_gemm_scalar(format, w, blocks, r0, r1, m, xt, 1, packed_stride(m), y, ldy);
}
