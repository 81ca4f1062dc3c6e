import AttuneEventLog
import AttuneRegistry

/// When a micro-batch closes.
struct BatchWindow {
    /// Close once the batch holds this many tokens…
    var tokens: Int
    /// …or its first record has waited this long…
    var seconds: Double
    /// …or, once the worker has read everything there is (it is caught up), its first record
    /// has waited this long: an idle worker trains a record at once (0), a busy one lets its
    /// batches grow while it trains others.
    var lingerSeconds: Double = 0
    /// A new tenant waits this long for a domain adapter to stand on.
    var domainWaitSeconds: Double
    /// A batch the gate rejected retries after this long without new data.
    var gateRetrySeconds: Double
}

/// The records waiting to be trained, one micro-batch per adapter.
struct PendingBatch {
    var items: [WorkItem] = []
    var opened: ContinuousClock.Instant
    /// Set when the gate rejected this batch: the item count then; it retries when new data
    /// arrives or `gateRetrySeconds` have passed.
    var rejectedAt: Int?
    var rejections = 0
    var lastReason = ""

    var tokens: Int { items.reduce(0) { $0 + $1.example.tokens.count } }

    /// Whether the batch should train now: it holds enough tokens, is old enough, or has
    /// lingered long enough while the worker is caught up (`flush`: the worker is idle); a
    /// rejected batch waits for new data or its retry time; a new tenant's batch waits for a
    /// domain (`waitingForDomain`) up to the domain wait — on an idle worker too while a batch
    /// that will publish that domain is queued (`domainPending`).
    func isReady(_ window: BatchWindow, now: ContinuousClock.Instant, flush: Bool, caughtUp: Bool = false,
                 waitingForDomain: Bool, domainPending: Bool = false) -> Bool {
        guard !items.isEmpty else { return false }
        let age = (now - opened).seconds
        if let rejectedAt { return rejectedAt < items.count || age >= window.gateRetrySeconds }
        if waitingForDomain && (!flush || domainPending) && age < window.domainWaitSeconds { return false }
        return flush || tokens >= window.tokens || age >= window.seconds || (caughtUp && age >= window.lingerSeconds)
    }

    /// The oldest items holding at most `tokens` tokens (always at least one): what one
    /// version trains when a burst is larger than a batch may be.
    func leading(tokens budget: Int) -> [WorkItem] {
        var taken = 0, count = 0
        for item in items {
            let t = item.example.tokens.count
            if count > 0 && taken + t > budget { break }
            taken += t
            count += 1
        }
        return Array(items.prefix(count))
    }
}

/// The pending micro-batches of every adapter, keyed by adapter name.
struct BatchQueue {
    private(set) var batches: [AdapterName: PendingBatch] = [:]

    /// Queues an item; false if the same input is already queued.
    @discardableResult
    mutating func add(_ item: WorkItem, now: ContinuousClock.Instant) -> Bool {
        var b = batches[item.adapter] ?? PendingBatch(opened: now)
        guard !b.items.contains(where: { $0.source == item.source && $0.offset == item.offset }) else { return false }
        if b.items.isEmpty { b.opened = now }
        b.items.append(item)
        batches[item.adapter] = b
        return true
    }

    subscript(name: AdapterName) -> PendingBatch? { batches[name] }

    var isEmpty: Bool { batches.isEmpty }

    /// The adapter whose ready batch opened first (by name among equals), so no tenant
    /// waits behind others that keep receiving records.
    func next(_ window: BatchWindow, now: ContinuousClock.Instant, flush: Bool, caughtUp: Bool = false,
              waitingForDomain: (AdapterName) -> Bool, domainPending: (AdapterName) -> Bool = { _ in false }) -> AdapterName? {
        batches.filter { name, batch in
            batch.isReady(window, now: now, flush: flush, caughtUp: caughtUp, waitingForDomain: waitingForDomain(name),
                          domainPending: domainPending(name))
        }.min { a, b in a.value.opened != b.value.opened ? a.value.opened < b.value.opened : a.key < b.key }?.key
    }

    /// Marks the batch of `name` rejected by the gate; it waits for new data or its retry time.
    mutating func rejected(_ name: AdapterName, reason: String, now: ContinuousClock.Instant) {
        guard var b = batches[name] else { return }
        b.rejectedAt = b.items.count
        b.rejections += 1
        b.lastReason = reason
        b.opened = now
        batches[name] = b
    }

    /// Whether every batch waits after a rejection (nothing is ready to train on new data).
    var allRejected: Bool { batches.values.allSatisfy { $0.rejectedAt != nil } }

    @discardableResult
    mutating func remove(_ name: AdapterName) -> PendingBatch? { batches.removeValue(forKey: name) }

    /// Removes the trained `items` from the batch of `name`; the rest stays queued as if it
    /// arrived `now` (behind the other adapters' waiting batches, so one tenant's burst does not
    /// hold the others up), and the batch's rejection record is cleared (its trained part passed).
    mutating func remove(_ trained: [WorkItem], of name: AdapterName, now: ContinuousClock.Instant) {
        guard var b = batches[name] else { return }
        let done = Set(trained.map { PendingKey(source: $0.source, offset: $0.offset) })
        b.items.removeAll { done.contains(PendingKey(source: $0.source, offset: $0.offset)) }
        b.rejectedAt = nil
        b.rejections = 0
        b.lastReason = ""
        b.opened = now
        batches[name] = b.items.isEmpty ? nil : b
    }

    private struct PendingKey: Hashable {
        let source: TopicPartition
        let offset: Int64
    }

    /// Removes items (of lost partitions, or inputs a published version covers) from the batches
    /// of `names` (all when nil); a rejection mark stays within the remaining count.
    mutating func removeItems(of names: [AdapterName]? = nil, where drop: (WorkItem) -> Bool) {
        for name in names ?? Array(batches.keys) {
            guard var b = batches[name] else { continue }
            b.items.removeAll(where: drop)
            b.rejectedAt = b.rejectedAt.map { min($0, b.items.count) }
            batches[name] = b.items.isEmpty ? nil : b
        }
    }

    /// The batches the gate rejected `limit` times or more.
    func exhausted(after limit: Int) -> [(name: AdapterName, batch: PendingBatch)] {
        batches.filter { $0.value.rejections >= limit }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The lowest queued offset per partition: the commit must stay below it.
    var lowestOffsets: [TopicPartition: Int64] {
        var out: [TopicPartition: Int64] = [:]
        for b in batches.values {
            for item in b.items { out[item.source] = min(out[item.source] ?? item.offset, item.offset) }
        }
        return out
    }
}
