/// An endless sequence of a consumer's records; it ends when the consuming task is
/// cancelled or the consumer is closed, and throws on other failures.
public struct ConsumerRecords: AsyncSequence, Sendable {
    public typealias Element = ConsumerRecord
    let consumer: any EventConsumer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: any EventConsumer
        var buffer: [ConsumerRecord] = []
        var index = 0

        public mutating func next() async throws -> ConsumerRecord? {
            while index == buffer.count {
                if Task.isCancelled { return nil }
                do {
                    buffer = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(200))
                } catch let error as EventLogError where error.kind == .closed {
                    return nil
                }
                index = 0
            }
            defer { index += 1 }
            return buffer[index]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
}
