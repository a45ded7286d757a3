import Foundation

/// Cleans up after a test process that dies without tearing down (a crash, SIGKILL): a small shell
/// watchdog polls the test process and, if it disappears while `directory` still exists, SIGKILLs
/// every registered process, deletes every registered network namespace and path, and removes the
/// directory.
/// A normal tear-down removes the directory first, and the watchdog then exits on its own.
public final class Reaper: @unchecked Sendable {
    public let directory: String
    private let lock = NSLock()
    private var watchdog: Process?

    /// Starts the watchdog for `directory` (created if needed). Blocking (one process launch).
    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in ["reaper.pids", "reaper.netns", "reaper.paths"] { _ = FileManager.default.createFile(atPath: "\(directory)/\(file)", contents: nil) }
        let script = """
            while kill -0 "$1" 2>/dev/null && [ -d "$2" ] && [ ! -e "$2/reaper.done" ]; do sleep 1; done
            [ -d "$2" ] && [ ! -e "$2/reaper.done" ] || exit 0
            for p in $(cat "$2/reaper.pids"); do kill -9 "$p" 2>/dev/null; done
            for n in $(cat "$2/reaper.netns"); do ip netns del "$n" 2>/dev/null; done
            for f in $(cat "$2/reaper.paths"); do rm -rf "$f"; done
            rm -rf "$2"
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script, "reaper", String(getpid()), directory]
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        watchdog = p
    }

    /// The tear-down ran: the watchdog exits without touching anything (for a directory kept on purpose).
    public func disarm() { _ = FileManager.default.createFile(atPath: "\(directory)/reaper.done", contents: nil) }

    /// A process to SIGKILL if the test process dies first.
    public func register(pid: Int32) { append("\(pid)\n", to: "reaper.pids") }

    /// A network namespace to delete if the test process dies first.
    public func register(netns: String) { append("\(netns)\n", to: "reaper.netns") }

    /// A path (without spaces) to remove if the test process dies first (e.g. a bpffs pin directory).
    public func register(path: String) { append("\(path)\n", to: "reaper.paths") }

    private func append(_ line: String, to file: String) {
        lock.withLock {
            guard let handle = FileHandle(forWritingAtPath: "\(directory)/\(file)") else { return }
            handle.seekToEndOfFile()
            handle.write(Data(line.utf8))
            try? handle.close()
        }
    }
}
