import AttuneTensor
import Foundation
import Testing
@testable import AttuneTraining

/// Two AdamW steps against the update rule computed in double precision.
@Test func adamWFollowsTheDecoupledUpdateRule() {
    let config = AdamWConfig(learningRate: 0.1, beta1: 0.9, beta2: 0.99, epsilon: 1e-8, weightDecay: 0.01, clipNorm: nil)
    let opt = AdamW(config: config, parameterCount: 3)
    let p = FloatBuffer([1, -2, 0.5]), g = FloatBuffer([0.3, -0.1, 0])
    var theta: [Double] = [1, -2, 0.5], m = [0.0, 0, 0], v = [0.0, 0, 0]
    let grads: [[Double]] = [[0.3, -0.1, 0], [-0.2, 0.4, 1]]
    for (step, gs) in grads.enumerated() {
        for i in 0..<3 { g[i] = Float(gs[i]) }
        opt.update(p, g, lr: 0.1)
        for i in 0..<3 {
            m[i] = 0.9 * m[i] + 0.1 * gs[i]
            v[i] = 0.99 * v[i] + 0.01 * gs[i] * gs[i]
            let mh = m[i] / (1 - pow(0.9, Double(step + 1))), vh = v[i] / (1 - pow(0.99, Double(step + 1)))
            theta[i] -= 0.1 * (mh / (vh.squareRoot() + 1e-8) + 0.01 * theta[i])
            #expect(abs(Double(p[i]) - theta[i]) < 1e-5)
        }
    }
}

@Test func gradientClippingScalesToTheNorm() {
    let opt = AdamW(config: AdamWConfig(learningRate: 1, clipNorm: 1), parameterCount: 2)
    let g = FloatBuffer([3, 4])
    #expect(opt.update(FloatBuffer([0, 0]), g, lr: 0) == 5)
    #expect(abs(opt.m[0] - 0.1 * 0.6) < 1e-6 && abs(opt.m[1] - 0.1 * 0.8) < 1e-6)
}

@Test func scheduleWarmsUpThenDecays() {
    let s = LRSchedule(kind: .cosine, peak: 1, warmupSteps: 4, totalSteps: 14, minRatio: 0.1)
    #expect(s.rate(at: 1) == 0.25 && s.rate(at: 4) == 1)
    #expect(abs(s.rate(at: 9) - 0.55) < 1e-6)
    #expect(abs(s.rate(at: 14) - 0.1) < 1e-6)
    #expect(LRSchedule(kind: .constant, peak: 0.5, warmupSteps: 0, totalSteps: 10).rate(at: 7) == 0.5)
}
