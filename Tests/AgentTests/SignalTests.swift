import Foundation
import Glibc
import Testing

/// The `portway` binary next to the test bundle (swift build builds it with the tests), or $PORTWAY_BIN.
let portwayBinary: String? = {
    if let env = ProcessInfo.processInfo.environment["PORTWAY_BIN"], FileManager.default.isExecutableFile(atPath: env) { return env }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("portway").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir.deleteLastPathComponent()
    }
    return nil
}()

private let signalTestsReady: Bool = {
    guard AgentBPFFS.available else { return false }
    guard portwayBinary != nil else {
        print("SignalTests skipped: the portway binary was not found next to the tests (set PORTWAY_BIN)")
        return false
    }
    return true
}()

@Suite("SIGTERM/SIGINT end the real agent cleanly", .serialized, .enabled(if: signalTestsReady, "needs root, a bpffs mount and the portway binary"))
struct SignalTests {
    /// Starts the agent (file mode, maps only), waits for `marker` in its log, sends `signal` and
    /// returns the exit status and the log.
    func cycle(bpffs: String, dir: String, marker: String, signal: Int32) throws -> (status: Int32, reason: Process.TerminationReason, log: String) {
        let logPath = dir + "/agent.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        defer { try? log.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: portwayBinary!)
        process.arguments = [
            "agent", "--from-dir", dir + "/yaml", "--no-datapath", "--bpffs", bpffs, "--node-name", "node-a", "--node-ip", "192.0.2.10",
            "--service-map-size", "256", "--backend-map-size", "256", "--revnat-map-size", "256", "--affinity-map-size", "64",
            "--ct-map-size", "64", "--snat-map-size", "64",
        ]
        process.standardError = log
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var text = ""
        for _ in 0..<600 {
            text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if text.contains(marker) || !process.isRunning { break }
            usleep(10_000)
        }
        kill(process.processIdentifier, signal)
        // Bounded: a process that does not stop within 20 s is killed and reported.
        for _ in 0..<2000 where process.isRunning { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return (-1, process.terminationReason, text + "\n(killed: did not stop within 20 s)")
        }
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason, (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
    }

    @Test("40 start/signal cycles at different moments: every one exits 0 after logging that it stopped")
    func manyCycles() throws {
        let fs = try AgentBPFFS.make()
        defer { fs.cleanup() }
        let dir = try makeTempDirectory("pwpl-signals")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/yaml", withIntermediateDirectories: true)
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080), to: dir + "/yaml/web.yaml")
        try write(sliceYAML(service: "web", addresses: ["10.244.1.10"]), to: dir + "/yaml/web-slice.yaml")
        // The handlers are installed before the first log line; the markers cover start-up, the
        // first sync and the idle agent.
        let markers = ["pinned maps ready", "maps sync:", "re-adopted"]
        for i in 0..<40 {
            let marker = markers[i % markers.count]
            let signal = i % 4 == 3 ? SIGINT : SIGTERM
            let result = try cycle(bpffs: fs.directory, dir: dir, marker: marker, signal: signal)
            #expect(result.reason == .exit && result.status == 0, "cycle \(i) (\(marker), signal \(signal)): status \(result.status) \(result.reason)\n\(result.log)")
            #expect(result.log.contains("stopped"), "cycle \(i): \(result.log)")
            if result.reason != .exit || result.status != 0 { return }
        }
    }
}
