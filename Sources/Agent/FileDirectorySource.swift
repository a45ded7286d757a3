import FileSource
import Foundation
import KubeModels
import Logging
import Runtime
import Synchronization

/// The `--from-dir` source: polls a directory of YAML files and sends a snapshot whenever the
/// files changed (by a fingerprint of names, sizes and modification times).
///
/// A file that does not load (a YAML syntax error, a limit, an object that does not decode, a
/// truncated file) keeps its last good content, with a warning naming the file, line and field
/// (`WatchedDirectory`); a directory that cannot be read keeps the last snapshot. The first
/// snapshot is yielded only once every file loads and the directory holds objects, so a restarted
/// agent never prunes the maps from a partial or empty view (`DirectoryPoller`).
///
/// Polling runs on a dedicated thread (file-system calls block), never on Swift's cooperative pool.
public struct FileDirectorySource: ClusterStateSource {
    public let directory: String
    public let interval: Duration
    let logger: Logger

    public init(directory: String, interval: Duration = .milliseconds(250), logger: Logger = Logger(label: "portway.source.files")) {
        self.directory = directory
        self.interval = interval
        self.logger = logger
    }

    public func run(sink: @escaping SourceSink) async {
        // File-system calls block: each poll runs on the source's own blocking executor, and the
        // wait between polls is a task sleep (cancellation ends it at once).
        let poller = LockBox(DirectoryPoller(directory: directory, logger: logger))
        let executor = BlockingExecutor(label: "portway.source.files")
        while !Task.isCancelled {
            // Each reload is a whole snapshot; the pipeline diffs it by key.
            if let snapshot = try? await executor.run({ poller.value.withLock { $0.poll() } }) {
                sink(.snapshot(snapshot))
            }
            try? await Task.sleep(for: interval)
        }
    }
}

/// One poll step: reload the files that changed, each keeping its last good content, and yield
/// the merged snapshot when it changed.
///
/// Two guards keep a mistake from emptying the node: nothing is yielded until every file has
/// loaded cleanly once and the directory has held at least one object (an empty or mistyped
/// directory at start prunes nothing), and a later change that removes every object is applied
/// but logged as a warning with the counts.
struct DirectoryPoller: Sendable {
    let directory: String
    let logger: Logger
    private var files: WatchedDirectory
    private var lastFingerprint: DirectoryFingerprint?
    private var lastSnapshot: ClusterSnapshot?
    private var lastError: String?
    private var lastWarnings: [String] = []

    init(directory: String, logger: Logger, limits: YAMLLimits = .default) {
        self.directory = directory
        self.logger = logger
        self.files = WatchedDirectory(directory: directory, limits: limits)
    }

    /// The new snapshot when the files changed; nil when nothing changed or it must not be applied.
    mutating func poll() -> ClusterSnapshot? {
        let fingerprint: DirectoryFingerprint
        do {
            fingerprint = try FileSource.fingerprint(directory: directory)
        } catch {
            report("cannot read \(directory): \(error); keeping the last good state")
            return nil
        }
        guard fingerprint != lastFingerprint else { return nil }
        lastFingerprint = fingerprint
        lastError = nil
        let view = files.update(fingerprint)
        // Each problem and warning is logged once, when it appears, not on every poll.
        let warnings = view.problems + view.result.warnings.map(\.description)
        for warning in warnings where !lastWarnings.contains(warning) { logger.warning("\(warning)") }
        lastWarnings = warnings

        let snapshot = view.result.snapshot
        guard let last = lastSnapshot else {
            // The first snapshot is a full sync that prunes whatever else the maps hold: only from
            // a complete view of a directory that holds something.
            guard view.complete else {
                report("not syncing until every file in \(directory) loads (the maps keep their content)")
                return nil
            }
            guard snapshot.objectCount > 0 else {
                report("\(directory) holds no objects; not syncing (nothing is pruned) until it does")
                return nil
            }
            lastSnapshot = snapshot
            return snapshot
        }
        guard snapshot != last else { return nil }
        if snapshot.objectCount == 0 {
            logger.warning("all objects gone from \(directory): \(Self.counts(snapshot, was: last)); applying")
        }
        lastSnapshot = snapshot
        return snapshot
    }

    /// "0 Services (was 12), 0 EndpointSlices (was 30), 0 Endpoints (was 0), 0 Nodes (was 1), ...".
    static func counts(_ now: ClusterSnapshot, was: ClusterSnapshot) -> String {
        func named(_ s: ClusterSnapshot) -> [(String, Int)] {
            [("Services", s.services.count), ("EndpointSlices", s.endpointSlices.count), ("Endpoints", s.endpoints.count),
             ("Nodes", s.nodes.count), ("Gateways", s.gateways.count), ("HTTPRoutes", s.httpRoutes.count)]
        }
        let before = named(was)
        var parts: [String] = []
        var shown = (now: 0, was: 0)
        for (i, (name, count)) in named(now).enumerated() {
            parts.append("\(count) \(name) (was \(before[i].1))")
            shown.now += count
            shown.was += before[i].1
        }
        parts.append("\(now.objectCount - shown.now) other objects (was \(was.objectCount - shown.was))")
        return parts.joined(separator: ", ")
    }

    private mutating func report(_ message: String) {
        guard message != lastError else { return }
        lastError = message
        logger.warning("\(message)")
    }
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
