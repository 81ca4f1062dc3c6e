// One serving decode step's tenant LoRA terms, as `RowGroupedAdapter` walks them: N tenant
// adapters (one batch row each) of SmolLM2-135M's shapes (30 layers; dim 576, k/v 192, ffn
// 1536; rank 8 on all seven projections), each in its own allocation of half-precision A and
// Bᵀ laid out as `HalfPrecisionLoRA` lays them out. Per layer, four calls as the model makes
// them (q/k/v, o, gate/up, down); per call, each adapter in turn adds its one row's terms with
// `attune_lora_f16`. Each thread walks its own adapters (a core's share of the batch), all
// threads at once. Variants, each the median ms per step of ROUNDS steps:
//   each alone     each product on its own
//   loading next   each product loading the next adapter's arrays meanwhile (the server's walk)
//   one adapter    every row on the same adapter: the same arithmetic from cache (the floor)
//   loads only     the walk's bytes summed, no arithmetic (how fast memory delivers this walk)
#include "kernel_bench.h"

#include <pthread.h>
#include <stdio.h>

enum { LAYERS = 30, DIM = 576, KV = 192, FFN = 1536, RANK = 8, TARGETS = 7, ROUNDS = 15 };

static const long shape_out[TARGETS] = {DIM, KV, KV, DIM, FFN, FFN, DIM};
static const long shape_in[TARGETS] = {DIM, DIM, DIM, DIM, DIM, DIM, FFN};
/// The model's calls per layer: targets [first, last] share one input.
static const int call_first[4] = {0, 3, 4, 6}, call_last[4] = {2, 3, 5, 6};

static long per_layer;
static long target_at[TARGETS];

enum variant { ALONE, PREFETCH, ONE_ADAPTER, LOADS_ONLY, VARIANTS };
static const char *const variant_names[VARIANTS] = {"each alone", "loading next", "one adapter", "loads only"};

typedef struct {
    uint16_t **adapters;
    int count;
    enum variant v;
    attune_isa isa;
    float *x, *y;
    double sink;  // keeps the loads-only sums live
} walker;

static void *walk(void *arg) {
    walker *w = arg;
    for (int l = 0; l < LAYERS; l++) {
        for (int c = 0; c < 4; c++) {
            const long from = l * per_layer + target_at[call_first[c]];
            const long to = l * per_layer + target_at[call_last[c]] + RANK * (shape_in[call_last[c]] + shape_out[call_last[c]]);
            for (int a = 0; a < w->count; a++) {
                const uint16_t *base = w->adapters[w->v == ONE_ADAPTER ? 0 : a];
                if (w->v == LOADS_ONLY) {
                    const uint64_t *p = (const uint64_t *)(base + from);
                    uint64_t s = 0;
                    for (long i = 0; i < (to - from) / 4; i++) s ^= p[i];
                    w->sink += (double)(s & 1);
                    continue;
                }
                const uint16_t *next = w->v == PREFETCH && a + 1 < w->count ? w->adapters[a + 1] : NULL;
                for (int t = call_first[c]; t <= call_last[c]; t++) {
                    const long at = l * per_layer + target_at[t], len = RANK * (shape_in[t] + shape_out[t]);
                    attune_lora_f16(w->isa, base + at, base + at + RANK * shape_in[t], RANK, shape_in[t], shape_out[t], 1,
                                    0.5f, w->x, w->y, next ? next + at : NULL, next ? 2 * len : 0);
                }
            }
        }
    }
    return NULL;
}

static int compare(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 32, threads = argc > 2 ? atoi(argv[2]) : 2;
    const attune_isa isa = bench_isa();
    for (int t = 0; t < TARGETS; t++) {
        target_at[t] = per_layer;
        per_layer += RANK * (shape_in[t] + shape_out[t]);
    }
    const long halves = LAYERS * per_layer;
    uint16_t **adapters = malloc(n * sizeof *adapters);
    for (int a = 0; a < n; a++) {
        adapters[a] = malloc(2 * halves);
        for (long i = 0; i < halves; i++) adapters[a][i] = (uint16_t)(0x2000 + (i * 7 + a) % 0x0c00);
    }
    float *x = malloc(FFN * sizeof(float) * threads), *y = calloc((size_t)FFN * threads, sizeof(float));
    for (long i = 0; i < FFN * threads; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    printf("%d tenant adapters (%.1f MB of f16 weights), %d threads, kernel path %s; ms per decode step (median of %d)\n",
           n, 2e-6 * halves * n, threads, isa >= ATTUNE_ISA_AVX2 ? "avx2" : "scalar", ROUNDS);
    for (int v = 0; v < VARIANTS; v++) {
        double ms[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            walker w[threads];
            pthread_t id[threads];
            for (int t = 0; t < threads; t++) {
                const int first = n * t / threads, last = n * (t + 1) / threads;
                w[t] = (walker){adapters + first, last - first, (enum variant)v, isa, x + t * FFN, y + t * FFN, 0};
            }
            const double t0 = now();
            for (int t = 0; t < threads; t++) pthread_create(&id[t], NULL, walk, &w[t]);
            for (int t = 0; t < threads; t++) pthread_join(id[t], NULL);
            ms[r] = 1e3 * (now() - t0);
        }
        qsort(ms, ROUNDS, sizeof ms[0], compare);
        const double med = ms[ROUNDS / 2];
        printf("%-14s %7.2f ms  %6.1f GB/s\n", variant_names[v], med, 2e-6 * halves * n / med);
    }
    return 0;
}
