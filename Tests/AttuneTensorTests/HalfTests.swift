import Testing
@testable import AttuneTensor

@Test func halfRoundTripsRepresentableValues() {
    for x: Float in [0, 1, -2.5, 65504, 6.1035156e-05, 0.333251953125] {
        #expect(halfToFloat(floatToHalf(x)) == x)
    }
    #expect(bfloat16ToFloat(0x3F80) == 1.0)
    #expect(bfloat16ToFloat(0xC040) == -3.0)
}
