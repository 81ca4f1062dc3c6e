import ArgumentParser
import AttuneEventLog
import AttuneGateway
import AttuneModel
import AttuneRegistry
import AttuneServer
import AttuneServing
import AttuneTokenizer
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

/// `attune serve`: an inference worker.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve every domain and tenant adapter's newest version over an OpenAI-style HTTP API.",
        discussion: """
        Follows attune.adapters and attune.adapter-events (every partition, no consumer group), swaps each \
        new version of an adapter in use as soon as it is announced and verified, and batches requests for \
        different adapters into the same decode steps. The gateway's routes (POST /v1/interactions, \
        POST /v1/corpora, GET /v1/events) are served on the same port; with a key file every route but \
        health, readiness, metrics and the OpenAPI document needs a key of the right tenant and role. `model` selects what serves a request: base, \
        domain/<id>, tenant/<id> (its newest version) or <name>@<version> (exactly that one). Run several \
        behind a load balancer to scale out; each follows every event. SIGTERM or SIGINT stops accepting \
        connections and lets running generations finish.
        """)

    @OptionGroup var transport: TransportOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var access: AccessOptions
    @OptionGroup var gatewayOptions: GatewayOptions

    @OptionGroup var service: ServiceOptions
    @OptionGroup var serving: ServingOptions

    func validate() throws {
        guard modelOptions.adapter.isEmpty else { throw ValidationError("--adapter does not apply to serve: requests choose adapters by model name") }
    }

    func run() async throws {
        service.bootstrapLogging()
        let logger = Logger(label: "attune.serve")
        let accessControl = try access.accessControl(host: serving.host, logger: logger)
        let (model, tokenizer) = try modelOptions.loadForServing()
        logger.info("base model loaded", metadata: ["layers": "\(model.config.layers)", "weights": "\(model.mode.rawValue)",
                                                      "prompt_activations": "\(model.prompts.rawValue)"])
        let (server, registry) = try await serving.makeServer(
            model: model, tokenizer: tokenizer, log: try transport.makeLog(), service: service, access: accessControl,
            gatewayOptions: gatewayOptions, dataDirectory: transport.stateFolder(), prometheus: PrometheusCollectorRegistry(),
            logger: logger)
        try await listening(on: serving.host, port: serving.port) {
            try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        }
        await registry.close()
        logger.info("attune serve stopped")
    }
}
