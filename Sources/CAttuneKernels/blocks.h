// What the kernels share: block geometry of the stored formats, the portable half-precision
// conversion of their reference paths, full unrolling, and the AVX2 target and lane sum of their SIMD paths.
#ifndef ATTUNE_BLOCKS_H
#define ATTUNE_BLOCKS_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

enum { QK = 32, Q4_1_BYTES = 20, Q8_0_BYTES = 34 };

/// A little-endian 16-bit field at any alignment.
static inline uint16_t load_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/// A little-endian 32-bit field at any alignment.
static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/// A loop the compiler unrolls fully (its bound is a constant): its arrays stay in registers.
#define UNROLLED _Pragma("clang loop unroll(full)")

/// IEEE half → float, exact for every value (subnormals, infinities, NaN).
static inline float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000 | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        exp = 113;
        while (!(mant & 0x400)) { mant <<= 1; exp--; }
        bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/// The AVX2 level every SIMD path assumes (with FMA and F16C).
#define AVX2 __attribute__((target("avx2,fma,f16c")))

/// The sum of a vector's eight lanes, by one fixed tree.
AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
