import AttuneRegistry
import Logging

extension TrainWorker {
    /// Brings an evicted tenant's memory back from the tenant cache (no-op when it is
    /// resident) and marks it used. Returns true, for use in conditions.
    @discardableResult
    func restore(_ name: AdapterName, _ state: AdapterState) throws -> Bool {
        state.lastUsed = .now
        guard !state.isResident else { return true }
        guard let tenantCache else { preconditionFailure("\(name) evicted without a tenant cache") }
        state.memory = try tenantCache.load(name, model: base.config)
        tenantCache.remove(name)
        metrics.tenantRestores.increment()
        stats.restored += 1
        return true
    }

    /// Evicts the least recently used resident tenants (never `keeping`, never a domain) to the
    /// tenant cache until the resident tenants' memory fits `tenantMemory`.
    func enforceTenantMemory(keeping: AdapterName? = nil) throws {
        guard let budget = configuration.tenantMemory, let tenantCache else { return }
        let tenants = states.filter { $0.key.kind == .tenant }
        var resident = tenants.compactMap { name, state in state.memory.map { (name, state, $0.bytes) } }
            .sorted { $0.1.lastUsed < $1.1.lastUsed }
        var total = resident.reduce(0) { $0 + $1.2 }
        while total > budget, let i = resident.firstIndex(where: { $0.0 != keeping }) {
            let (name, state, bytes) = resident.remove(at: i)
            try tenantCache.save(state.memory!, of: name)
            state.memory = nil
            total -= bytes
            metrics.tenantEvictions.increment()
            stats.evicted += 1
            logger.debug("evicted \(name) (\(bytes) bytes) to the tenant cache", metadata: ["adapter": "\(name)"])
        }
        metrics.residentTenantBytes.record(total)
        metrics.residentTenants.record(resident.count)
        metrics.evictedTenants.record(tenants.count - resident.count)
    }
}
