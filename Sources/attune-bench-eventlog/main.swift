import AttuneEventLog
import Foundation

/// Produce/consume throughput of the embedded log, the Kafka client and kcat, side by side.
///
///     attune-bench-eventlog [--bootstrap HOST:PORT] [--repeat N] [--small N] [--large N] [--sides embedded,kafka,kcat]
///                           [--consumer-property KEY=VALUE]…
///
/// Without a bootstrap address (flag or ATTUNE_KAFKA_BOOTSTRAP) only the embedded log runs.
struct Options {
    var bootstrap = ProcessInfo.processInfo.environment["ATTUNE_KAFKA_BOOTSTRAP"]
    var repeats = 3
    var smallCount = 200_000
    var largeCount = 3_000
    var batch = 10_000
    var partitions = 3
    var sides: Set<String> = ["embedded", "kafka", "kcat"]
    /// librdkafka properties of the Kafka client's consumer, over `kafkaConsumerProperties`.
    var consumerProperties = kafkaConsumerProperties

    init(_ arguments: [String]) throws {
        var rest = arguments.makeIterator()
        while let flag = rest.next() {
            guard let value = rest.next() else { throw BenchError("\(flag) needs a value") }
            switch flag {
            case "--bootstrap": bootstrap = value
            case "--repeat": repeats = try Self.positive(flag, value)
            case "--small": smallCount = try Self.positive(flag, value)
            case "--large": largeCount = try Self.positive(flag, value)
            case "--batch": batch = try Self.positive(flag, value)
            case "--sides": sides = Set(value.split(separator: ",").map(String.init))
            case "--consumer-property":
                let parts = value.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty else { throw BenchError("\(flag) needs KEY=VALUE, got \(value)") }
                consumerProperties[parts[0]] = parts[1]
            default: throw BenchError("unknown option \(flag)")
            }
        }
    }

    static func positive(_ flag: String, _ value: String) throws -> Int {
        guard let n = Int(value), n > 0 else { throw BenchError("\(flag) needs a positive integer, got \(value)") }
        return n
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct Measurement {
    var produceSeconds: Double
    var consumeSeconds: Double
}

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// Printable payload of `size` bytes (kcat reads newline-delimited input).
func payload(_ size: Int) -> [UInt8] {
    (0..<size).map { UInt8(0x61 + $0 % 26) }
}

/// Consumer settings both Kafka sides use. noida-db answers a fetch with more than
/// `fetch.max.bytes`, so the receive limit is raised above librdkafka's 100 MB default.
let kafkaConsumerProperties = ["fetch.wait.max.ms": "10", "receive.message.max.bytes": "1000000000"]

/// Pause between producing and consuming, so each consume starts from a settled broker.
let settle = Duration.seconds(1)

func runClient(_ log: any EventLog, count: Int, size: Int, options: Options) async throws -> Measurement {
    let topic = "bench-\(log.transportName)-\(size)-\(UUID().uuidString.prefix(8))"
    let admin = try log.makeAdmin()
    try await admin.createTopic(TopicSpec(name: topic, partitions: options.partitions,
                                          configs: ["max.message.bytes": "1048588"]))
    for _ in 0..<50 where try await admin.describeTopic(topic) == nil { try await Task.sleep(for: .milliseconds(100)) }
    await admin.close()
    let value = payload(size)
    let producer = try log.makeProducer()
    let produce = try await seconds {
        // As `attune produce` sends: up to four batches in flight, each acknowledged in full.
        var submitted = 0, inFlight = InFlightBatches(producer)
        while submitted < count {
            let n = min(options.batch, count - submitted)
            try await inFlight.submit((0..<n).map { _ in ProducerRecord(topic: topic, value: value) })
            submitted += n
        }
        _ = try await inFlight.finish()
    }
    await producer.close()
    try await Task.sleep(for: settle)
    var config = ConsumerConfiguration()
    config.properties = log.transportName == "kafka" ? options.consumerProperties : [:]
    let consumer = try log.makeConsumer(config)
    try await consumer.assign((0..<options.partitions).map { TopicPartition(topic, $0) })
    let consume = try await seconds {
        var received = 0
        var lastProgress = ContinuousClock.now
        while received < count {
            let n = try await consumer.poll(maxRecords: options.batch, timeout: .seconds(1)).count
            received += n
            if n > 0 { lastProgress = .now }
            if ContinuousClock.now - lastProgress > .seconds(60) {
                throw BenchError("\(log.transportName): consumed \(received) of \(count) records, then nothing for 60 s")
            }
        }
    }
    await consumer.close()
    return Measurement(produceSeconds: produce, consumeSeconds: consume)
}

/// kcat against the same broker with the same producer settings as the Kafka client.
func runKcat(bootstrap: String, count: Int, size: Int, options: Options) async throws -> Measurement {
    let log = KafkaEventLog(KafkaConfiguration(bootstrapServers: [bootstrap]))
    let topic = "bench-kcat-\(size)-\(UUID().uuidString.prefix(8))"
    let admin = try log.makeAdmin()
    try await admin.createTopic(TopicSpec(name: topic, partitions: options.partitions, configs: ["max.message.bytes": "1048588"]))
    await admin.close()
    let input = NSTemporaryDirectory() + "\(topic).txt"
    var line = payload(size - 1)
    line.append(0x0a)
    guard FileManager.default.createFile(atPath: input, contents: nil) else { throw BenchError("cannot create \(input)") }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: input))
    var chunk: [UInt8] = []
    for _ in 0..<count {
        chunk += line
        if chunk.count > 8 << 20 { handle.write(Data(chunk)); chunk.removeAll(keepingCapacity: true) }
    }
    handle.write(Data(chunk))
    try handle.close()
    defer { try? FileManager.default.removeItem(atPath: input) }
    let common = ["-b", bootstrap, "-t", topic, "-X", "enable.idempotence=true", "-X", "linger.ms=5",
                  "-X", "partitioner=murmur2_random", "-X", "message.max.bytes=16777216"]
    let produce = try await seconds { try run("kcat", ["-P", "-l"] + common + [input]) }
    try await Task.sleep(for: settle)
    let consume = try await seconds {
        try run("kcat", ["-C", "-e", "-q", "-o", "beginning", "-c", String(count), "-b", bootstrap, "-t", topic, "-f", "%o\n"]
                + kafkaConsumerProperties.sorted(by: { $0.key < $1.key }).flatMap { ["-X", "\($0.key)=\($0.value)"] })
    }
    return Measurement(produceSeconds: produce, consumeSeconds: consume)
}

func run(_ tool: String, _ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    process.waitUntilExit()
    if process.terminationStatus != 0 { throw BenchError("\(tool) exited with \(process.terminationStatus)") }
}

/// Prints a line at once (output may go to a pipe or log file).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func pad(_ text: String, _ width: Int) -> String {
    text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0)
}

func label(_ size: Int) -> String { size == 200 ? "200B" : "64KiB" }

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func main() async throws {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    let directory = NSTemporaryDirectory() + "attune-bench-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var sides: [(String, (Int, Int) async throws -> Measurement)] = [
        ("embedded", { try await runClient(EmbeddedEventLog(directory: directory), count: $0, size: $1, options: options) }),
    ]
    sides.removeAll { !options.sides.contains($0.0) }
    if let bootstrap = options.bootstrap {
        let kafka = KafkaEventLog(KafkaConfiguration(bootstrapServers: [bootstrap]))
        if options.sides.contains("kafka") {
            sides.append(("kafka", { try await runClient(kafka, count: $0, size: $1, options: options) }))
        }
        if options.sides.contains("kcat") {
            sides.append(("kcat", { try await runKcat(bootstrap: bootstrap, count: $0, size: $1, options: options) }))
        }
    }
    say("records: \(options.smallCount) × 200 B and \(options.largeCount) × 64 KiB, \(options.partitions) partitions, " +
          "batches of \(options.batch), median of \(options.repeats) runs (sides alternated)")
    say("side       size    produce msg/s  produce MB/s   consume msg/s  consume MB/s")
    for (count, size) in [(options.smallCount, 200), (options.largeCount, 64 * 1024)] {
        var results: [String: [Measurement]] = [:]
        for round in 0..<options.repeats {
            let order = round % 2 == 0 ? sides : sides.reversed()
            for (name, side) in order { results[name, default: []].append(try await side(count, size)) }
        }
        var medians: [String: (Double, Double)] = [:]
        for (name, _) in sides {
            let runs = results[name] ?? []
            let produce = Double(count) / median(runs.map(\.produceSeconds))
            let consume = Double(count) / median(runs.map(\.consumeSeconds))
            medians[name] = (produce, consume)
            let mb = Double(size) / 1e6
            say(pad(name, 9) + " " + pad(label(size), 6) + String(format: "  %14.0f %13.1f  %14.0f %13.1f",
                                                                   produce, produce * mb, consume, consume * mb))
        }
        if let kafka = medians["kafka"], let kcat = medians["kcat"] {
            say("kafka/kcat " + pad(label(size), 6) + String(format: "  produce %.0f%%  consume %.0f%%",
                                                                   100 * kafka.0 / kcat.0, 100 * kafka.1 / kcat.1))
        }
    }
}

do {
    try await main()
} catch {
    FileHandle.standardError.write(Data("attune-bench-eventlog: \(error)\n".utf8))
    exit(1)
}
