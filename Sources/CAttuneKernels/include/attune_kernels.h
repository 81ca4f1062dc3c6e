#ifndef ATTUNE_KERNELS_H
#define ATTUNE_KERNELS_H

#include <stdint.h>

/// Instruction-set levels of the integer dot-product kernels, chosen at run time.
typedef enum {
    /// Portable C: the reference the SIMD paths are tested against.
    ATTUNE_ISA_SCALAR = 0,
    /// AVX2 + FMA + F16C: vpmaddubsw / vpmaddwd.
    ATTUNE_ISA_AVX2 = 1,
    /// AVX-512 VL + VNNI: vpdpbusd, four byte products per lane in one instruction.
    ATTUNE_ISA_AVX512_VNNI = 2,
} attune_isa;

/// The best level this CPU and operating system support (CPUID and XGETBV).
attune_isa attune_cpu_isa(void);

/// 1 when the CPU runs the AVX-512 kernels (`attune_cpu_isa`) but executes each 512-bit vector
/// operation as two 256-bit halves (AMD family 19h: Zen 4), so 512-bit tiles gain no arithmetic
/// width over 256-bit ones; 0 otherwise.
int attune_cpu_splits_512(void);

/// The OpenBLAS kernel set this CPU's features allow: "SkylakeX" (AVX-512 F/CD/BW/DQ/VL with
/// the OS saving ZMM state), "Haswell" (AVX2 + FMA), or NULL.
const char *attune_openblas_core_for_cpu(void);

/// Quantizes `n` floats (a multiple of 32; several rows may be quantized at once) to blocks of 32 signed bytes with one fp32 scale
/// per block: scale = max|x| / 127, q = round(x / scale). `sums[b]` receives the exact fp32
/// sum of block b (the Q4_1 offset term uses it), `qsums[b]` the sum of its 32 bytes.
void attune_quantize_q8(attune_isa isa, const float *x, long n, int8_t *q, float *scales, float *sums, int32_t *qsums);

/// Y[i][r] = W[r] · X[i] for weight rows r in [r0, r1) of a Q4_1 matrix (`blocks` blocks of
/// 20 bytes per row) and m activation rows quantized by attune_quantize_q8 (row i at
/// xq + i·32·blocks, its scales and sums at i·blocks); Y[i][r] is stored at y[i·ldy + r].
/// Each element is computed the same way whatever m is.
void attune_matmul_q4_1_q8(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                           const int8_t *xq, const float *xscales, const float *xsums, float *y, long ldy);

/// As attune_matmul_q4_1_q8 for a Q8_0 matrix (`blocks` blocks of 34 bytes per row).
void attune_matmul_q8_0_q8(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                           const int8_t *xq, const float *xscales, float *y, long ldy);

/// Rows per interleaved group (attune_interleave_q4_1, attune_interleave_q8_0).
#define ATTUNE_GROUP_ROWS 8

/// Rewrites a Q4_1 matrix (rows a multiple of ATTUNE_GROUP_ROWS, `blocks` blocks of 20 bytes
/// per row) into `dst` (as many bytes) with the rows interleaved in groups of eight: for each
/// group and block, the eight rows' f16 scales d, their f16 offsets m, then four 32-byte chunks
/// holding 4 nibble bytes of each row in turn. The decode kernel attune_matmul_q4_1x8_q8 reads it.
void attune_interleave_q4_1(const void *src, long blocks, long rows, void *dst);

/// As attune_interleave_q4_1 for a Q8_0 matrix (34-byte blocks): per group and block, the eight
/// rows' f16 scales, then eight 32-byte chunks holding 4 elements of each row in turn.
void attune_interleave_q8_0(const void *src, long blocks, long rows, void *dst);

/// As attune_matmul_q4_1_q8 on an interleaved Q4_1 matrix (attune_interleave_q4_1), r0 and r1
/// multiples of ATTUNE_GROUP_ROWS. Each element is computed the same way whatever m is, and
/// the same way on every isa.
void attune_matmul_q4_1x8_q8(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                             const int8_t *xq, const float *xscales, const float *xsums, float *y, long ldy);

/// As attune_matmul_q8_0_q8 on an interleaved Q8_0 matrix (attune_interleave_q8_0), with the
/// guarantees of attune_matmul_q4_1x8_q8; xqsums holds the activations' byte sums
/// (attune_quantize_q8's qsums).
void attune_matmul_q8_0x8_q8(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                             const int8_t *xq, const float *xscales, const int32_t *xqsums, float *y, long ldy);

/// Rows [r0, r1) (any rows) of an interleaved Q4_1 matrix as fp32, row after row at `out`
/// (32·blocks values each): the same values, bit for bit, as dequantizing the plain blocks (d·q,
/// then + m).
void attune_dequantize_q4_1x8(attune_isa isa, const void *w, long blocks, long r0, long r1, float *out);

/// As attune_dequantize_q4_1x8 for an interleaved Q8_0 matrix (d·q).
void attune_dequantize_q8_0x8(attune_isa isa, const void *w, long blocks, long r0, long r1, float *out);

/// Sums of each 32-element block of x (n a multiple of 32): the Q4_1 offset term's factor.
void attune_block_sums(attune_isa isa, const float *x, long n, float *sums);

/// As attune_matmul_q4_1_q8 with fp32 activations (m rows of 32·blocks floats at x, their
/// block sums at xsums): the blocks are widened to fp32 in registers, no activation rounding.
void attune_matmul_q4_1_f32(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                            const float *x, const float *xsums, float *y, long ldy);

/// As attune_matmul_q8_0_q8 with fp32 activations.
void attune_matmul_q8_0_f32(attune_isa isa, const void *w, long blocks, long r0, long r1, long m,
                            const float *x, float *y, long ldy);

/// scores[j] = scale · Σ_d q[d] · keys[j·ld + d] for the n cached positions of one attention
/// head of hd values (a decode step's scores).
void attune_attention_scores(attune_isa isa, const float *q, long hd, const float *keys, long ld, long n, float scale,
                             float *scores);

/// out[d] = Σ_j p[j] · values[j·ld + d] for d < hd: one head's output from its n probabilities.
void attune_attention_mix(attune_isa isa, const float *p, long hd, const float *values, long ld, long n, float *out);

/// attune_attention_scores over keys stored as IEEE half-precision bits (widened in registers).
void attune_attention_scores_f16(attune_isa isa, const float *q, long hd, const uint16_t *keys, long ld, long n,
                                 float scale, float *scores);

/// attune_attention_mix over values stored as IEEE half-precision bits.
void attune_attention_mix_f16(attune_isa isa, const float *p, long hd, const uint16_t *values, long ld, long n,
                              float *out);

/// h[i] = x[i] as IEEE half, rounded to nearest even (infinity past the largest half) on every path.
void attune_f32_to_f16(attune_isa isa, const float *x, uint16_t *h, long n);

/// x[i] = h[i] widened to float (exact).
void attune_f16_to_f32(attune_isa isa, const uint16_t *h, float *x, long n);

/// Weight formats of attune_panel_gemm.
typedef enum {
    ATTUNE_PANEL_Q4_1 = 0,
    ATTUNE_PANEL_Q8_0 = 1,
} attune_panel_format;

/// Y[i][r] = W[r] · X[i] for weight rows r in [r0, r1) of a Q4_1 or Q8_0 matrix (`blocks`
/// blocks per row) and m fp32 activation rows of 32·blocks floats at x; Y[i][r] is stored at
/// y[i·ldy + r]. Groups of four weight rows are widened to fp32 once (the values the dequantizer
/// gives) and multiplied with every activation row in dot-form tiles: for batches of a few rows
/// (fewer than ATTUNE_PANEL_LANES). Each element is computed the same way whatever m and r0 are.
void attune_panel_gemm_rows(attune_isa isa, attune_panel_format format, const void *w, long blocks, long r0, long r1,
                            long m, const float *x, float *y, long ldy);

/// Activation rows per packed column vector of attune_panel_pack: m is padded to a multiple of it.
#define ATTUNE_PANEL_LANES 16

/// Packs m fp32 activation rows of `cols` floats at x column-major for attune_panel_gemm into a
/// buffer the calling thread owns, valid until its next call (NULL if it cannot be allocated):
/// xt[c·ld + i] = x[i·cols + c], zero for m ≤ i < ld, where ld is m rounded up to
/// ATTUNE_PANEL_LANES.
const float *attune_panel_pack(long m, long cols, const float *x);

/// As attune_panel_gemm_rows with the activation rows packed by attune_panel_pack at xt, in
/// broadcast-form tiles (a vector holds one column of 16 rows): for batches of
/// ATTUNE_PANEL_LANES rows or more. Each element is one fused multiply-add chain in column
/// order, whatever m and r0 are.
void attune_panel_gemm(attune_isa isa, attune_panel_format format, const void *w, long blocks, long r0, long r1,
                       long m, const float *xt, float *y, long ldy);

/// y[i][o] += Σ_j Bᵀ[j][o] · (scale · Σ_k A[j][k] · x[i][k]) for m input rows (in floats each)
/// and outputs (out floats each): one LoRA projection with A (rank × in) and B stored
/// transposed (rank × out), both as IEEE half-precision bits. Each row is computed the same way
/// whatever m is. `next` (or NULL): `next_bytes` that the caller reads next (the next adapter's
/// arrays in a walk), asked of the caches line by line while this product runs; a hint only.
void attune_lora_f16(attune_isa isa, const uint16_t *a, const uint16_t *bt, long rank, long in, long out, long m,
                     float scale, const float *x, float *y, const void *next, long next_bytes);

/// As attune_lora_f16 with A and Bᵀ as 8-bit integers, row j of A worth as[j] per unit and row
/// r of Bᵀ bs[r]: y[i][o] += Σ_r bs[r]·Bᵀ[r][o] · (scale · as[r] · Σ_k A[r][k] · x[i][k]).
void attune_lora_q8(attune_isa isa, const int8_t *a, const float *as, const int8_t *bt, const float *bs, long rank,
                    long in, long out, long m, float scale, const float *x, float *y, const void *next, long next_bytes);

#endif
