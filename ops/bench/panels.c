// The forms of a dense-mode decode step's products on one thread — register widening
// (attune_matmul_q4_1_f32, direct, up to 4 rows), panels along the rows (attune_panel_gemm_rows,
// dot form) and broadcast panels (attune_panel_gemm with its packing) — over the model's three
// matrix shapes × 30 layers of Q4_1 blocks (39 MB, streamed from memory as in a real step),
// against cblas_sgemm on the fp32 copy of one layer's shapes (the machine's limit at that batch).
// Prints GFLOP/s per batch size m, best of REPEATS alternating runs. Built and run by panels.sh.
#include "kernel_bench.h"

#include <cblas.h>
#include <stdio.h>

enum { LAYERS = 30, SHAPES = 3, REPEATS = 6 };
static const long rows[SHAPES] = {576, 1536, 576}, cols[SHAPES] = {576, 576, 1536};

/// What is timed: the two panel forms, sgemm on the fp32 copy, register widening (≤ 4 rows).
enum form { DOT, BROADCAST, SGEMM, DIRECT, FORMS };

int main(int argc, char **argv) {
    const attune_isa isa = bench_isa();
    long total = 0, weights = 0;
    for (int t = 0; t < SHAPES; t++)
        total += LAYERS * rows[t] * cols[t] / 32 * Q4_1_BLOCK_BYTES, weights += LAYERS * rows[t] * cols[t];
    const uint8_t *w = random_q4_1(total);
    const long maxM = 256;
    float *x = malloc(sizeof(float) * 1536 * maxM), *y = malloc(sizeof(float) * 1536 * maxM);
    float *sums = malloc(sizeof(float) * 48 * maxM);
    float *dense[SHAPES];
    for (long i = 0; i < 1536 * maxM; i++) x[i] = (float)(i % 97) / 97.0f - 0.5f;
    for (int t = 0; t < SHAPES; t++) {
        dense[t] = malloc(sizeof(float) * rows[t] * cols[t]);
        for (long i = 0; i < rows[t] * cols[t]; i++) dense[t][i] = (float)(i % 89) / 89.0f - 0.5f;
    }
    printf("isa %s; one thread; Q4_1 weights %.1f MB\n", isa_names[isa], total / 1e6);
    printf("%5s %14s %12s %14s %14s %10s %12s\n", "m", "direct GFLOP/s", "dot GFLOP/s", "bcast GFLOP/s", "sgemm GFLOP/s",
           "dot/sgemm", "bcast/sgemm");
    for (int a = 1; a < argc; a++) {
        const long m = atol(argv[a]);
        if (m < 1 || m > maxM) { fprintf(stderr, "m must be 1…%ld\n", maxM); return 2; }
        double best[FORMS] = {1e30, 1e30, 1e30, 1e30};
        for (int rep = 0; rep < REPEATS; rep++) {
            for (int form = 0; form < FORMS; form++) {
                if (form == DIRECT && m > 4) continue;
                const double t0 = now();
                long off = 0;
                for (int l = 0; l < LAYERS; l++) {
                    for (int t = 0; t < SHAPES; t++) {
                        const long blocks = cols[t] / 32;
                        if (form == DOT) {
                            attune_panel_gemm_rows(isa, ATTUNE_PANEL_Q4_1, w + off, blocks, 0, rows[t], m, x, y, rows[t]);
                        } else if (form == BROADCAST) {
                            const float *xt = attune_panel_pack(m, cols[t], x);
                            attune_panel_gemm(isa, ATTUNE_PANEL_Q4_1, w + off, blocks, 0, rows[t], m, xt, y, rows[t]);
                        } else if (form == DIRECT) {
                            attune_block_sums(isa, x, m * cols[t], sums);
                            attune_matmul_q4_1_f32(isa, w + off, blocks, 0, rows[t], m, x, sums, y, rows[t]);
                        } else {
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)rows[t], (int)cols[t], 1, x,
                                        (int)cols[t], dense[t], (int)cols[t], 0, y, (int)rows[t]);
                        }
                        off += rows[t] * blocks * Q4_1_BLOCK_BYTES;
                    }
                }
                const double dt = now() - t0;
                if (dt < best[form]) best[form] = dt;
            }
        }
        const double flop = 2.0 * m * weights;
        char direct[16] = "-";
        if (m <= 4) snprintf(direct, sizeof direct, "%.1f", flop / best[DIRECT] / 1e9);
        printf("%5ld %14s %12.1f %14.1f %14.1f %10.2f %12.2f\n", m, direct, flop / best[DOT] / 1e9, flop / best[BROADCAST] / 1e9,
               flop / best[SGEMM] / 1e9, best[SGEMM] / best[DOT], best[SGEMM] / best[BROADCAST]);
    }
    return 0;
}
