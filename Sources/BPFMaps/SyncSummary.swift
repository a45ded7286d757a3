import LoadBalancer

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
    /// "10.0.0.1:80/TCP", "remove 10.0.0.1:80/TCP", or the step ("prune reverse NAT 7") for map-wide work.
    public var subject: String
    /// The frontend that failed (to retry it), nil for map-wide steps.
    public var frontend: Frontend?
    public var error: BPFMapError

    public init(subject: String, frontend: Frontend? = nil, error: BPFMapError) {
        self.subject = subject
        self.frontend = frontend
        self.error = error
    }

    public var description: String { "\(subject): \(error)" }
}

/// Failures of one call that share their error: one log line for all of them.
public struct SyncFailureGroup: Hashable, Sendable, CustomStringConvertible {
    /// The error (the first one seen of its `cause`).
    public var error: BPFMapError
    /// What failed, in the order the writer met them ("10.0.0.1:80/TCP", "prune backend 7").
    public var subjects: [String]

    /// How many subjects a line names before "and N more".
    public static let examples = 3

    /// "9,900 failed: pw_lb4_services needs 20,002 entries, has 100: raise --service-map-size
    /// (10.96.0.1:80/TCP, 10.96.0.2:80/TCP, 10.96.0.3:80/TCP and 9,897 more)".
    public var description: String {
        let named = subjects.prefix(Self.examples).joined(separator: ", ")
        let more = subjects.count > Self.examples ? " and \(grouped(subjects.count - Self.examples)) more" : ""
        return "\(grouped(subjects.count)) failed: \(error) (\(named)\(more))"
    }
}

/// What one `MapWriter` call (sync, apply, repair, retry) did: for the agent's one log line and for tests.
public struct SyncSummary: Hashable, Sendable, CustomStringConvertible {
    /// IPv4 frontends in the desired state after the call.
    public var frontends = 0
    /// Distinct backends the desired frontends use.
    public var backends = 0
    public var added = 0
    public var updated = 0
    public var removed = 0
    /// Map operations actually made, per map.
    public var operations: [MapKind: MapOpCounts] = [:]
    /// Syscalls made (a batch update counts once).
    public var syscalls = 0
    /// Frontends (and map-wide steps) that failed; each frontend keeps what it had before.
    public var failures: [SyncFailure] = []
    /// Desired entries the datapath cannot hold (IPv6), as "what: why".
    public var skipped: [String] = []
    /// Entries programmed only in part (more than 65,534 endpoints on a frontend): log as warnings.
    public var warnings: [String] = []
    /// When the desired entries do not fit: one line naming each short map and the flag to raise,
    /// e.g. "pw_lb4_services needs 110,002 entries, has 65,536: raise --service-map-size".
    public var shortfall: String?
    /// Entries the pins held differently from what the writer had written (changed outside the
    /// agent), found and rewritten by `repair`.
    public var repaired: [String] = []
    /// Frontends left unprogrammed because the call was interrupted (`isCancelled`); they are
    /// retried by `retryFailed` or the next sync.
    public var interrupted = 0
    public var duration: Duration = .zero
    /// Entries each map holds after the call (the writer's mirror), and its max_entries: for the
    /// `portway_map_entries` / `portway_map_capacity` metrics.
    public var entries: [MapKind: Int] = [:]
    public var capacity: [MapKind: Int] = [:]

    public init() {}

    /// Updates over all maps.
    public var writes: Int { operations.values.reduce(0) { $0 + $1.updates } }
    /// Deletes over all maps.
    public var deletes: Int { operations.values.reduce(0) { $0 + $1.deletes } }

    /// The failures grouped by `BPFMapError.cause`, in the order first met: a map too small for
    /// 10,000 frontends is one group (one log line), not 10,000.
    public var failureGroups: [SyncFailureGroup] {
        var groups: [SyncFailureGroup] = []
        var index: [BPFMapError: Int] = [:]
        for failure in failures {
            let cause = failure.error.cause
            if let i = index[cause] {
                groups[i].subjects.append(failure.subject)
            } else {
                index[cause] = groups.count
                groups.append(SyncFailureGroup(error: failure.error, subjects: [failure.subject]))
            }
        }
        return groups
    }

    public subscript(kind: MapKind) -> MapOpCounts { operations[kind] ?? MapOpCounts() }

    /// One line: "12 frontends, 30 backends: +1 ~2 -0; pw_lb4_services 5w/1d, ...; 0 failures; 1.2ms".
    public var description: String {
        let ops = [MapKind.services, .backends, .reverseNAT].map { kind in
            "\(kind.pinName) \(self[kind].updates)w/\(self[kind].deletes)d"
        }.joined(separator: ", ")
        var line = "\(frontends) frontends, \(backends) backends: +\(added) ~\(updated) -\(removed); \(ops); "
            + "\(failures.count) failures; \(formatDuration(duration))"
        if let shortfall { line += "; \(shortfall)" }
        if !repaired.isEmpty { line += "; repaired \(repaired.count) entries changed outside the agent" }
        if interrupted > 0 { line += "; interrupted, \(interrupted) frontends left for later" }
        if !warnings.isEmpty { line += "; \(warnings.count) warnings" }
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
