import Testing

/// Serializes the tests that use the one Kafka-protocol test broker of a run: consumer-group
/// joins, session timeouts and rebalances of one suite then never overlap another suite's, on
/// a loaded machine as on an idle one. Tests hold it one test case at a time, so the embedded
/// cases of the same suites still run beside the rest of the suite.
public struct SharedBrokerTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        testCase == nil ? nil : self
    }

    public func provideScope(for test: Test, testCase: Test.Case?,
                             performing function: @Sendable () async throws -> Void) async throws {
        await BrokerLock.shared.acquire()
        do {
            try await function()
        } catch {
            await BrokerLock.shared.release()
            throw error
        }
        await BrokerLock.shared.release()
    }
}

extension Trait where Self == SharedBrokerTrait {
    /// Runs each test case alone on the shared test broker (see `SharedBrokerTrait`).
    public static var sharedBroker: Self { SharedBrokerTrait() }
}

/// A first-come, first-served async mutex for the test process.
actor BrokerLock {
    static let shared = BrokerLock()
    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !held {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            held = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}
