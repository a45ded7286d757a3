/// Map operations of one sync, per map.
public struct MapOpCounts: Hashable, Sendable {
    public var updates: Int = 0
    public var deletes: Int = 0

    public init(updates: Int = 0, deletes: Int = 0) {
        self.updates = updates
        self.deletes = deletes
    }
}

/// A frontend (or a map-wide step) the writer could not program; what was there before stays.
public struct SyncFailure: Hashable, Sendable, CustomStringConvertible {
    /// "10.0.0.1:80/TCP", or the step ("prune reverse NAT") for map-wide work.
    public var subject: String
    public var error: BPFMapError

    public init(subject: String, error: BPFMapError) {
        self.subject = subject
        self.error = error
    }

    public var description: String { "\(subject): \(error)" }
}

/// What one `MapWriter.sync` did: for the agent's one log line and for tests.
public struct SyncSummary: Hashable, Sendable, CustomStringConvertible {
    /// IPv4 frontends in the desired state.
    public var frontends = 0
    /// Distinct backends the desired frontends use.
    public var backends = 0
    public var added = 0
    public var updated = 0
    public var removed = 0
    /// Map operations actually made, per map.
    public var operations: [MapKind: MapOpCounts] = [:]
    public var failures: [SyncFailure] = []
    /// Desired entries the datapath cannot hold (IPv6), as "what: why".
    public var skipped: [String] = []
    public var duration: Duration = .zero

    public init() {}

    /// Updates over all maps.
    public var writes: Int { operations.values.reduce(0) { $0 + $1.updates } }
    /// Deletes over all maps.
    public var deletes: Int { operations.values.reduce(0) { $0 + $1.deletes } }

    public subscript(kind: MapKind) -> MapOpCounts { operations[kind] ?? MapOpCounts() }

    /// One line: "12 frontends, 30 backends: +1 ~2 -0; services 5w/1d, backends 2w/0d, reverse NAT 1w/0d; 0 failures; 1.2ms".
    public var description: String {
        let ops = [MapKind.services, .backends, .reverseNAT].map { kind in
            "\(kind.pinName) \(self[kind].updates)w/\(self[kind].deletes)d"
        }.joined(separator: ", ")
        var line = "\(frontends) frontends, \(backends) backends: +\(added) ~\(updated) -\(removed); \(ops); "
            + "\(failures.count) failures; \(formatDuration(duration))"
        if !skipped.isEmpty { line += "; \(skipped.count) skipped" }
        return line
    }
}

func formatDuration(_ d: Duration) -> String {
    let (seconds, attoseconds) = d.components
    let micros = Double(seconds) * 1_000_000 + Double(attoseconds) / 1e12
    if micros < 1000 { return "\(Int(micros.rounded()))µs" }
    let ms = micros / 1000
    if ms < 1000 { return "\((ms * 10).rounded() / 10)ms" }
    return "\((ms / 10).rounded() / 100)s"
}
