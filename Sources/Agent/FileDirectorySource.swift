import FileSource
import Foundation
import KubeModels
import Logging
import Synchronization

/// The `--from-dir` source: polls a directory of YAML files and sends a snapshot whenever the
/// files changed (by a fingerprint of names, sizes and modification times).
///
/// A file that cannot be parsed (YAML syntax error) or a directory that cannot be read is logged
/// as a warning and the last good snapshot stays in force: nothing is yielded until the files load
/// again, so the maps are kept as they are. The first snapshot is yielded only once every file
/// loads, so a restarted agent never prunes maps from a partial view.
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

    public func run(sink: Inbox<SourceEvent>) async {
        let stopped = Arc(Atomic<Bool>(false))
        let poller = DirectoryPoller(directory: directory, logger: logger)
        let interval = interval
        let (finished, done) = AsyncStream<Void>.makeStream()
        let thread = Thread {
            var poller = poller
            while !stopped.value.load(ordering: .acquiring) {
                // Each reload is a whole snapshot; the pipeline diffs it by key.
                if let snapshot = poller.poll() { sink.push(.snapshot(snapshot)) }
                Thread.sleep(forTimeInterval: interval.seconds)
            }
            done.finish()
        }
        thread.name = "portway-file-source"
        await withTaskCancellationHandler {
            thread.start()
            for await _ in finished {}
        } onCancel: {
            stopped.value.store(true, ordering: .releasing)
        }
    }
}

/// A Sendable box for a non-copyable atomic shared with the polling thread.
final class Arc<T: ~Copyable>: Sendable where T: Sendable {
    let value: T
    init(_ value: consuming T) { self.value = value }
}

/// One poll step: reload when the fingerprint changed, keep the last good snapshot on errors.
struct DirectoryPoller: Sendable {
    let directory: String
    let logger: Logger
    private var lastFingerprint: DirectoryFingerprint?
    private var lastSnapshot: ClusterSnapshot?
    private var lastError: String?
    private var lastWarnings: [String] = []

    init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// The new snapshot when the files changed and loaded; nil when nothing changed or they did not load.
    mutating func poll() -> ClusterSnapshot? {
        let fingerprint: DirectoryFingerprint
        do {
            fingerprint = try FileSource.fingerprint(directory: directory)
        } catch {
            report("cannot read \(directory): \(error); keeping the last good state")
            return nil
        }
        guard fingerprint != lastFingerprint else { return nil }
        let loaded: LoadResult
        do {
            loaded = try FileSource.load(directory: directory)
        } catch {
            // Remember the fingerprint so the same broken file is reported once, not every poll.
            lastFingerprint = fingerprint
            report("\(error); keeping the last good state until the files load again")
            return nil
        }
        lastFingerprint = fingerprint
        lastError = nil
        let warnings = loaded.warnings.map(\.description)
        if warnings != lastWarnings {
            for warning in warnings where !lastWarnings.contains(warning) { logger.warning("\(warning)") }
            lastWarnings = warnings
        }
        guard loaded.snapshot != lastSnapshot else { return nil }
        lastSnapshot = loaded.snapshot
        return loaded.snapshot
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
