import ArgumentParser
import AttuneEventLog
import Foundation

/// `attune produce`: one record from `--value`/`--file`, or one per standard-input line.
struct ProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Produce records to a topic (values from --value, --file or standard input lines).")

    @OptionGroup var transport: TransportOptions
    @OptionGroup var validation: ValidationOptions

    @Option(name: .shortAndLong, help: "Topic to produce to.")
    var topic: String
    @Option(name: .shortAndLong, help: "Record key (all records).")
    var key: String?
    @Option(name: .customShort("K"), help: "Split each input line at the first occurrence of this delimiter into key and value.")
    var keyDelimiter: String?
    @Option(name: .shortAndLong, help: "Partition (default: murmur2 of the key).")
    var partition: Int?
    @Option(name: .customLong("header"), help: ArgumentHelp("Header name=value; name:hex=00ff for binary; name alone for null.", valueName: "header"))
    var headers: [String] = []
    @Option(help: "Create timestamp in ms since the epoch (default: now).")
    var timestamp: Int64?
    @Option(help: "The value of a single record.")
    var value: String?
    @Option(help: "Send this file's bytes as a single record.")
    var file: String?
    @Option(name: .customLong("batch"), help: "Records per produce batch when reading standard input.")
    var batchSize = 1000

    func validate() throws {
        if value != nil && file != nil { throw ValidationError("use --value or --file, not both") }
        if batchSize < 1 { throw ValidationError("--batch must be at least 1") }
        if let keyDelimiter, keyDelimiter.isEmpty { throw ValidationError("-K needs a non-empty delimiter") }
    }

    func run() async throws {
        let parsedHeaders = try headers.map(parseHeader)
        try await reportingErrors {
            let log = try transport.makeLog()
            var producer = try log.makeProducer()
            if let catalog = try validation.catalog() {
                producer = ValidatingProducer(producer, catalog: catalog, policy: validation.invalid)
            }
            func record(key: String?, value: [UInt8]) -> ProducerRecord {
                ProducerRecord(topic: topic, partition: partition, key: key.map { Array($0.utf8) }, value: value,
                               headers: parsedHeaders, timestamp: timestamp)
            }
            var sent = 0
            do {
                if let value {
                    try await report(producer.send(record(key: key, value: Array(value.utf8))))
                    sent = 1
                } else if let file {
                    let data = try contentsOfFile(file)
                    try await report(producer.send(record(key: key, value: Array(data))))
                    sent = 1
                } else {
                    var batch: [ProducerRecord] = [], inFlight = InFlightBatches(producer)
                    func submit() async throws {
                        try await inFlight.submit(batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                    while let line = readLine(strippingNewline: true) {
                        if let delimiter = keyDelimiter, let range = line.range(of: delimiter) {
                            batch.append(record(key: String(line[..<range.lowerBound]), value: Array(line[range.upperBound...].utf8)))
                        } else {
                            batch.append(record(key: key, value: Array(line.utf8)))
                        }
                        if batch.count >= batchSize { try await submit() }
                    }
                    try await submit()
                    sent = try await inFlight.finish()
                    FileHandle.standardError.write(Data("produced \(sent) records to \(topic)\n".utf8))
                }
            } catch {
                await producer.close()
                throw error
            }
            await producer.close()
        }
    }

    private func report(_ metadata: RecordMetadata) {
        emit("\(metadata.topic)[\(metadata.partition)]@\(metadata.offset)")
    }
}
