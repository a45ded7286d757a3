import Foundation
import Glibc
import Testing

private let signalTestsReady: Bool = {
    guard BPFFSFixture.available else { return false }
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
    func cycle(bpffs: String, dir: String, marker: String, signal: Int32) async throws -> (status: Int32, reason: Process.TerminationReason, log: String) {
        let agent = try Child([
            portwayBinary!, "agent", "--from-dir", dir + "/yaml", "--no-datapath", "--health-port", "0", "--bpffs", bpffs, "--node-name", "node-a", "--node-ip", "192.0.2.10",
            "--service-map-size", "256", "--backend-map-size", "256", "--revnat-map-size", "256", "--affinity-map-size", "64",
            "--ct-map-size", "64", "--snat-map-size", "64",
        ], stderrLog: dir + "/agent.log", discardStdout: true)
        // The signal goes at the marker, or after 6 s whatever the agent is doing.
        _ = await agent.waitForLog(marker, limit: .seconds(6))
        kill(agent.pid, signal)
        // Bounded: a process that does not stop within 20 s is killed and reported.
        guard let status = await agent.waitForExit(limit: .seconds(20)) else {
            return (-1, agent.process.terminationReason, agent.log + "\n(killed: did not stop within 20 s)")
        }
        return (status, agent.process.terminationReason, agent.log)
    }

    @Test("40 start/signal cycles at different moments: every one exits 0 after logging that it stopped")
    func manyCycles() async throws {
        let fs = try BPFFSFixture.make()
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
            let result = try await cycle(bpffs: fs.directory, dir: dir, marker: marker, signal: signal)
            #expect(result.reason == .exit && result.status == 0, "cycle \(i) (\(marker), signal \(signal)): status \(result.status) \(result.reason)\n\(result.log)")
            #expect(result.log.contains("stopped"), "cycle \(i): \(result.log)")
            if result.reason != .exit || result.status != 0 { return }
        }
    }
}
