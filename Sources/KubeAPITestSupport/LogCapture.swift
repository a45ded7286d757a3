import Logging
import Synchronization

/// Records what loggers made from it log, for tests that check what an operator would read (and
/// how much of it). No global bootstrap: pass `capture.logger("label")` where a Logger goes.
public final class LogCapture: Sendable {
    /// One log line.
    public struct Line: Sendable, CustomStringConvertible {
        public var label: String
        public var level: Logger.Level
        public var message: String

        public var description: String { "\(level) \(label): \(message)" }
    }

    private let lines = Mutex<[Line]>([])

    public init() {}

    /// A logger writing here at `level` and above.
    public func logger(_ label: String, level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { label in Handler(label: label, capture: self) }
        logger.logLevel = level
        return logger
    }

    /// Every line so far, oldest first.
    public var all: [Line] { lines.withLock { $0 } }

    /// The lines at `level` or above.
    public func lines(atLeast level: Logger.Level) -> [Line] { all.filter { $0.level >= level } }

    /// The lines whose message contains `text`.
    public func lines(containing text: String) -> [Line] { all.filter { $0.message.contains(text) } }

    /// How many lines so far (a mark: `since(mark)` gives what came after it).
    public var count: Int { lines.withLock { $0.count } }

    /// The lines logged after the first `mark` ones.
    public func since(_ mark: Int) -> [Line] { lines.withLock { Array($0.dropFirst(mark)) } }

    fileprivate func append(_ line: Line) { lines.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let label: String
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var text = "\(event.message)"
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            if !all.isEmpty { text += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
            capture.append(Line(label: label, level: event.level, message: text))
        }
    }
}
