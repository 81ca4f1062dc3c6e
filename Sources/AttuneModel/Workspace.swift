/// Activation buffers of one forward pass (`tokens` rows each).
struct Workspace {
    let x, xn, q, k, v, att, proj, gate, up: UnsafeMutablePointer<Float>

    init(tokens t: Int, dim: Int, kvDim: Int, ffnDim: Int) {
        x = .allocate(capacity: t * dim)
        xn = .allocate(capacity: t * dim)
        q = .allocate(capacity: t * dim)
        k = .allocate(capacity: t * kvDim)
        v = .allocate(capacity: t * kvDim)
        att = .allocate(capacity: t * dim)
        proj = .allocate(capacity: t * dim)
        gate = .allocate(capacity: t * ffnDim)
        up = .allocate(capacity: t * ffnDim)
    }

    func free() {
        [x, xn, q, k, v, att, proj, gate, up].forEach { $0.deallocate() }
    }
}
