import BPFMaps
import KubeAPI
import LoadBalancer
import Synchronization

/// What an output did with one step, for the log and for retries.
public struct OutputReport: Sendable {
    /// Frontends that could not be programmed: retried with backoff until they succeed or change.
    public var failed: Set<Frontend>
    /// The log line ("3 frontends, ...").
    public var summary: String
    /// Failure details for the log.
    public var errors: [String]
    /// Notes worth a warning (e.g. more than 65,534 backends on one frontend, truncated).
    public var warnings: [String]
    /// Notes for the debug log (e.g. IPv6 entries not programmed yet).
    public var notes: [String]

    public init(failed: Set<Frontend> = [], summary: String = "", errors: [String] = [], warnings: [String] = [], notes: [String] = []) {
        self.failed = failed
        self.summary = summary
        self.errors = errors
        self.warnings = warnings
        self.notes = notes
    }
}

/// A consumer of the desired L4 state: the map writer now; the L7 route tables, the Gateway
/// Services and the status writer join as outputs of their own products. Each output runs in its
/// own task (`OutputRunner`), so one that fails or is slow never stalls another.
public protocol L4MapOutput: Sendable {
    /// For logs ("maps").
    var name: String { get }
    /// Programs the frontends that changed (nil: remove it).
    func apply(_ changes: FrontendChanges) async throws -> OutputReport
    /// Makes the output hold exactly `state` (the first full sync; prunes the rest).
    func sync(_ state: DesiredL4State) async throws -> OutputReport
    /// The periodic resync: makes what is really there equal `state` again, reporting what it repaired.
    func repair(_ state: DesiredL4State) async throws -> OutputReport
}

/// The pinned maps as an output, over today's `MapWriter`.
///
/// ADAPTER: `apply` keeps the whole desired state and runs a full `sync` (correct, and only the
/// changed entries are written, but the diff walks every frontend). When BPFMaps gains the
/// incremental `MapWriter.apply(_ changes:)` and `repair(desired)`, `apply` and `repair` call them
/// directly and `desired` goes away.
public final class MapWriterOutput: L4MapOutput {
    public let name = "maps"
    public let writer: MapWriter
    private let executor: BlockingExecutor
    private let desired = Mutex<[Frontend: FrontendEntry]>([:])
    /// Called with every writer summary (tests, metrics).
    private let onSync: (@Sendable (SyncSummary) -> Void)?

    public init(writer: MapWriter, executor: BlockingExecutor, onSync: (@Sendable (SyncSummary) -> Void)? = nil) {
        self.writer = writer
        self.executor = executor
        self.onSync = onSync
    }

    public func apply(_ changes: FrontendChanges) async throws -> OutputReport {
        let state = desired.withLock { desired -> DesiredL4State in
            for (frontend, entry) in changes { desired[frontend] = entry }
            return DesiredL4State(entries: Array(desired.values))
        }
        return try await write(state, removed: changes.compactMap { $0.value == nil ? $0.key : nil })
    }

    public func sync(_ state: DesiredL4State) async throws -> OutputReport {
        desired.withLock { desired in
            desired = Dictionary(state.entries.map { ($0.frontend, $0) }, uniquingKeysWith: { first, _ in first })
        }
        return try await write(state)
    }

    public func repair(_ state: DesiredL4State) async throws -> OutputReport {
        // Today's writer compares with its mirror of the pins; the writer's `repair` reads them back.
        try await sync(state)
    }

    private func write(_ state: DesiredL4State, removed: [Frontend] = []) async throws -> OutputReport {
        let writer = writer
        let summary = try await executor.run { writer.sync(state) }
        onSync?(summary)
        // The writer names a failed frontend by its map key: map it back.
        var byKey: [String: Frontend] = [:]
        if !summary.failures.isEmpty {
            for frontend in state.entries.map(\.frontend) + removed {
                if let key = ServiceMapKey(frontend) { byKey[key.description] = frontend }
            }
        }
        var failed = Set<Frontend>()
        for failure in summary.failures {
            let subject = failure.subject.hasPrefix("remove ") ? String(failure.subject.dropFirst(7)) : failure.subject
            if let frontend = byKey[subject] { failed.insert(frontend) }
        }
        // Truncated backends lose traffic capacity: a warning. The rest (IPv6 not served yet) is expected.
        let truncated = summary.skipped.filter { $0.contains("backends, the rest are not programmed") }
        return OutputReport(
            failed: failed, summary: summary.description, errors: summary.failures.map(\.description),
            warnings: truncated, notes: summary.skipped.filter { !truncated.contains($0) })
    }
}
