/// Splits a watch body into lines (one JSON event each) across arbitrary chunk boundaries: an event
/// may span many reads, and one read may hold many events. Empty lines are skipped, a trailing
/// "\r" is dropped. Bytes already scanned are not scanned again, so a large event arriving in many
/// small chunks costs linear time.
public struct LineSplitter: Sendable {
    private var buffer: [UInt8] = []
    private var scanned = 0
    /// A line longer than this is an error (a runaway stream), not a memory leak.
    public var maxLineLength: Int

    public init(maxLineLength: Int = 64 << 20) {
        self.maxLineLength = maxLineLength
    }

    public struct LineTooLong: Error, CustomStringConvertible {
        public var description: String { "watch event longer than the limit without a newline" }
    }

    /// Appends a chunk and returns the complete lines it finished.
    public mutating func append(_ chunk: some Sequence<UInt8>) throws -> [[UInt8]] {
        buffer.append(contentsOf: chunk)
        var lines: [[UInt8]] = []
        var start = 0
        var i = scanned
        while i < buffer.count {
            if buffer[i] == UInt8(ascii: "\n") {
                var end = i
                if end > start, buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                if end > start { lines.append(Array(buffer[start..<end])) }
                start = i + 1
            }
            i += 1
        }
        if start > 0 { buffer.removeFirst(start) }
        scanned = buffer.count
        if buffer.count > maxLineLength { throw LineTooLong() }
        return lines
    }

    /// What is left without a newline when the stream ends (a last event without "\n").
    public mutating func finish() -> [UInt8]? {
        defer { buffer = []; scanned = 0 }
        let rest = buffer.last == UInt8(ascii: "\r") ? Array(buffer.dropLast()) : buffer
        return rest.isEmpty ? nil : rest
    }
}
