import BPFMaps
import KubeAPI
import LoadBalancer
import Runtime

/// What an output did with one step, for the log and for retries.
public struct OutputReport: Sendable {
    /// A line for the log about something that failed, with what stays the same while the same
    /// thing keeps failing (`cause`): the runner logs a cause at most once per interval.
    public struct Problem: Hashable, Sendable {
        public var cause: String
        public var line: String

        public init(cause: String, line: String) {
            self.cause = cause
            self.line = line
        }
    }

    /// Frontends that could not be programmed: retried with backoff until they succeed or change.
    public var failed: Set<Frontend>
    /// The log line ("3 frontends, ...").
    public var summary: String
    /// Failure details for the log: one line per cause, however many frontends share it.
    public var errors: [Problem]
    /// Notes worth a warning (e.g. more than 65,534 backends on one frontend, truncated).
    public var warnings: [String]
    /// Notes for the debug log (e.g. IPv6 entries not programmed yet).
    public var notes: [String]
    /// Lines for the debug log as they are (e.g. the heap trim after a full sync).
    public var debug: [String] = []
    /// Why each frontend of `failed` failed, when the output says (the map writer's error), for
    /// the node's report of the Gateway redirects it could not write.
    public var failedBecause: [Frontend: String] = [:]

    public init(failed: Set<Frontend> = [], summary: String = "", errors: [Problem] = [], warnings: [String] = [], notes: [String] = []) {
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
    /// Programs again what failed before, as last desired. The output owns its failures (which
    /// frontends, as what entry); its runner decides when to call this (backoff).
    func retryFailed() async throws -> OutputReport
}

/// The pinned maps as an output: the map writer's incremental `apply` for changes, `sync` for the
/// first full state, `repair` (re-reads the maps and rewrites what drifted) for the periodic resync.
/// Each checks for cancellation between frontends, so shutdown never waits for a long sync.
public final class MapWriterOutput: L4MapOutput {
    public let name = "maps"
    public let writer: MapWriter
    private let executor: BlockingExecutor
    /// Called with every writer summary (tests, metrics).
    private let onSync: (@Sendable (SyncSummary) -> Void)?

    public init(writer: MapWriter, executor: BlockingExecutor, onSync: (@Sendable (SyncSummary) -> Void)? = nil) {
        self.writer = writer
        self.executor = executor
        self.onSync = onSync
    }

    public func apply(_ changes: FrontendChanges) async throws -> OutputReport {
        let writer = writer
        return report(try await executor.run { isCancelled in writer.apply(changes, isCancelled: isCancelled) })
    }

    /// After the sync the heap is trimmed: the full sync's temporaries are freed by then.
    public func sync(_ state: DesiredL4State) async throws -> OutputReport {
        let writer = writer
        let (summary, trim) = try await executor.run { isCancelled in
            (writer.sync(state, isCancelled: isCancelled), HeapTrim.releaseFreePages())
        }
        var report = report(summary)
        report.debug.append("after the sync, \(trim)")
        return report
    }

    public func retryFailed() async throws -> OutputReport {
        let writer = writer
        return report(try await executor.run { isCancelled in writer.retryFailed(isCancelled: isCancelled) })
    }

    /// After the repair the heap is trimmed, as after the first sync (the resync translated from scratch).
    public func repair(_ state: DesiredL4State) async throws -> OutputReport {
        let writer = writer
        let (summary, trim) = try await executor.run { isCancelled in
            (writer.repair(state, isCancelled: isCancelled), HeapTrim.releaseFreePages())
        }
        var report = report(summary)
        report.debug.append("after the repair, \(trim)")
        return report
    }

    private func report(_ summary: SyncSummary) -> OutputReport {
        onSync?(summary)
        // Failures: one line per cause (a map too small fails thousands of frontends at once; the
        // summary line carries the whole shortfall, the error line the flag to raise). Truncated
        // backends (more than 65,534 on a frontend) and what a repair rewrote (one line) are
        // warnings; `skipped` (IPv6 not served yet) is expected.
        var warnings = summary.warnings
        if !summary.repaired.isEmpty {
            let named = summary.repaired.prefix(SyncFailureGroup.examples).joined(separator: "; ")
            let more = summary.repaired.count > SyncFailureGroup.examples ? " and \(summary.repaired.count - SyncFailureGroup.examples) more" : ""
            warnings.append("repaired \(summary.repaired.count) entries changed outside the agent: \(named)\(more)")
        }
        var out = OutputReport(
            failed: Set(summary.failures.compactMap(\.frontend)), summary: summary.description,
            errors: summary.failureGroups.map { OutputReport.Problem(cause: "\($0.error.cause)", line: $0.description) },
            warnings: warnings, notes: summary.skipped)
        for failure in summary.failures { if let frontend = failure.frontend, out.failedBecause[frontend] == nil { out.failedBecause[frontend] = "\(failure.error)" } }
        return out
    }
}
