/// Picks one backend by weight, then one endpoint uniformly: the Gateway API `backendRefs` semantics.
public enum BackendChoice: Equatable, Sendable {
    case endpoint(UpstreamEndpoint)
    /// Answer with this status instead (500 for an unresolved backendRef, 503 for one without endpoints).
    case status(Int)

    /// Chooses for a forward decision. `random(n)` returns a uniform value in `0..<n` (injectable for tests).
    /// `avoiding` is skipped when another endpoint of the chosen backend exists (used by the retry).
    public static func choose(
        from backends: [WeightedUpstream], avoiding: UpstreamEndpoint? = nil,
        random: (UInt64) -> UInt64 = { UInt64.random(in: 0..<$0) }
    ) -> BackendChoice {
        let total = backends.reduce(UInt64(0)) { $0 + UInt64($1.weight) }
        // No backend, or all weights 0: the Gateway API answers 500.
        guard total > 0 else { return .status(500) }
        // A draw from 0..<1 is always 0: no draw (the common single-backend, single-endpoint route).
        var ticket = total > 1 ? random(total) : 0
        for backend in backends where backend.weight > 0 {
            if ticket < UInt64(backend.weight) {
                switch backend.target {
                case .status(let code):
                    return .status(code)
                case .endpoints(let endpoints):
                    guard !endpoints.isEmpty else { return .status(503) }
                    var candidates = endpoints
                    if let avoiding, candidates.count > 1 { candidates.removeAll { $0 == avoiding } }
                    return .endpoint(candidates.count == 1 ? candidates[0] : candidates[Int(random(UInt64(candidates.count)))])
                }
            }
            ticket -= UInt64(backend.weight)
        }
        return .status(500)
    }
}
