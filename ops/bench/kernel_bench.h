// What the kernel benchmarks (panels.c, decode_kernel.c) share: a clock, the CPU path to time,
// and matrices of Q4_1 or Q8_0 blocks with random weights and plausible scales.
#ifndef ATTUNE_KERNEL_BENCH_H
#define ATTUNE_KERNEL_BENCH_H

#include "attune_kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { Q4_1_BLOCK_BYTES = 20, Q8_0_BLOCK_BYTES = 34 };

static const char *const isa_names[] = {"scalar", "avx2", "avx512vnni"};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/// The CPU's level, or a lower one named by ATTUNE_ISA (as `KernelISA.active` reads it).
static attune_isa bench_isa(void) {
    const attune_isa detected = attune_cpu_isa();
    const char *s = getenv("ATTUNE_ISA");
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, isa_names[i])) return (attune_isa)i < detected ? (attune_isa)i : detected;
    return detected;
}

/// `bytes` of random bytes with, at the start of every block of `blockBytes`, `fields` half
/// scales: d in [2⁻⁴, 2⁻³), then (Q4_1) an offset in (−2⁻², −2⁻³].
static inline uint8_t *random_blocks(long bytes, long blockBytes, int fields) {
    uint8_t *w = malloc(bytes);
    uint32_t s = 1;
    for (long i = 0; i < bytes; i++) w[i] = (uint8_t)((s = s * 1664525u + 1013904223u) >> 24);
    for (long i = 0; i < bytes; i += blockBytes) {
        const long b = i / blockBytes;
        const uint16_t dm[2] = {(uint16_t)(0x2c00 + b % 1024), (uint16_t)(0xb000 + b % 1024)};
        memcpy(w + i, dm, 2 * fields);
    }
    return w;
}

/// `bytes` of Q4_1 blocks: random nibbles and plausible scales and offsets.
static inline uint8_t *random_q4_1(long bytes) { return random_blocks(bytes, Q4_1_BLOCK_BYTES, 2); }

/// `bytes` of Q8_0 blocks: random signed bytes and plausible scales.
static inline uint8_t *random_q8_0(long bytes) { return random_blocks(bytes, Q8_0_BLOCK_BYTES, 1); }

#endif
