import Testing
@testable import AttuneEventLog

@Test func murmur2MatchesKafkaTestVectors() {
    #expect(Murmur2.hash(Array("21".utf8)) == -973_932_308)
    #expect(Murmur2.hash(Array("foobar".utf8)) == -790_332_482)
    #expect(Murmur2.hash(Array("abc".utf8)) == 479_470_107)
}

@Test func partitionIsStableAndInRange() {
    for key in ["tenant-a", "tenant-b", "", "ü🙂"] {
        let p = Murmur2.partition(forKey: Array(key.utf8), partitionCount: 6)
        #expect((0..<6).contains(p))
        #expect(p == Murmur2.partition(forKey: Array(key.utf8), partitionCount: 6))
    }
}
