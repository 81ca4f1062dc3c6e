// Whether quantized decode's matrix-vector kernels are bound by memory or by instructions on this
// core, for the row-major layout (attune_matmul_q4_1_q8, attune_matmul_q8_0_q8) and the rows
// interleaved in groups of eight (attune_matmul_q4_1x8_q8, attune_matmul_q8_0x8_q8): one
// activation row over one token's Q4_1 matrices (30 layers × q, k, v, o, gate, up, down of
// SmolLM2-135M) and over its Q8_0 head (49,152 × 576), on one thread, with the weights streamed
// from memory (each matrix its own bytes) and with the same calls all reading the first bytes,
// which stay in cache (the head: its first HEAD_SLICE rows, as many times as it has slices).
// Equal rates mean the kernel, not memory, sets the pace. Best of REPEATS alternating passes.
// Built and run by decode_kernel.sh.
#include "kernel_bench.h"

#include <stdio.h>

enum { LAYERS = 30, SHAPES = 7, REPEATS = 40, HEAD_ROWS = 49152, HEAD_COLS = 576, HEAD_SLICE = 512 };
static const long rows[SHAPES] = {576, 192, 192, 576, 1536, 1536, 576};
static const long cols[SHAPES] = {576, 576, 576, 576, 576, 576, 1536};

/// Seconds for one token's products over `base` (each matrix its own bytes, or with `cached`
/// every call on the first matrices' bytes), row-major or interleaved.
static double pass(attune_isa isa, const uint8_t *base, int interleaved, int cached, const float *x, int8_t *xq,
                   float *scales, float *sums, int32_t *qsums, float *y) {
    const double t0 = now();
    long off = 0;
    for (int l = 0; l < LAYERS; l++) {
        for (int t = 0; t < SHAPES; t++) {
            const long blocks = cols[t] / 32;
            const uint8_t *m = base + (cached ? 0 : off);
            attune_quantize_q8(isa, x, cols[t], xq, scales, sums, qsums);
            if (interleaved) attune_matmul_q4_1x8_q8(isa, m, blocks, 0, rows[t], 1, xq, scales, sums, y, rows[t]);
            else attune_matmul_q4_1_q8(isa, m, blocks, 0, rows[t], 1, xq, scales, sums, y, rows[t]);
            off += rows[t] * blocks * Q4_1_BLOCK_BYTES;
        }
    }
    return now() - t0;
}

/// Seconds for one token's head product, row-major or interleaved, in slices of HEAD_SLICE rows.
static double head_pass(attune_isa isa, const uint8_t *w, int interleaved, int cached, const float *x, int8_t *xq,
                        float *scales, float *sums, int32_t *qsums, float *y) {
    const double t0 = now();
    const long blocks = HEAD_COLS / 32, sliceBytes = HEAD_SLICE * blocks * Q8_0_BLOCK_BYTES;
    attune_quantize_q8(isa, x, HEAD_COLS, xq, scales, sums, qsums);
    for (long r = 0; r < HEAD_ROWS; r += HEAD_SLICE) {
        const uint8_t *m = w + (cached ? 0 : r / HEAD_SLICE * sliceBytes);
        if (interleaved) attune_matmul_q8_0x8_q8(isa, m, blocks, 0, HEAD_SLICE, 1, xq, scales, qsums, y + r, HEAD_ROWS);
        else attune_matmul_q8_0_q8(isa, m, blocks, 0, HEAD_SLICE, 1, xq, scales, y + r, HEAD_ROWS);
    }
    return now() - t0;
}

int main(void) {
    const attune_isa isa = bench_isa();
    long total = 0;
    for (int t = 0; t < SHAPES; t++) total += LAYERS * rows[t] * cols[t] / 32 * Q4_1_BLOCK_BYTES;
    const uint8_t *w = random_q4_1(total);
    uint8_t *wx = malloc(total);
    long at = 0;
    for (int l = 0; l < LAYERS; l++) {
        for (int t = 0; t < SHAPES; t++) {
            attune_interleave_q4_1(w + at, cols[t] / 32, rows[t], wx + at);
            at += rows[t] * cols[t] / 32 * Q4_1_BLOCK_BYTES;
        }
    }
    const long headBytes = (long)HEAD_ROWS * HEAD_COLS / 32 * Q8_0_BLOCK_BYTES;
    const uint8_t *head = random_q8_0(headBytes);
    uint8_t *headx = malloc(headBytes);
    attune_interleave_q8_0(head, HEAD_COLS / 32, HEAD_ROWS, headx);
    float *x = malloc(sizeof(float) * 1536), *y = malloc(sizeof(float) * HEAD_ROWS), *scales = malloc(sizeof(float) * 48),
          *sums = malloc(sizeof(float) * 48);
    int8_t *xq = malloc(1536);
    int32_t *qsums = malloc(sizeof(int32_t) * 48);
    for (long i = 0; i < 1536; i++) x[i] = (float)(i % 97) / 97.0f - 0.5f;
    double best[2][2][2] = {{{1e30, 1e30}, {1e30, 1e30}}, {{1e30, 1e30}, {1e30, 1e30}}};
    for (int rep = 0; rep < REPEATS; rep++) {
        for (int layout = 0; layout < 2; layout++) {
            for (int cached = 0; cached < 2; cached++) {
                double dt = pass(isa, layout ? wx : w, layout, cached, x, xq, scales, sums, qsums, y);
                if (dt < best[0][layout][cached]) best[0][layout][cached] = dt;
                dt = head_pass(isa, layout ? headx : head, layout, cached, x, xq, scales, sums, qsums, y);
                if (dt < best[1][layout][cached]) best[1][layout][cached] = dt;
            }
        }
    }
    printf("isa %s; one thread\n", isa_names[isa]);
    static const char *const layouts[] = {"row-major", "interleaved by 8 rows"};
    static const char *const parts[] = {"layers: %.1f MB of Q4_1 blocks per pass\n", "head: %.1f MB of Q8_0 blocks per pass\n"};
    const long bytes[] = {total, headBytes};
    for (int part = 0; part < 2; part++) {
        printf(parts[part], bytes[part] / 1e6);
        for (int layout = 0; layout < 2; layout++) {
            const double *b = best[part][layout];
            printf("  %s\n", layouts[layout]);
            printf("    streamed from memory: %.2f ms per pass, %.2f GB/s\n", b[0] * 1e3, bytes[part] / b[0] / 1e9);
            printf("    from cache:           %.2f ms per pass, %.2f GB/s\n", b[1] * 1e3, bytes[part] / b[1] / 1e9);
        }
    }
    return 0;
}
