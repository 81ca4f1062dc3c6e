import ArgumentParser
import AttuneModel
import AttuneTraining
import Foundation

/// `attune bench personalization`: a domain LoRA adapter trained on a domain corpus, then a tenant
/// LoRA adapter trained on the tenant's interactions over the frozen domain adapter; prints the
/// held-out losses of the base model, base + domain and base + domain + tenant.
struct BenchPersonalizationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "personalization",
        abstract: "Measure personalization: base vs domain adapter vs domain + tenant adapter on the tenant's held-out data.")

    @Option(help: "GGUF base model (default: $ATTUNE_MODEL, else the fetched base model).") var model: String?
    @Option(help: "Domain corpus (.jsonl, text file or folder).") var domain: String
    @Option(help: "Tenant interactions (.jsonl of {\"prompt\", \"response\"}).") var tenant: String
    @Option(help: "Optimizer steps per stage.") var steps = 25
    @Option var seqLen = 128
    @Option var batchSize = 4
    @Option var lr: Float = 1e-3
    @Option(help: "LoRA rank of both adapters (alpha = 2 × rank).") var rank = 8

    func validate() throws {
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        guard seqLen > 1 else { throw ValidationError("--seq-len must be at least 2, got \(seqLen)") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard lr > 0, lr < 1 else { throw ValidationError("--lr must be in (0, 1), got \(lr)") }
        guard (1...1024).contains(rank) else { throw ValidationError("--rank must be in 1…1024, got \(rank)") }
    }

    func run() throws {
        let stages = try StagedTraining(model: model, steps: steps, seqLen: seqLen, batchSize: batchSize, lr: lr)
        let base = stages.base
        let d = try stages.split(domain), t = try stages.split(tenant)
        guard t.held.allSatisfy({ $0.learn.contains(false) }) else {
            throw ValidationError("--tenant must hold interactions ({\"prompt\", \"response\"} lines), not corpus text")
        }
        let heldTenant = stages.dataset(t.held), heldDomain = stages.dataset(d.held)
        func evaluate(_ name: String, _ m: TrainableLlama) -> (String, tenant: (loss: Double, perplexity: Double), domain: (loss: Double, perplexity: Double)) {
            (name, Trainer.evaluate(m, heldTenant), Trainer.evaluate(m, heldDomain))
        }
        let config = LoRAConfig(rank: rank, alpha: Float(2 * rank))
        let domainLoRA = try LoRAAdapter(config: config, model: base.config, seed: 1)
        let domainModel = try TrainableLlama(base: base, lora: domainLoRA)
        let untrained = evaluate("base", domainModel)  // B starts at zero: the base model alone
        try stages.train(domainModel, d.train)
        let domainOnly = evaluate("domain", domainModel)
        let personalModel = try TrainableLlama(base: base, lora: try LoRAAdapter(config: config, model: base.config, seed: 2), frozen: domainLoRA)
        try stages.train(personalModel, t.train)
        let personal = evaluate("personalized", personalModel)

        print("domain corpus: \(d.train.count) trained, \(d.held.count) held out; tenant interactions: \(t.train.count) trained, \(t.held.count) held out")
        print("model          tenant held-out: loss  perplexity   domain held-out: loss  perplexity")
        for r in [untrained, domainOnly, personal] {
            print(r.0.padding(toLength: 14, withPad: " ", startingAt: 0)
                  + String(format: " %21.4f %11.2f %22.4f %11.2f", r.tenant.loss, r.tenant.perplexity, r.domain.loss, r.domain.perplexity))
        }
        let (p, m, b) = (personal.tenant.loss, domainOnly.tenant.loss, untrained.tenant.loss)
        print(String(format: "personalized < domain < base on the tenant's held-out data: %@ (%.4f %@ %.4f %@ %.4f)",
                     p < m && m < b ? "holds" : "does NOT hold", p, p < m ? "<" : "≥", m, m < b ? "<" : "≥", b))
    }
}
