// Decode's products in quantized mode on rows interleaved in groups of eight (Q4_1 and Q8_0):
// one vector holds four weight bytes of each of eight rows, so a 32-element block of eight rows
// is eight byte-product instructions against broadcast activation bytes, and the eight rows'
// scales are converted, multiplied and accumulated as one vector each: about four instructions
// per row-block where the row-major kernels (quant_dot.c) spend sixteen on unpacking, scales and
// lane sums. Every path (portable, AVX2, AVX-512 VNNI) computes each output with the same
// operations in the same order (an exact integer block dot, then fused multiply-adds into the
// block's even/odd accumulator), whatever the number of activation rows. The layout is read
// back as fp32 directly (prefill's sgemm chunks, training, embedding rows).
#include "attune_kernels.h"
#include "blocks.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/// Group-blocks: the same block of eight rows. Q4_1: [d₀…d₇ as f16][m₀…m₇ as f16], then four
/// chunks c = 0…3 of 32 bytes: row j's bytes 4c…4c+3 of its 16 nibble bytes at 4j (low nibbles
/// are elements 4c…4c+3, high nibbles 16+4c…16+4c+3). Q8_0: [d₀…d₇ as f16], then eight chunks
/// c = 0…7 of 32 bytes: row j's elements 4c…4c+3 at 4j.
enum {
    GROUP = ATTUNE_GROUP_ROWS,
    Q4_1_GROUP_BYTES = GROUP * Q4_1_BYTES, Q4_1_CHUNKS_AT = 32,
    Q8_0_GROUP_BYTES = GROUP * Q8_0_BYTES, Q8_0_CHUNKS_AT = 16,
};

/// Rewrites rows of blocks made of `fields` f16 fields and 4·`chunks` element bytes into
/// group-blocks: each field of the eight rows side by side, then the chunks.
static void interleave(const uint8_t *s, long blocks, long rows, uint8_t *d, int fields, int chunks) {
    const long blockBytes = 2 * fields + 4 * chunks, groupBytes = GROUP * blockBytes;
    for (long g = 0; g < rows / GROUP; g++) {
        for (long b = 0; b < blocks; b++) {
            uint8_t *o = d + (g * blocks + b) * groupBytes;
            for (int j = 0; j < GROUP; j++) {
                const uint8_t *blk = s + ((g * GROUP + j) * blocks + b) * blockBytes;
                for (int f = 0; f < fields; f++) memcpy(o + 16 * f + 2 * j, blk + 2 * f, 2);
                for (int c = 0; c < chunks; c++) memcpy(o + 16 * fields + 32 * c + 4 * j, blk + 2 * fields + 4 * c, 4);
            }
        }
    }
}

void attune_interleave_q4_1(const void *src, long blocks, long rows, void *dst) { interleave(src, blocks, rows, dst, 2, 4); }

void attune_interleave_q8_0(const void *src, long blocks, long rows, void *dst) { interleave(src, blocks, rows, dst, 1, 8); }

// MARK: - Reading rows back as fp32

/// Block b of row j of a group as its 16 (Q4_1) or 32 (Q8_0) element bytes in file order.
static inline void gather_elements(const uint8_t *chunks, int nchunks, int j, uint8_t *out) {
    for (int c = 0; c < nchunks; c++) memcpy(out + 4 * c, chunks + 32 * c + 4 * j, 4);
}

/// Row j's block in group-block gb as 32 floats at o: the same values as Dequantize.q4_1 /
/// .q8_0 on the plain block, d·q, then + m (two roundings).
static inline void dequantize_block_scalar(int q8, const uint8_t *gb, int j, float *o) {
    const float d = half_to_float(load_u16(gb + 2 * j));
    uint8_t q[QK];
    if (q8) {
        gather_elements(gb + Q8_0_CHUNKS_AT, 8, j, q);
        for (int i = 0; i < QK; i++) o[i] = (float)(int8_t)q[i] * d;
    } else {
        const float mn = half_to_float(load_u16(gb + 16 + 2 * j));
        gather_elements(gb + Q4_1_CHUNKS_AT, 4, j, q);
        for (int i = 0; i < 16; i++) {
            const float lo = (float)(q[i] & 0xF) * d, hi = (float)(q[i] >> 4) * d;
            o[i] = lo + mn;
            o[i + 16] = hi + mn;
        }
    }
}

/// The low eight bytes of p widened to fp32 (unsigned or signed) times d.
#define WIDEN8(WIDEN, p, d) _mm256_mul_ps(_mm256_cvtepi32_ps(WIDEN(p)), d)

/// As dequantize_block_scalar: the row's bytes gathered into one vector, widened eight at a time.
AVX2 static inline void dequantize_block_avx2(int q8, const uint8_t *gb, int j, float *o) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(gb + 2 * j)));
    if (q8) {
        const uint8_t *c = gb + Q8_0_CHUNKS_AT + 4 * j;
        const __m128i lo = _mm_setr_epi32((int)load_u32(c), (int)load_u32(c + 32), (int)load_u32(c + 64), (int)load_u32(c + 96));
        const __m128i hi = _mm_setr_epi32((int)load_u32(c + 128), (int)load_u32(c + 160), (int)load_u32(c + 192), (int)load_u32(c + 224));
        _mm256_storeu_ps(o, WIDEN8(_mm256_cvtepi8_epi32, lo, d));
        _mm256_storeu_ps(o + 8, WIDEN8(_mm256_cvtepi8_epi32, _mm_srli_si128(lo, 8), d));
        _mm256_storeu_ps(o + 16, WIDEN8(_mm256_cvtepi8_epi32, hi, d));
        _mm256_storeu_ps(o + 24, WIDEN8(_mm256_cvtepi8_epi32, _mm_srli_si128(hi, 8), d));
    } else {
        const __m256 mn = _mm256_set1_ps(_cvtsh_ss(load_u16(gb + 16 + 2 * j)));
        const uint8_t *c = gb + Q4_1_CHUNKS_AT + 4 * j;
        const __m128i q = _mm_setr_epi32((int)load_u32(c), (int)load_u32(c + 32), (int)load_u32(c + 64), (int)load_u32(c + 96));
        const __m128i lo = _mm_and_si128(q, _mm_set1_epi8(0x0F)), hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0F));
        _mm256_storeu_ps(o, _mm256_add_ps(WIDEN8(_mm256_cvtepu8_epi32, lo, d), mn));
        _mm256_storeu_ps(o + 8, _mm256_add_ps(WIDEN8(_mm256_cvtepu8_epi32, _mm_srli_si128(lo, 8), d), mn));
        _mm256_storeu_ps(o + 16, _mm256_add_ps(WIDEN8(_mm256_cvtepu8_epi32, hi, d), mn));
        _mm256_storeu_ps(o + 24, _mm256_add_ps(WIDEN8(_mm256_cvtepu8_epi32, _mm_srli_si128(hi, 8), d), mn));
    }
}

/// Rows [r0, r1) of an interleaved matrix as fp32, block by block with BLOCK.
#define DEQUANTIZE_ROWS(NAME, ATTR, BLOCK)                                                              \
    ATTR static void NAME(int q8, const uint8_t *w, long blocks, long r0, long r1, float *out) {      \
        const long groupBytes = q8 ? Q8_0_GROUP_BYTES : Q4_1_GROUP_BYTES;                              \
        for (long r = r0; r < r1; r++) {                                                               \
            const uint8_t *grp = w + (r / GROUP) * blocks * groupBytes;                                \
            float *o = out + (r - r0) * QK * blocks;                                                   \
            for (long b = 0; b < blocks; b++) BLOCK(q8, grp + b * groupBytes, (int)(r % GROUP), o + QK * b); \
        }                                                                                              \
    }

DEQUANTIZE_ROWS(dequantize_x8_scalar, , dequantize_block_scalar)
DEQUANTIZE_ROWS(dequantize_x8_avx2, AVX2, dequantize_block_avx2)

// MARK: - Portable reference products

/// Per row and activation row: two accumulators (even and odd blocks), each block adding
/// dot·(d·xs) and then, for Q4_1, m·Σx by fused multiply-adds; the output is their sum.
static void matmul_x8_scalar(int q8, const uint8_t *w, long blocks, long g0, long g1, long m, const int8_t *xq0,
                             const float *xs0, const float *xsum0, float *y, long ldy) {
    const long groupBytes = q8 ? Q8_0_GROUP_BYTES : Q4_1_GROUP_BYTES;
    for (long g = g0; g < g1; g++) {
        const uint8_t *grp = w + g * blocks * groupBytes;
        for (long i = 0; i < m; i++) {
            for (int j = 0; j < GROUP; j++) {
                float acc[2] = {0, 0};
                for (long b = 0; b < blocks; b++) {
                    const uint8_t *gb = grp + b * groupBytes;
                    const int8_t *x = xq0 + QK * (i * blocks + b);
                    const long xb = i * blocks + b;
                    int32_t dot = 0;
                    uint8_t q[QK];
                    if (q8) {
                        gather_elements(gb + Q8_0_CHUNKS_AT, 8, j, q);
                        for (int t = 0; t < QK; t++) dot += (int8_t)q[t] * x[t];
                    } else {
                        gather_elements(gb + Q4_1_CHUNKS_AT, 4, j, q);
                        for (int t = 0; t < 16; t++) dot += (q[t] & 0xF) * x[t] + (q[t] >> 4) * x[16 + t];
                    }
                    const float d = half_to_float(load_u16(gb + 2 * j));
                    acc[b & 1] = fmaf((float)dot, d * xs0[xb], acc[b & 1]);
                    if (!q8) acc[b & 1] = fmaf(half_to_float(load_u16(gb + 16 + 2 * j)), xsum0[xb], acc[b & 1]);
                }
                y[i * ldy + g * GROUP + j] = acc[0] + acc[1];
            }
        }
    }
}

// MARK: - SIMD tiles

#define VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

/// Activation rows per tile: a group-block is unpacked once for up to TILE rows (AVX2's 16
/// vector registers hold four rows' accumulators beside the unpacked block), or up to
/// WIDE_TILE rows on AVX-512 machines, whose 32 registers hold eight. A row's arithmetic is the
/// same in any tile.
enum { TILE = 4, WIDE_TILE = 8 };

/// Four activation bytes in every 32-bit lane.
#define BROADCAST4(x, at) _mm256_set1_epi32((int)load_u32((const uint8_t *)(x) + (at)))

/// A Q4_1 group-block's elements as bytes: w[c] the low nibbles of chunk c (elements 4c…4c+3 of
/// each row), w[4 + c] the high ones (elements 16+4c…).
typedef struct { __m256i w[8]; } q4_1_x8;

AVX2 static inline q4_1_x8 q4_1_x8_unpack(const uint8_t *gb) {
    q4_1_x8 p;
    UNROLLED for (int c = 0; c < 4; c++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(gb + Q4_1_CHUNKS_AT + 32 * c));
        p.w[c] = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
        p.w[4 + c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
    }
    return p;
}

/// A Q8_0 group-block's eight chunks (signed) and their magnitudes for the AVX2 path: byte
/// products multiply an unsigned by a signed byte, so each is taken as |w| · (x with w's sign).
typedef struct { __m256i w[8], mag[8]; } q8_0_x8;

AVX2 static inline q8_0_x8 q8_0_x8_unpack(const uint8_t *gb) {
    q8_0_x8 p;
    UNROLLED for (int c = 0; c < 8; c++) {
        p.w[c] = _mm256_loadu_si256((const __m256i *)(gb + Q8_0_CHUNKS_AT + 32 * c));
        p.mag[c] = _mm256_abs_epi8(p.w[c]);
    }
    return p;
}

/// Σ over a block of one activation row with eight rows' weights, exact in 32-bit lanes.
VNNI static inline __m256i q4_1_x8_dot_vnni(const q4_1_x8 *p, const int8_t *x) {
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    UNROLLED for (int c = 0; c < 4; c++) {
        lo = _mm256_dpbusd_epi32(lo, p->w[c], BROADCAST4(x, 4 * c));
        hi = _mm256_dpbusd_epi32(hi, p->w[4 + c], BROADCAST4(x, 16 + 4 * c));
    }
    return _mm256_add_epi32(lo, hi);
}

/// As q4_1_x8_dot_vnni with AVX2: the eight 16-bit pair sums add without overflow (|x| ≤ 127,
/// so each is at most 2·15·127 and all eight 30,480) before one widening to 32 bits.
AVX2 static inline __m256i q4_1_x8_dot_avx2(const q4_1_x8 *p, const int8_t *x) {
    __m256i s = _mm256_setzero_si256();
    UNROLLED for (int c = 0; c < 4; c++) {
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(p->w[c], BROADCAST4(x, 4 * c)));
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(p->w[4 + c], BROADCAST4(x, 16 + 4 * c)));
    }
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}

/// A Q8_0 group-block's eight chunks offset by 128 (w + 128 as an unsigned byte): the unsigned
/// operand of the byte products as they are, where magnitudes need each activation chunk signed
/// again for every row of the tile.
typedef struct { __m256i w[8]; } q8_0_x8_offset;

VNNI static inline q8_0_x8_offset q8_0_x8_unpack_offset(const uint8_t *gb) {
    q8_0_x8_offset p;
    UNROLLED for (int c = 0; c < 8; c++)
        p.w[c] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(gb + Q8_0_CHUNKS_AT + 32 * c)), _mm256_set1_epi8((char)0x80));
    return p;
}

/// Σ (w + 128)·x: the block dot plus 128·Σx, which the tile subtracts (QSUM in GROUP_TILE).
VNNI static inline __m256i q8_0_x8_dot_vnni(const q8_0_x8_offset *p, const int8_t *x) {
    __m256i even = _mm256_setzero_si256(), odd = _mm256_setzero_si256();
    UNROLLED for (int c = 0; c < 8; c += 2) {
        even = _mm256_dpbusd_epi32(even, p->w[c], BROADCAST4(x, 4 * c));
        odd = _mm256_dpbusd_epi32(odd, p->w[c + 1], BROADCAST4(x, 4 * c + 4));
    }
    return _mm256_add_epi32(even, odd);
}

/// As q8_0_x8_dot_vnni with AVX2: a pair sum reaches 2·128·127, so each chunk widens to 32 bits.
AVX2 static inline __m256i q8_0_x8_dot_avx2(const q8_0_x8 *p, const int8_t *x) {
    __m256i s = _mm256_setzero_si256();
    UNROLLED for (int c = 0; c < 8; c++) {
        const __m256i pairs = _mm256_maddubs_epi16(p->mag[c], _mm256_sign_epi8(BROADCAST4(x, 4 * c), p->w[c]));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    }
    return s;
}

/// One group of eight weight rows × T activation rows, the accumulators in registers. UNPACK
/// prepares a group-block once for the tile, DOT is its integer product with one activation
/// row-block, exact once QSUM (a DOT on w + 128) subtracts 128 times the block's byte sum
/// (xqsum); OFFSET (Q4_1) adds the m·Σx term.
#define GROUP_TILE(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT, T)                                      \
    ATTR static inline void NAME##_##T(const uint8_t *grp, long blocks, const int8_t *xq, const float *xs, \
                                       const float *xsum, const int32_t *xqsum, float *y, long ldy) {    \
        __m256 acc[T][2];                                                                                \
        UNROLLED for (int k = 0; k < T; k++) acc[k][0] = acc[k][1] = _mm256_setzero_ps();               \
        for (long b = 0; b < blocks; b++) {                                                              \
            const uint8_t *gb = grp + b * (BYTES);                                                       \
            const __typeof__(UNPACK(gb)) p = UNPACK(gb);                                                 \
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)gb));                     \
            const __m256 mn = (OFFSET) ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 16))) : d; \
            const int h = (int)(b & 1);                                                                  \
            UNROLLED for (int k = 0; k < T; k++) {                                                       \
                const long x = k * blocks + b;                                                           \
                __m256i exact = DOT(&p, xq + QK * x);                                                    \
                if (QSUM) exact = _mm256_sub_epi32(exact, _mm256_set1_epi32(128 * xqsum[x]));            \
                const __m256 dot = _mm256_cvtepi32_ps(exact);                                            \
                acc[k][h] = _mm256_fmadd_ps(dot, _mm256_mul_ps(d, _mm256_set1_ps(xs[x])), acc[k][h]);    \
                if (OFFSET) acc[k][h] = _mm256_fmadd_ps(mn, _mm256_set1_ps(xsum[x]), acc[k][h]);         \
            }                                                                                            \
        }                                                                                                \
        UNROLLED for (int k = 0; k < T; k++) _mm256_storeu_ps(y + k * ldy, _mm256_add_ps(acc[k][0], acc[k][1])); \
    }

#define GROUP_TILES(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT)                                       \
    GROUP_TILE(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT, 1)                                          \
    GROUP_TILE(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT, 2)                                          \
    GROUP_TILE(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT, 3)                                          \
    GROUP_TILE(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT, 4)

#define WIDE_GROUP_TILES(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT)                                  \
    GROUP_TILES(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT)                                            \
    GROUP_TILE(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT, 5)                                          \
    GROUP_TILE(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT, 6)                                          \
    GROUP_TILE(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT, 7)                                          \
    GROUP_TILE(NAME, ATTR, BYTES, OFFSET, QSUM, UNPACK, DOT, 8)

GROUP_TILES(q4_1_x8_avx2, AVX2, Q4_1_GROUP_BYTES, 1, 0, q4_1_x8_unpack, q4_1_x8_dot_avx2)
WIDE_GROUP_TILES(q4_1_x8_vnni, VNNI, Q4_1_GROUP_BYTES, 1, 0, q4_1_x8_unpack, q4_1_x8_dot_vnni)
GROUP_TILES(q8_0_x8_avx2, AVX2, Q8_0_GROUP_BYTES, 0, 0, q8_0_x8_unpack, q8_0_x8_dot_avx2)
WIDE_GROUP_TILES(q8_0_x8_vnni, VNNI, Q8_0_GROUP_BYTES, 0, 1, q8_0_x8_unpack_offset, q8_0_x8_dot_vnni)

/// Groups [g0, g1) × m activation rows in tiles of up to TILE (or WIDE_TILE) rows. A core's share is one
/// contiguous stream here, which the hardware prefetcher follows: asking for the group after
/// next as the row-major kernel does (PREFETCH_ROWS in quant_dot.c) made decode slower on Zen 4
/// (`attune bench model --weights quantized --prompt-tokens 64`, alternated: 237–286 with,
/// 267–318 tok/s without).
#define TILED_GROUPS(NAME, BYTES, WIDTH, CASES)                                                          \
    for (long g = g0; g < g1; g++) {                                                                     \
        const uint8_t *grp = w + g * blocks * (BYTES);                                                   \
        for (long i = 0; i < m; i += (WIDTH)) {                                                          \
            const long x = i * blocks;                                                                   \
            float *out = y + i * ldy + g * GROUP;                                                        \
            const int32_t *qs = xqsum0 ? xqsum0 + x : NULL;                                              \
            switch (m - i < (WIDTH) ? m - i : (WIDTH)) {                                                 \
            case 1: NAME##_1(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, qs, out, ldy); break;        \
            case 2: NAME##_2(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, qs, out, ldy); break;        \
            case 3: NAME##_3(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, qs, out, ldy); break;        \
            case 4: NAME##_4(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, qs, out, ldy); break;        \
            CASES(NAME)                                                                                  \
            }                                                                                            \
        }                                                                                                \
    }

#define NO_WIDE_CASES(NAME)
#define WIDE_CASES(NAME)                                                                                 \
    case 5: NAME##_5(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, qs, out, ldy); break;                \
    case 6: NAME##_6(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, qs, out, ldy); break;                \
    case 7: NAME##_7(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, qs, out, ldy); break;                \
    case 8: NAME##_8(grp, blocks, xq0 + QK * x, xs0 + x, xsum0 + x, qs, out, ldy); break;

/// A product over groups [g0, g1) (xqsum0: the activations' byte sums, read by QSUM tiles).
#define TILED_PRODUCT(NAME, ATTR, BYTES, WIDTH, CASES)                                                   \
    ATTR static void NAME(const uint8_t *w, long blocks, long g0, long g1, long m, const int8_t *xq0,    \
                          const float *xs0, const float *xsum0, const int32_t *xqsum0, float *y, long ldy) { \
        TILED_GROUPS(NAME, BYTES, WIDTH, CASES)                                                          \
    }

TILED_PRODUCT(q4_1_x8_avx2, AVX2, Q4_1_GROUP_BYTES, TILE, NO_WIDE_CASES)
TILED_PRODUCT(q4_1_x8_vnni, VNNI, Q4_1_GROUP_BYTES, WIDE_TILE, WIDE_CASES)
TILED_PRODUCT(q8_0_x8_avx2, AVX2, Q8_0_GROUP_BYTES, TILE, NO_WIDE_CASES)
TILED_PRODUCT(q8_0_x8_vnni, VNNI, Q8_0_GROUP_BYTES, WIDE_TILE, WIDE_CASES)

// MARK: - Dispatch

void attune_matmul_q4_1x8_q8(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                             const int8_t *xq, const float *xscales, const float *xsums, float *y, long ldy) {
    const long g0 = r0 / GROUP, g1 = r1 / GROUP;
    switch (isa) {
    case ATTUNE_ISA_AVX512_VNNI: q4_1_x8_vnni(w, blocks, g0, g1, m, xq, xscales, xsums, NULL, y, ldy); break;
    case ATTUNE_ISA_AVX2: q4_1_x8_avx2(w, blocks, g0, g1, m, xq, xscales, xsums, NULL, y, ldy); break;
    default: matmul_x8_scalar(0, w, blocks, g0, g1, m, xq, xscales, xsums, y, ldy); break;
    }
}

void attune_matmul_q8_0x8_q8(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                             const int8_t *xq, const float *xscales, const int32_t *xqsums, float *y, long ldy) {
    const long g0 = r0 / GROUP, g1 = r1 / GROUP;
    // Q8_0 has no offset term: the fp32 sums argument is never read.
    switch (isa) {
    case ATTUNE_ISA_AVX512_VNNI: q8_0_x8_vnni(w, blocks, g0, g1, m, xq, xscales, xscales, xqsums, y, ldy); break;
    case ATTUNE_ISA_AVX2: q8_0_x8_avx2(w, blocks, g0, g1, m, xq, xscales, xscales, xqsums, y, ldy); break;
    default: matmul_x8_scalar(1, w, blocks, g0, g1, m, xq, xscales, xscales, y, ldy); break;
    }
}

void attune_dequantize_q4_1x8(attune_isa isa, const void *w, long blocks, long r0, long r1, float *out) {
    if (isa >= ATTUNE_ISA_AVX2) dequantize_x8_avx2(0, w, blocks, r0, r1, out);
    else dequantize_x8_scalar(0, w, blocks, r0, r1, out);
}

void attune_dequantize_q8_0x8(attune_isa isa, const void *w, long blocks, long r0, long r1, float *out) {
    if (isa >= ATTUNE_ISA_AVX2) dequantize_x8_avx2(1, w, blocks, r0, r1, out);
    else dequantize_x8_scalar(1, w, blocks, r0, r1, out);
}
