import CPortwayBPF
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
func run(_ args: [String], input: String? = nil, allowFailure: Bool = false) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let inPipe = Pipe()
    p.standardInput = inPipe
    try p.run()
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try? inPipe.fileHandleForWriting.close()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let stdout = String(decoding: data, as: UTF8.self)
    if p.terminationStatus != 0 && !allowFailure {
        throw CommandError(
            command: args, status: p.terminationStatus, output: stdout + String(decoding: errData, as: UTF8.self))
    }
    return stdout
}

/// Whether an executable is on PATH.
func haveCommand(_ name: String) -> Bool {
    (try? run(["sh", "-c", "command -v \(name)"], allowFailure: false)) != nil
}

/// A long-running child process (a server, or an interactive client) with line-based I/O.
final class Child {
    let process = Process()
    private let out = Pipe()
    private let inPipe = Pipe()
    private var buffer = Data()

    /// A child that died must not take the test process with it when a test writes to its stdin.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    init(_ args: [String]) throws {
        Self.ignoreSIGPIPE
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = args
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
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

    func send(_ line: String) {
        inPipe.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    func closeInput() { try? inPipe.fileHandleForWriting.close() }

    /// Sends SIGKILL and reaps the process.
    func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    deinit { kill() }
}

/// Runs `body` on a new thread and waits for it: blocking work (processes, syscalls, setns)
/// never runs on Swift's cooperative pool.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// Runs `body` on a fresh thread that has entered the named network namespace (setns only
/// affects the calling thread), and waits for it. Call from a dedicated thread.
func inNetns<T>(_ name: String, _ body: @escaping () throws -> T) throws -> T {
    nonisolated(unsafe) var result: Result<T, any Error>?
    nonisolated(unsafe) let work = body
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        defer { done.signal() }
        let rc = portway_dp_enter_netns("/var/run/netns/\(name)")
        guard rc == 0 else {
            result = .failure(CommandError(command: ["setns", name], status: -rc, output: ""))
            return
        }
        result = Result { try work() }
    }
    thread.start()
    done.wait()
    return try result!.get()
}
