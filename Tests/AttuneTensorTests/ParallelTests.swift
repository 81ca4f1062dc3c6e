import Synchronization
import Testing
@testable import AttuneTensor

/// Both fan-outs cover `0..<count` exactly once, in ranges that start on a granule boundary,
/// whatever the count, granule and minimum share (inline, partial last granule, more workers
/// than granules).
@Test(arguments: [(0, 1, 1), (1, 1, 1), (7, 3, 1), (100, 1, 64), (257, 24, 64), (1000, 16, 8), (5000, 7, 2)])
func fanOutsCoverEveryIndexOnce(count: Int, granule: Int, minimum: Int) {
    let chunkHits = Mutex([Int](repeating: 0, count: count)), pieceHits = Mutex([Int](repeating: 0, count: count))
    let misaligned = Atomic(0)
    func record(_ hits: borrowing Mutex<[Int]>, _ range: Range<Int>) {
        if range.lowerBound % granule != 0 { misaligned.add(1, ordering: .relaxed) }
        hits.withLock { for i in range { $0[i] += 1 } }
    }
    Parallel.chunks(count, granule: granule, minPerChunk: minimum) { record(chunkHits, $0) }
    Parallel.pieces(count, granule: granule, minPerPiece: minimum) { record(pieceHits, $0) }
    #expect(chunkHits.withLock { $0 } == [Int](repeating: 1, count: count))
    #expect(pieceHits.withLock { $0 } == [Int](repeating: 1, count: count))
    #expect(misaligned.load(ordering: .relaxed) == 0)
}
