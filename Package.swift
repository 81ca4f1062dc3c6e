// swift-tools-version:6.0
import PackageDescription

/// Hot kernels need AVX2/FMA code generation; every machine this runs on (DESIGN.md) has it.
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"], .when(configuration: .release)),
]

let package = Package(
    name: "Attune",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "attune", targets: ["attune"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // System libraries (Debian -dev packages, resolved through pkg-config).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CRdKafka", path: "Sources/CRdKafka", pkgConfig: "rdkafka",
                       providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),

        // Model core: kernels → file formats → tokenizer → llama forward/generation.
        // Integer dot-product kernels in C: per-function target attributes let one binary pick
        // AVX-512 VNNI or AVX2 at run time, which Swift code cannot express.
        .target(name: "CAttuneKernels", cSettings: [.unsafeFlags(["-O3"], .when(configuration: .release))]),
        .target(name: "AttuneTensor", dependencies: ["CBLAS", "CAttuneKernels"], swiftSettings: kernelFlags),
        // File formats (GGUF, safetensors) parse untrusted bytes: built with bounds and overflow checks.
        .target(name: "AttuneGGUF", dependencies: ["AttuneTensor"]),
        .target(name: "AttuneTokenizer", dependencies: ["AttuneGGUF"]),
        .target(name: "AttuneModel", dependencies: ["AttuneTensor", "AttuneGGUF", "AttuneTokenizer",
                                                    .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: kernelFlags),

        // Training: adapters with a real backward pass over the frozen base, optimizer, PEFT files.
        .target(name: "AttuneTraining", dependencies: ["AttuneModel", "AttuneTensor", "AttuneGGUF", "AttuneTokenizer",
                                                       .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: kernelFlags),

        // Event log: one contract, two transports (embedded SQLite, Kafka via librdkafka).
        .target(name: "AttuneEventLog", dependencies: ["CRdKafka", "CSQLite"]),

        // Registry: adapter names, immutable releases, reading and verifying published versions.
        .target(name: "AttuneRegistry", dependencies: ["AttuneEventLog", .product(name: "Crypto", package: "swift-crypto")]),

        // Workers: continual training from the topics, publication of adapter versions.
        .target(name: "AttuneWorker", dependencies: ["AttuneTraining", "AttuneEventLog", "AttuneModel", "AttuneRegistry",
                                                     .product(name: "Crypto", package: "swift-crypto"),
                                                     .product(name: "Logging", package: "swift-log"),
                                                     .product(name: "Metrics", package: "swift-metrics")]),

        // Evaluation: likelihood and answer metrics (BLEU, chrF, EM, F1), a lineage's forgetting view, acceptance rates.
        .target(name: "AttuneEvaluation", dependencies: ["AttuneModel", "AttuneTensor", "AttuneTokenizer", "AttuneTraining",
                                                         "AttuneEventLog", "AttuneRegistry"]),

        // Serving: hot-swapped adapters, continuous batching across adapters, admission.
        .target(name: "AttuneServing", dependencies: ["AttuneRegistry", "AttuneModel", "AttuneGGUF", "AttuneTensor", "AttuneTraining", "AttuneTokenizer", "CAttuneKernels",
                                                      "AttuneEventLog", .product(name: "Logging", package: "swift-log"),
                                                      .product(name: "Metrics", package: "swift-metrics")],
                swiftSettings: kernelFlags),

        // Gateway: API keys and tenancy, interactions and corpora in over HTTP, adapter events out.
        .target(name: "AttuneGateway", dependencies: ["AttuneEventLog", "AttuneRegistry",
                                                      .product(name: "Crypto", package: "swift-crypto"),
                                                      .product(name: "Hummingbird", package: "hummingbird"),
                                                      .product(name: "HummingbirdCore", package: "hummingbird"),
                                                      .product(name: "HummingbirdTLS", package: "hummingbird"),
                                                      .product(name: "Logging", package: "swift-log"),
                                                      .product(name: "Metrics", package: "swift-metrics"),
                                                      .product(name: "Prometheus", package: "swift-prometheus"),
                                                      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                resources: [.copy("openapi.json")]),

        // HTTP API: OpenAI-style completions and chat, models, score, health, metrics.
        .target(name: "AttuneServer", dependencies: ["AttuneServing", "AttuneRegistry", "AttuneModel", "AttuneTokenizer", "AttuneGateway",
                                                     .product(name: "Hummingbird", package: "hummingbird"),
                                                     .product(name: "Logging", package: "swift-log"),
                                                     .product(name: "Metrics", package: "swift-metrics"),
                                                     .product(name: "Prometheus", package: "swift-prometheus"),
                                                     .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),

        .executableTarget(name: "attune", dependencies: [
            "AttuneModel", "AttuneTraining", "AttuneEventLog", "AttuneWorker", "AttuneRegistry", "AttuneServing", "AttuneServer", "AttuneGateway",
            "AttuneEvaluation", "AttuneTokenizer",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Yams", package: "Yams"),
        ]),

        .executableTarget(name: "attune-bench-eventlog", dependencies: ["AttuneEventLog"]),

        // Shared by the test targets: the shared-broker trait, condition waits.
        .target(name: "AttuneTestSupport", dependencies: ["AttuneEventLog", "AttuneTokenizer", "AttuneModel"], path: "Tests/AttuneTestSupport"),

        .testTarget(name: "AttuneTensorTests", dependencies: ["AttuneTensor", "CAttuneKernels", "AttuneTestSupport"], exclude: ["Golden"]),
        .testTarget(name: "AttuneGGUFTests", dependencies: ["AttuneGGUF"]),
        .testTarget(name: "AttuneTokenizerTests", dependencies: ["AttuneTokenizer", "AttuneModel"], exclude: ["Golden"]),
        .testTarget(name: "AttuneModelTests", dependencies: ["AttuneModel"], exclude: ["Golden"]),
        .testTarget(name: "AttuneTrainingTests", dependencies: ["AttuneTraining"]),
        .testTarget(name: "AttuneEventLogTests", dependencies: ["AttuneEventLog", "AttuneTestSupport"]),
        .testTarget(name: "AttuneWorkerTests", dependencies: ["AttuneWorker", "AttuneRegistry", "AttuneTestSupport",
                                                              .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "AttuneEvaluationTests", dependencies: ["AttuneEvaluation", "AttuneEventLog", "AttuneModel", "AttuneTokenizer",
                                                                  "AttuneTraining", "AttuneTestSupport"]),
        .testTarget(name: "AttuneRegistryTests", dependencies: ["AttuneRegistry", "AttuneEventLog"]),
        .testTarget(name: "AttuneGatewayTests", dependencies: ["AttuneGateway", "AttuneEventLog", "AttuneRegistry", "AttuneTestSupport",
                                                               .product(name: "Logging", package: "swift-log"),
                                                               .product(name: "Metrics", package: "swift-metrics"),
                                                               .product(name: "Hummingbird", package: "hummingbird"),
                                                               .product(name: "Prometheus", package: "swift-prometheus"),
                                                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        .testTarget(name: "AttuneServerTests", dependencies: ["AttuneServer", "AttuneGateway", "AttuneServing", "AttuneRegistry", "AttuneWorker",
                                                              "AttuneTraining", "AttuneModel", "AttuneEventLog", "AttuneTestSupport",
                                                              .product(name: "Yams", package: "Yams")]),
    ]
)
