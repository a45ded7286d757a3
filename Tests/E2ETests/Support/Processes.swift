import Foundation

/// A failed command, with what it printed.
struct CommandError: Error, CustomStringConvertible {
    var command: [String]
    var status: Int32
    var output: String
    var description: String { "`\(command.joined(separator: " "))` exited \(status): \(output)" }
}

/// Runs a command to completion (blocking: call from a dedicated thread) and returns its stdout.
@discardableResult
func run(_ args: [String], allowFailure: Bool = false) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    // Read both pipes concurrently: a full stderr pipe must not block the child.
    nonisolated(unsafe) var errData = Data()
    let errDone = DispatchSemaphore(value: 0)
    Thread {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        errDone.signal()
    }.start()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    errDone.wait()
    p.waitUntilExit()
    let stdout = String(decoding: data, as: UTF8.self)
    if p.terminationStatus != 0 && !allowFailure {
        throw CommandError(command: args, status: p.terminationStatus, output: stdout + String(decoding: errData, as: UTF8.self))
    }
    return stdout
}

/// Whether an executable is on PATH.
func haveCommand(_ name: String) -> Bool {
    (try? run(["sh", "-c", "command -v \(name)"])) != nil
}

/// A long-running child process with line-based stdout (stderr to a log file, or discarded).
final class Child: @unchecked Sendable {  // driven by one test at a time
    let process = Process()
    private let out = Pipe()
    private let inPipe = Pipe()
    private var buffer = Data()
    let command: [String]

    init(_ args: [String], stderrLog: String? = nil, stdoutToLog: Bool = false) throws {
        command = args
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = args
        if let stderrLog {
            if !FileManager.default.fileExists(atPath: stderrLog) { _ = FileManager.default.createFile(atPath: stderrLog, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrLog))
            handle.seekToEndOfFile()
            process.standardError = handle
            process.standardOutput = stdoutToLog ? handle : out
        } else {
            process.standardError = FileHandle.nullDevice
            process.standardOutput = out
        }
        process.standardInput = inPipe
        try process.run()
    }

    /// The next stdout line, or nil at end of output. Blocks.
    func readLine() -> String? {
        while true {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                return line
            }
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    /// Waits for the child's first line to be `ready` (servers, forwarders).
    func expectReady() throws {
        let line = readLine()
        guard line == "ready" || line == "started" else {
            kill()
            throw CommandError(command: command, status: -1, output: "did not start (first line: \(line ?? "EOF"))")
        }
    }

    func send(_ line: String) {
        inPipe.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    var isRunning: Bool { process.isRunning }

    /// Sends SIGKILL and reaps the process.
    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { kill() }
}

/// Runs `body` on a new thread and waits for it: blocking work (processes, sleeps) never runs on
/// Swift's cooperative pool.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
