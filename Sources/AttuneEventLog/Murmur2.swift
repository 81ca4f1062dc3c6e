/// Kafka's default key partitioner hash (murmur2, seed 0x9747b28c), as the Java clients and
/// librdkafka's `murmur2_random` compute it, so a key maps to the same partition everywhere.
public enum Murmur2 {
    public static func hash(_ data: some Collection<UInt8>) -> Int32 {
        let bytes = Array(data)
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: bytes.count)
        var i = 0
        while i + 4 <= bytes.count {
            var k = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            k &*= m
            k ^= k >> r
            k &*= m
            h &*= m
            h ^= k
            i += 4
        }
        let rest = bytes.count - i
        if rest >= 3 { h ^= UInt32(bytes[i + 2]) << 16 }
        if rest >= 2 { h ^= UInt32(bytes[i + 1]) << 8 }
        if rest >= 1 {
            h ^= UInt32(bytes[i])
            h &*= m
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    /// The partition Kafka's default partitioner picks for a non-null key.
    public static func partition(forKey key: some Collection<UInt8>, partitionCount: Int) -> Int {
        precondition(partitionCount > 0, "partition count must be positive")
        let positive = UInt32(bitPattern: hash(key)) & 0x7fff_ffff
        return Int(positive) % partitionCount
    }
}
