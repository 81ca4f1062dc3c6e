// Run-time CPU feature detection for the kernel dispatch.
#include "attune_kernels.h"

#include <cpuid.h>
#include <stddef.h>

static uint64_t xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

attune_isa attune_cpu_isa(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return ATTUNE_ISA_SCALAR;
    const int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!(osxsave && avx && fma && f16c)) return ATTUNE_ISA_SCALAR;
    const uint64_t xcr = xcr0();
    if ((xcr & 0x6) != 0x6) return ATTUNE_ISA_SCALAR;  // XMM and YMM state saved by the OS
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return ATTUNE_ISA_SCALAR;
    const int avx2 = (b >> 5) & 1;
    if (!avx2) return ATTUNE_ISA_SCALAR;
    const int avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    const int vnni = (c >> 11) & 1;
    const int zmmState = (xcr & 0xE0) == 0xE0;  // opmask, upper ZMM0-15, ZMM16-31
    if (avx512f && avx512bw && avx512vl && vnni && zmmState) return ATTUNE_ISA_AVX512_VNNI;
    return ATTUNE_ISA_AVX2;
}

int attune_cpu_splits_512(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    const int amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned family = (a >> 8) & 0xF;
    if (family == 0xF) family += (a >> 20) & 0xFF;
    // Zen 4; Zen 3, the same family, has no AVX-512.
    return amd && family == 0x19 && attune_cpu_isa() == ATTUNE_ISA_AVX512_VNNI;
}

const char *attune_openblas_core_for_cpu(void) {
    unsigned a, b, c, d;
    if (attune_cpu_isa() == ATTUNE_ISA_SCALAR) return NULL;  // no AVX2 + FMA with YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return NULL;
    const int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512cd = (b >> 28) & 1;
    const int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    const int zmmState = (xcr0() & 0xE0) == 0xE0;
    if (avx512f && avx512dq && avx512cd && avx512bw && avx512vl && zmmState) return "SkylakeX";
    return "Haswell";
}
