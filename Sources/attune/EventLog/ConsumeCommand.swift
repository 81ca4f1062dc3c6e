import ArgumentParser
import AttuneEventLog
import Foundation
import Synchronization

/// `attune consume`: read topics alone or in a group, from an offset or a time, optionally
/// following new records, printing text or JSON lines. SIGTERM/SIGINT leave the group cleanly.
struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Consume records from topics (like kcat -C).")

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @OptionGroup var transport: TransportOptions
    @OptionGroup var validation: ValidationOptions

    @Option(name: .shortAndLong, help: "Topic to read (repeatable).")
    var topic: [String]
    @Option(name: .shortAndLong, help: "Consumer group: partitions are shared with other members and offsets committed.")
    var group: String?
    @Option(name: .shortAndLong, help: "Only these partitions (repeatable; not with --group).")
    var partition: [Int] = []
    @Option(help: "Start at: beginning, end, stored (the group's committed offset), an offset N, or @MS (first record at or after a ms timestamp).")
    var from: String?
    @Flag(name: .shortAndLong, help: "Keep waiting for new records.")
    var follow = false
    @Option(name: .shortAndLong, help: "Stop after this many records.")
    var count: Int?
    @Option(help: "text or json (one JSON object per line).")
    var format: Format = .text
    @Flag(name: .customLong("print-rebalance"), help: "Also print group rebalances (as JSON lines with --format json).")
    var printRebalance = false
    @Option(name: .customLong("session-timeout-ms"), help: "Group session timeout.")
    var sessionTimeoutMs = 10_000
    @Flag(name: .customLong("no-commit"), help: "Do not commit offsets of a group.")
    var noCommit = false

    func validate() throws {
        if group != nil && !partition.isEmpty { throw ValidationError("--partition cannot be used with --group") }
        if let from, StartPosition(from) == nil {
            throw ValidationError("--from must be beginning, end, stored, an offset or @timestamp-ms, got \"\(from)\"")
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if partition.contains(where: { $0 < 0 }) { throw ValidationError("--partition must not be negative") }
    }

    func run() async throws {
        let stop = StopSignal()
        try await reportingErrors {
            let log = try transport.existingLog()
            let start = from.flatMap(StartPosition.init) ?? (group == nil ? .beginning : .stored)
            let printer = RecordPrinter(format: format, printRebalance: printRebalance)
            var config = ConsumerConfiguration(groupID: group)
            config.sessionTimeout = .milliseconds(sessionTimeoutMs)
            config.heartbeatInterval = .milliseconds(max(100, sessionTimeoutMs / 5))
            config.autoOffsetReset = start == .end ? .latest : .earliest
            config.properties = try transport.parsedProperties()
            let seeker = StartSeeker(start: start)
            let commit = group != nil && !noCommit
            let consumerBox = ConsumerBox()
            config.rebalanceHandler = { event in
                printer.rebalance(event)
                guard let consumer = consumerBox.consumer else { return }
                switch event {
                case .revoked:
                    if commit { try? await consumer.commit(mode: .sync) }
                case .assigned(let partitions):
                    await seeker.apply(consumer, partitions)
                }
            }
            let consumer = try log.makeConsumer(config)
            consumerBox.consumer = consumer
            let validator = try validation.catalog().map { catalog in
                ConsumedRecordValidator(catalog: catalog,
                                        deadLetters: validation.invalid == .deadLetter ? try? log.makeProducer() : nil)
            }
            do {
                if group != nil {
                    try await consumer.subscribe(topic)
                } else {
                    var partitions: [TopicPartition] = []
                    let admin = try log.makeAdmin()
                    for name in topic {
                        guard let description = try await admin.describeTopic(name) else {
                            await admin.close()
                            throw EventLogError(.unknownTopic, "no such topic: \(name)")
                        }
                        let wanted = partition.isEmpty ? Array(0..<description.partitions) : partition
                        partitions += wanted.map { TopicPartition(name, $0) }
                    }
                    await admin.close()
                    try await consumer.assign(partitions)
                    await seeker.apply(consumer, partitions)
                }
                try await loop(consumer, printer: printer, validator: validator, commit: commit, stop: stop)
            } catch {
                await consumer.close()
                throw error
            }
            await consumer.close()
        }
    }

    private func loop(_ consumer: any EventConsumer, printer: RecordPrinter, validator: ConsumedRecordValidator?,
                      commit: Bool, stop: StopSignal) async throws {
        var printed = 0
        var idleSince = ContinuousClock.now
        while !stop.stopped {
            let records = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(200))
            for record in records {
                if let count, printed >= count { break }
                do {
                    let checked: ConsumerRecord? = if let validator { try await validator.check(record) } else { record }
                    guard let valid = checked else { continue }
                    printer.record(valid)
                } catch let error as EventLogError {
                    throw EventLogError(error.kind, "\(record.topic)[\(record.partition)]@\(record.offset): \(error.message)")
                }
                printed += 1
            }
            if commit && !records.isEmpty { try await consumer.commit(mode: .async) }
            if let count, printed >= count { break }
            if !records.isEmpty {
                idleSince = .now
            } else if !follow, try await reachedEnd(consumer, idleFor: ContinuousClock.now - idleSince) {
                break
            }
        }
        if commit { try await consumer.commit(mode: .sync) }
    }

    /// Without --follow: every owned partition is read up to its high watermark (or, in a
    /// group that owns nothing yet, nothing arrived for a while).
    private func reachedEnd(_ consumer: any EventConsumer, idleFor: Duration) async throws -> Bool {
        let owned = try await consumer.assignment()
        if owned.isEmpty { return idleFor > .seconds(5) }
        for tp in owned {
            let high = try await consumer.watermarks(tp).high
            guard let position = try await consumer.position(tp) else {
                if high == 0 || idleFor > .seconds(2) { continue }
                return false
            }
            if position < high { return false }
        }
        return true
    }
}

/// Where `attune consume` starts reading.
enum StartPosition: Equatable {
    case beginning, end, stored
    case offset(Int64)
    case timestamp(Int64)

    init?(_ text: String) {
        switch text {
        case "beginning": self = .beginning
        case "end": self = .end
        case "stored": self = .stored
        default:
            if text.hasPrefix("@"), let ms = Int64(text.dropFirst()), ms >= 0 {
                self = .timestamp(ms)
            } else if let offset = Int64(text), offset >= 0 {
                self = .offset(offset)
            } else {
                return nil
            }
        }
    }
}

/// Moves newly assigned partitions to the requested start, once per partition.
actor StartSeeker {
    private let start: StartPosition
    private var done: Set<TopicPartition> = []

    init(start: StartPosition) { self.start = start }

    func apply(_ consumer: any EventConsumer, _ partitions: [TopicPartition]) async {
        let fresh = partitions.filter { !done.contains($0) }
        done.formUnion(fresh)
        guard !fresh.isEmpty else { return }
        do {
            switch start {
            case .stored: return
            case .beginning: try await consumer.seekToBeginning(fresh)
            case .end: try await consumer.seekToEnd(fresh)
            case .offset(let offset): for tp in fresh { try await consumer.seek(tp, to: offset) }
            case .timestamp(let ms): try await consumer.seek(toTimestamp: ms, fresh)
            }
        } catch {
            FileHandle.standardError.write(Data("attune consume: cannot seek \(fresh): \(error)\n".utf8))
        }
    }
}

/// Lets the rebalance handler reach the consumer created after it.
final class ConsumerBox: Sendable {
    private let stored = Mutex<(any EventConsumer)?>(nil)
    var consumer: (any EventConsumer)? {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}

/// Prints records and rebalances as text or JSON lines.
struct RecordPrinter: Sendable {
    let format: ConsumeCommand.Format
    let printRebalance: Bool

    func record(_ record: ConsumerRecord) {
        switch format {
        case .text:
            let key = record.key.map { String(decoding: $0, as: UTF8.self) } ?? ""
            let value = record.value.map { String(decoding: $0, as: UTF8.self) } ?? ""
            emit("\(record.topic)[\(record.partition)]@\(record.offset)\t\(key)\t\(value)")
        case .json:
            var object: [String: JSONValue] = [
                "topic": .string(record.topic), "partition": .integer(Int64(record.partition)),
                "offset": .integer(record.offset), "timestamp": .integer(record.timestamp),
            ]
            Self.put(record.key, "key", into: &object)
            Self.put(record.value, "value", into: &object)
            object["headers"] = .array(record.headers.map { header in
                var entry: [String: JSONValue] = ["name": .string(header.name)]
                Self.put(header.value, "value", into: &entry)
                return .object(entry)
            })
            emit(Self.json(.object(object)))
        }
    }

    func rebalance(_ event: RebalanceEvent) {
        guard printRebalance else { return }
        let (name, partitions): (String, [TopicPartition]) = switch event {
        case .assigned(let tps): ("assigned", tps)
        case .revoked(let tps): ("revoked", tps)
        }
        switch format {
        case .text:
            emit("# \(name) \(partitions.map(\.description).joined(separator: " "))")
        case .json:
            emit(Self.json(.object([
                "event": .string(name),
                "partitions": .array(partitions.map { .object(["topic": .string($0.topic), "partition": .integer(Int64($0.partition))]) }),
            ])))
        }
    }

    /// UTF-8 bytes as `name`, other bytes base64-encoded as `name_base64`, null as JSON null.
    private static func put(_ bytes: [UInt8]?, _ name: String, into object: inout [String: JSONValue]) {
        guard let bytes else {
            object[name] = .null
            return
        }
        if let text = String(validating: bytes, as: UTF8.self) {
            object[name] = .string(text)
        } else {
            object[name + "_base64"] = .string(Data(bytes).base64EncodedString())
        }
    }

    private static func json(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
