// What the kernel benchmarks (panels.c, decode_kernel.c) share: a clock, the CPU path to time,
// and matrices of Q4_1 blocks with random nibbles and plausible scales.
#ifndef ATTUNE_KERNEL_BENCH_H
#define ATTUNE_KERNEL_BENCH_H

#include "attune_kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { Q4_1_BLOCK_BYTES = 20 };

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

/// `bytes` of Q4_1 blocks: random nibbles, half scales d in [2⁻⁴, 2⁻³), offsets in (−2⁻², −2⁻³].
static uint8_t *random_q4_1(long bytes) {
    uint8_t *w = malloc(bytes);
    uint32_t s = 1;
    for (long i = 0; i < bytes; i++) w[i] = (uint8_t)((s = s * 1664525u + 1013904223u) >> 24);
    for (long i = 0; i < bytes; i += Q4_1_BLOCK_BYTES) {
        const long b = i / Q4_1_BLOCK_BYTES;
        const uint16_t dm[2] = {(uint16_t)(0x2c00 + b % 1024), (uint16_t)(0xb000 + b % 1024)};
        memcpy(w + i, dm, 4);
    }
    return w;
}

#endif
