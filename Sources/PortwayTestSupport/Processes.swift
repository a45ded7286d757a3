import Foundation
import Glibc
import Synchronization

/// A failed command, with what it printed.
public struct CommandError: Error, CustomStringConvertible {
    public var command: [String]
    public var status: Int32
    public var output: String
    public var description: String { "`\(command.joined(separator: " "))` exited \(status): \(output)" }

    public init(command: [String], status: Int32, output: String) {
        self.command = command
        self.status = status
        self.output = output
    }
}

/// Runs a command (looked up on PATH) to completion and returns its stdout; throws `CommandError`
/// with stdout and stderr when it fails, unless `allowFailure`. Blocking: call it from a dedicated
/// thread (`onDedicatedThread`), never from the cooperative pool.
@discardableResult
public func run(_ args: [String], input: String? = nil, allowFailure: Bool = false) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let inPipe = input.map { _ in Pipe() }
    p.standardInput = inPipe ?? FileHandle.nullDevice
    try p.run()
    if let input, let inPipe {
        inPipe.fileHandleForWriting.write(Data(input.utf8))
        try? inPipe.fileHandleForWriting.close()
    }
    // Both pipes at once: a full stderr pipe must not block the child while stdout is read.
    let errData = Mutex(Data())
    let errDone = DispatchSemaphore(value: 0)
    Thread {
        let data = err.fileHandleForReading.readDataToEndOfFile()
        errData.withLock { $0 = data }
        errDone.signal()
    }.start()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    errDone.wait()
    p.waitUntilExit()
    let stdout = String(decoding: data, as: UTF8.self)
    if p.terminationStatus != 0 && !allowFailure {
        throw CommandError(command: args, status: p.terminationStatus, output: stdout + String(decoding: errData.withLock { $0 }, as: UTF8.self))
    }
    return stdout
}

/// Whether an executable is on PATH.
public func haveCommand(_ name: String) -> Bool {
    (try? run(["sh", "-c", "command -v \(name)"])) != nil
}

/// Runs `body` on a new thread and waits for it: blocking work (processes, syscalls, setns, sleeps)
/// never runs on Swift's cooperative pool.
public func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Runs CPU-bound test work (model and differential checks) on one shared serial lane, one body at
/// a time, off Swift's cooperative pool: the pool has one thread per core (2 here), and a few such
/// checks running on it, or many on threads of their own, kept the full parallel run's
/// socket and process tests from being scheduled for tens of seconds.
public func onCPULane<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        cpuLane.async { continuation.resume(with: Result { try body() }) }
    }
}

private let cpuLane = DispatchQueue(label: "portway.tests.cpu-lane")

/// What a check running on `onCPULane` found wrong (it cannot record issues itself: those belong
/// to the test's task); thrown, it fails the test that awaited the lane with this description.
public struct ModelCheckFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Throws `ModelCheckFailure(message)` unless `condition` holds: `#require` for code on `onCPULane`.
public func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ModelCheckFailure(message()) }
}

/// The `portway` binary next to the test bundle (`swift build --build-tests` builds it with the
/// tests), or `$PORTWAY_BIN`; nil when neither is there (the tests that need it skip).
public let portwayBinary: String? = {
    if let env = ProcessInfo.processInfo.environment["PORTWAY_BIN"], FileManager.default.isExecutableFile(atPath: env) { return env }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("portway").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir.deleteLastPathComponent()
    }
    return nil
}()

/// A long-running child process (a server, a client, an agent): line-based stdout and stdin, its
/// stderr (and optionally stdout) appended to a log file or discarded. Killed (SIGKILL) and reaped
/// when released. Driven by one test at a time.
public final class Child: @unchecked Sendable {
    public let process = Process()
    /// The command line (for messages).
    public let command: [String]
    /// Where stderr goes, when given.
    public let logPath: String?
    /// The log's size when this process started: `log` is what this process appended.
    private let logStart: UInt64
    private let out = Pipe()
    private let inPipe = Pipe()
    private var buffer = Data()

    /// A child that died must not take the test process with it when a test writes to its stdin.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// Starts `args` (looked up on PATH). With `stderrLog`, stderr is appended to that file (and
    /// stdout too with `stdoutToLog`); without, stderr is discarded. `discardStdout` sends stdout
    /// nowhere (for processes nobody reads).
    public init(_ args: [String], stderrLog: String? = nil, stdoutToLog: Bool = false, discardStdout: Bool = false) throws {
        Self.ignoreSIGPIPE
        command = args
        logPath = stderrLog
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = args
        var start: UInt64 = 0
        if let stderrLog {
            if !FileManager.default.fileExists(atPath: stderrLog) { _ = FileManager.default.createFile(atPath: stderrLog, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrLog))
            start = handle.seekToEndOfFile()
            process.standardError = handle
            process.standardOutput = stdoutToLog ? handle : discardStdout ? FileHandle.nullDevice : out
        } else {
            process.standardError = FileHandle.nullDevice
            process.standardOutput = discardStdout ? FileHandle.nullDevice : out
        }
        logStart = start
        process.standardInput = inPipe
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// What this process wrote to its log so far (not what an earlier process appended before it).
    public var log: String {
        guard let logPath, let handle = FileHandle(forReadingAtPath: logPath) else { return "" }
        defer { try? handle.close() }
        try? handle.seek(toOffset: logStart)
        return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    }

    /// The next stdout line, or nil at end of output. Blocks.
    public func readLine() -> String? {
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

    /// The next stdout line, read on a dedicated thread.
    public func line() async -> String? {
        (try? await onDedicatedThread { self.readLine() }) ?? nil
    }

    /// Waits for the child's first line to be `ready` (or `started`): servers, forwarders. Blocks.
    public func expectReady() throws {
        let line = readLine()
        guard line == "ready" || line == "started" else {
            kill()
            throw CommandError(command: command, status: -1, output: "did not start (first line: \(line ?? "EOF"))")
        }
    }

    public func send(_ line: String) {
        inPipe.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    public func closeInput() { try? inPipe.fileHandleForWriting.close() }

    /// Waits until this process's log holds `marker` at least `count` times (true), or it exited
    /// or `limit` passed (false).
    public func waitForLog(_ marker: String, count: Int = 1, limit: Duration = .seconds(30)) async -> Bool {
        await waitUntil(timeout: limit) { [self] in
            log.components(separatedBy: marker).count > count || !isRunning
        } && log.components(separatedBy: marker).count > count
    }

    /// Waits for the exit within `limit`: its status, or nil (still running; then killed).
    public func waitForExit(limit: Duration) async -> Int32? {
        guard await waitUntil(timeout: limit, { [self] in !isRunning }) else {
            kill()
            return nil
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Sends SIGTERM and waits up to `limit` for the process to end on its own (a graceful stop:
    /// a server drains what reached it); SIGKILL after that. Reaps it. Blocks.
    public func terminate(limit: Duration = .seconds(10)) {
        guard process.isRunning else { return process.waitUntilExit() }
        Glibc.kill(process.processIdentifier, SIGTERM)
        let exited = DispatchSemaphore(value: 0)
        let waiter = Thread { [process] in process.waitUntilExit(); exited.signal() }
        waiter.start()
        let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
        if exited.wait(timeout: .now() + seconds) == .timedOut { kill() }
    }

    /// Sends SIGKILL and reaps the process.
    public func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { kill() }
}

extension String {
    /// Without leading and trailing white space and newlines.
    public var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// A self-signed EC (P-256) certificate for `hostname` as `<path>.crt` and `<path>.key` (the
/// openssl CLI), with the subject alternative names `subjectAltNames` (openssl's syntax,
/// `DNS:a,URI:spiffe://b`; by default `DNS:<hostname>`). Blocking.
public func makeCertificate(hostname: String, path: String, subjectAltNames: String? = nil) throws {
    try run([
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", path + ".key", "-out", path + ".crt", "-days", "2",
        "-subj", "/CN=\(hostname)", "-addext", "subjectAltName=\(subjectAltNames ?? "DNS:\(hostname)")",
    ])
}
