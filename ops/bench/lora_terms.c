// One serving decode step's tenant LoRA terms, as `RowGroupedAdapter` walks them: N tenant
// adapters (one batch row each) of SmolLM2-135M's shapes (30 layers; dim 576, k/v 192, ffn
// 1536; rank 8 on all seven projections), each in its own allocation laid out as `ServingLoRA`
// lays it out, in both of its precisions side by side: half-precision A and Bᵀ
// (`attune_lora_f16`) and 8-bit A and Bᵀ with a scale per row (`attune_lora_q8`). Per layer,
// four calls as the model makes them (q/k/v, o, gate/up, down); per call, each adapter in turn
// adds its one row's terms. Each thread walks its own adapters (a core's share of the batch),
// all threads at once. Variants, each the median ms per step of ROUNDS steps:
//   each alone     each product on its own
//   loading next   each product loading the next adapter's arrays meanwhile (the server's walk)
//   one adapter    every row on the same adapter: the same arithmetic from cache (the floor)
//   loads only     the walk's bytes summed, no arithmetic (how fast memory delivers this walk)
#include "kernel_bench.h"

#include <pthread.h>
#include <stdio.h>

enum { LAYERS = 30, DIM = 576, KV = 192, FFN = 1536, RANK = 8, TARGETS = 7, ROUNDS = 15, PRECISIONS = 2 };

static const long shape_out[TARGETS] = {DIM, KV, KV, DIM, FFN, FFN, DIM};
static const long shape_in[TARGETS] = {DIM, DIM, DIM, DIM, DIM, DIM, FFN};
/// The model's calls per layer: targets [first, last] share one input.
static const int call_first[4] = {0, 3, 4, 6}, call_last[4] = {2, 3, 5, 6};
static const char *const precision_names[PRECISIONS] = {"f16", "int8"};

/// Bytes of one layer and where each target starts in it, per precision.
static long per_layer[PRECISIONS];
static long target_at[PRECISIONS][TARGETS];

static long target_bytes(int q8, int t) {
    return q8 ? RANK * (shape_in[t] + shape_out[t]) + 2 * RANK * (long)sizeof(float) : 2 * RANK * (shape_in[t] + shape_out[t]);
}

enum variant { ALONE, PREFETCH, ONE_ADAPTER, LOADS_ONLY, VARIANTS };
static const char *const variant_names[VARIANTS] = {"each alone", "loading next", "one adapter", "loads only"};

typedef struct {
    uint8_t **adapters;
    int count, q8;
    enum variant v;
    attune_isa isa;
    float *x, *y;
    double sink;  // keeps the loads-only sums live
} walker;

static void add_terms(const walker *w, const uint8_t *base, const uint8_t *next, long at, int t) {
    const long in = shape_in[t], out = shape_out[t], len = target_bytes(w->q8, t);
    const void *ahead = next ? next + at : NULL;
    if (w->q8) {
        const int8_t *a = (const int8_t *)(base + at), *bt = a + RANK * in;
        const float *as = (const float *)(bt + RANK * out), *bs = as + RANK;
        attune_lora_q8(w->isa, a, as, bt, bs, RANK, in, out, 1, 0.5f, w->x, w->y, ahead, next ? len : 0);
    } else {
        const uint16_t *a = (const uint16_t *)(base + at);
        attune_lora_f16(w->isa, a, a + RANK * in, RANK, in, out, 1, 0.5f, w->x, w->y, ahead, next ? len : 0);
    }
}

static void *walk(void *arg) {
    walker *w = arg;
    const long *at = target_at[w->q8];
    for (int l = 0; l < LAYERS; l++) {
        for (int c = 0; c < 4; c++) {
            const long from = l * per_layer[w->q8] + at[call_first[c]];
            const long to = l * per_layer[w->q8] + at[call_last[c]] + target_bytes(w->q8, call_last[c]);
            for (int a = 0; a < w->count; a++) {
                const uint8_t *base = w->adapters[w->v == ONE_ADAPTER ? 0 : a];
                if (w->v == LOADS_ONLY) {
                    const uint64_t *p = (const uint64_t *)(base + from);
                    uint64_t s = 0;
                    for (long i = 0; i < (to - from) / 8; i++) s ^= p[i];
                    w->sink += (double)(s & 1);
                    continue;
                }
                const uint8_t *next = w->v == PREFETCH && a + 1 < w->count ? w->adapters[a + 1] : NULL;
                for (int t = call_first[c]; t <= call_last[c]; t++) add_terms(w, base, next, l * per_layer[w->q8] + at[t], t);
            }
        }
    }
    return NULL;
}

static int compare(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/// Median ms per step of one variant in one precision.
static double step_ms(uint8_t **adapters, int n, int threads, int q8, enum variant v, attune_isa isa, float *x, float *y) {
    double ms[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        walker w[threads];
        pthread_t id[threads];
        for (int t = 0; t < threads; t++) {
            const int first = n * t / threads, last = n * (t + 1) / threads;
            w[t] = (walker){adapters + first, last - first, q8, v, isa, x + t * FFN, y + t * FFN, 0};
        }
        const double t0 = now();
        for (int t = 0; t < threads; t++) pthread_create(&id[t], NULL, walk, &w[t]);
        for (int t = 0; t < threads; t++) pthread_join(id[t], NULL);
        ms[r] = 1e3 * (now() - t0);
    }
    qsort(ms, ROUNDS, sizeof ms[0], compare);
    return ms[ROUNDS / 2];
}

int main(int argc, char **argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 32, threads = argc > 2 ? atoi(argv[2]) : 2;
    const attune_isa isa = bench_isa();
    uint8_t **adapters[PRECISIONS];
    for (int q8 = 0; q8 < PRECISIONS; q8++) {
        for (int t = 0; t < TARGETS; t++) {
            target_at[q8][t] = per_layer[q8];
            per_layer[q8] += target_bytes(q8, t);
        }
        adapters[q8] = malloc(n * sizeof *adapters[q8]);
        for (int a = 0; a < n; a++) {
            uint8_t *p = adapters[q8][a] = malloc(LAYERS * per_layer[q8]);
            for (long l = 0; l < LAYERS; l++) {
                for (int t = 0; t < TARGETS; t++) {
                    uint8_t *at = p + l * per_layer[q8] + target_at[q8][t];
                    const long weights = RANK * (shape_in[t] + shape_out[t]);
                    for (long i = 0; i < weights; i++) {
                        if (q8) at[i] = (uint8_t)((i * 7 + a) % 255 - 127);
                        else ((uint16_t *)at)[i] = (uint16_t)(0x2000 + (i * 7 + a) % 0x0c00);
                    }
                    if (q8) for (int r = 0; r < 2 * RANK; r++) ((float *)(at + weights))[r] = 1.0f / 512;
                }
            }
        }
    }
    float *x = malloc(FFN * sizeof(float) * threads), *y = calloc((size_t)FFN * threads, sizeof(float));
    for (long i = 0; i < FFN * threads; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    printf("%d tenant adapters (%.1f MB f16, %.1f MB int8), %d threads, kernel path %s; ms per decode step (median of %d)\n",
           n, 1e-6 * LAYERS * per_layer[0] * n, 1e-6 * LAYERS * per_layer[1] * n, threads,
           isa >= ATTUNE_ISA_AVX2 ? "avx2" : "scalar", ROUNDS);
    printf("%-14s %9s %9s %9s %9s\n", "", "f16 ms", "GB/s", "int8 ms", "GB/s");
    for (int v = 0; v < VARIANTS; v++) {
        printf("%-14s", variant_names[v]);
        for (int q8 = 0; q8 < PRECISIONS; q8++) {
            const double med = step_ms(adapters[q8], n, threads, q8, (enum variant)v, isa, x, y);
            printf(" %9.2f %9.1f", med, 1e-6 * LAYERS * per_layer[q8] * n / med);
        }
        printf("\n");
    }
    return 0;
}
