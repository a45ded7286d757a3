import Foundation
import Logging
import Synchronization

/// How the agent writes its log lines (`--log-format`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's default: `2026-01-01T00:00:00+0000 info portway.agent : message`.
    case text
    /// One JSON object per line: `{"time":…,"level":"info","logger":"portway.agent","msg":…,<metadata>}`.
    case json
    /// One logfmt line: `time=… level=info logger=portway.agent msg="…" key=value`.
    case logfmt
}

/// A swift-log handler writing one structured line per message to standard error, as JSON or
/// logfmt: what `kubectl logs` shows and log shippers parse. Lines are written whole (one write
/// per line under a lock), so lines of concurrent loggers never interleave.
public struct StructuredLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: LogFormat
    private let sink: StructuredLogSink

    public init(label: String, format: LogFormat, level: Logger.Level, sink: StructuredLogSink = .standardError) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let explicit = event.metadata { fields.merge(explicit) { _, new in new } }
        if let error = event.error { fields["error"] = "\(error)" }
        sink.write(Self.format(format, time: Date(), level: event.level, label: label, message: event.message.description, fields: fields) + "\n")
    }

    /// One line, without its newline.
    public static func format(
        _ format: LogFormat, time: Date, level: Logger.Level, label: String, message: String, fields: Logger.Metadata
    ) -> String {
        let stamp = timestamp(time)
        let extra = fields.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }
        switch format {
        case .json:
            var out = "{\"time\":\(jsonString(stamp)),\"level\":\(jsonString(level.rawValue)),\"logger\":\(jsonString(label)),\"msg\":\(jsonString(message))"
            for (key, value) in extra where !["time", "level", "logger", "msg"].contains(key) {
                out += ",\(jsonString(key)):\(jsonString(value))"
            }
            return out + "}"
        case .logfmt:
            var out = "time=\(stamp) level=\(level.rawValue) logger=\(logfmtValue(label)) msg=\(logfmtValue(message))"
            for (key, value) in extra { out += " \(logfmtKey(key))=\(logfmtValue(value))" }
            return out
        case .text:
            let meta = extra.isEmpty ? "" : " " + extra.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
            return "\(stamp) \(level) \(label) :\(meta) \(message)"
        }
    }

    /// RFC 3339 in UTC with milliseconds.
    static func timestamp(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        let ms = Int((date.timeIntervalSince1970 - Double(t)) * 1000)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func logfmtKey(_ s: String) -> String {
        let cleaned = String(s.unicodeScalars.map { $0 == " " || $0 == "=" || $0 == "\"" ? "_" : Character($0) })
        return cleaned.isEmpty ? "_" : cleaned
    }

    static func logfmtValue(_ s: String) -> String {
        let needsQuotes = s.isEmpty || s.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.value < 0x20 }
        return needsQuotes ? jsonString(s) : s
    }
}

/// Where structured lines go: standard error, or (tests) a buffer.
public final class StructuredLogSink: Sendable {
    /// Lines kept by a capturing sink.
    private final class Captured: Sendable {
        let lines = Mutex<[String]>([])
    }
    private let captured: Captured?
    private let lock = Mutex(())

    /// Standard error, one write(2) per line.
    public static let standardError = StructuredLogSink(capturing: false)

    /// A sink that keeps the lines (tests).
    public static func capturing() -> StructuredLogSink { StructuredLogSink(capturing: true) }

    private init(capturing: Bool) { captured = capturing ? Captured() : nil }

    /// The lines written so far (capturing sinks only).
    public var lines: [String] { captured?.lines.withLock { $0 } ?? [] }

    func write(_ line: String) {
        if let captured {
            captured.lines.withLock { $0.append(String(line.dropLast())) }
            return
        }
        lock.withLock { _ in
            let bytes = Array(line.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
                if n <= 0 { break }
                offset += n
            }
        }
    }
}
