import Foundation
import Glibc
import Synchronization
import Testing

/// A `portway` process run by a test, its stderr in `logPath`.
func portwayProcess(_ arguments: [String], logPath: String) throws -> Child {
    try Child([portwayBinary!] + arguments, stderrLog: logPath, discardStdout: true)
}

/// The flock holders of a file or directory, from /proc/locks ("1: FLOCK ADVISORY WRITE 4242 00:27:32992 0 EOF").
func flockHolders(of path: String) -> [Int32] {
    var st = stat()
    guard stat(path, &st) == 0, let text = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return [] }
    let dev = UInt64(st.st_dev)
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
    let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
    func hex2(_ v: UInt64) -> String { String(repeating: "0", count: max(0, 2 - String(v, radix: 16).count)) + String(v, radix: 16) }
    let wanted = "\(hex2(major)):\(hex2(minor)):\(st.st_ino)"
    return text.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        // Waiters are listed as "->"; only holders count.
        guard fields.count >= 6, fields[1] == "FLOCK", fields[5] == wanted else { return nil }
        return Int32(fields[4])
    }
}

private let agentProcessTestsReady: Bool = {
    guard BPFFSFixture.available else { return false }
    guard portwayBinary != nil else {
        print("AgentProcessTests skipped: the portway binary was not found next to the tests (set PORTWAY_BIN)")
        return false
    }
    return true
}()

/// The built `portway` binary as an operator runs it: one writer per pin directory for the whole
/// life of the agent, and a second signal that ends a stuck graceful stop at once.
@Suite("portway agent (the binary): one writer per pin directory, signals", .serialized, .enabled(if: agentProcessTestsReady, "needs root, a bpffs mount and the portway binary"))
struct AgentProcessTests {
    static let sizeFlags = [
        "--service-map-size", "256", "--backend-map-size", "256", "--revnat-map-size", "256", "--affinity-map-size", "64",
        "--ct-map-size", "64", "--snat-map-size", "64",
    ]

    /// `agent --from-dir DIR` on `bpffs`, maps only, no proxy, a resync every 200 ms.
    static func agentArguments(bpffs: String, dir: String, extra: [String] = []) -> [String] {
        ["agent", "--from-dir", dir, "--no-datapath", "--proxy-listen", "off", "--health-port", "0", "--bpffs", bpffs, "--node-name", "node-a",
         "--node-ip", "192.0.2.10", "--resync-interval", "0.2"] + sizeFlags + extra
    }

    static func listing(_ bpffs: String) async throws -> String {
        try await onDedicatedThread { try run([portwayBinary!, "bpf", "lb", "list", "-o", "json", "--bpffs", bpffs]) }
    }

    /// Two source directories: the first agent's Service, and another one the second agent would write.
    static func sources() throws -> (root: String, first: String, second: String) {
        let root = try makeTempDirectory("pwpl-lock")
        for (name, ip, nodePort, backend) in [("first", "10.96.0.10", 30080, "10.244.1.10"), ("second", "10.96.0.20", 30090, "10.244.2.20")] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)
            try write(serviceYAML(name: name, clusterIP: ip, nodePort: nodePort), to: "\(root)/\(name)/svc.yaml")
            try write(sliceYAML(service: name, addresses: [backend]), to: "\(root)/\(name)/slice.yaml")
        }
        return (root, root + "/first", root + "/second")
    }

    /// Agent 1 synced and idle (two repairs after its sync, well past start-up), its lock checked.
    static func startFirst(bpffs: String, dir: String, log: String) async throws -> Child {
        let first = try portwayProcess(agentArguments(bpffs: bpffs, dir: dir), logPath: log)
        #expect(await first.waitForLog("maps sync:"), "agent 1 synced: \(first.log)")
        #expect(await first.waitForLog("maps repair:", count: 2), "agent 1 idle, resyncing: \(first.log)")
        return first
    }

    @Test("a second agent on the same --bpffs refuses while the first runs synced and idle; the first one's frontends stay")
    func secondAgentRefuses() async throws {
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let (root, firstDir, secondDir) = try Self.sources()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let first = try await Self.startFirst(bpffs: fs.directory, dir: firstDir, log: root + "/first.log")
        defer { first.kill() }

        #expect(flockHolders(of: fs.directory) == [first.pid], "agent 1 (PID \(first.pid)) holds the flock on \(fs.directory) while idle: /proc/locks:\n\((try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? "")")
        let before = try await Self.listing(fs.directory)
        #expect(before.contains("10.96.0.10"))

        let second = try portwayProcess(Self.agentArguments(bpffs: fs.directory, dir: secondDir), logPath: root + "/second.log")
        defer { second.kill() }
        let status = await second.waitForExit(limit: .seconds(30))
        #expect(status != nil && status != 0, "agent 2 must refuse: status \(String(describing: status))\n\(second.log)")
        #expect(second.log.contains("is locked by process \(first.pid)"), "a clear message naming the holder: \(second.log)")
        // Agent 1 repairs its maps every 200 ms, so the listing alone could hide a write: agent 2's log says it made none.
        #expect(!second.log.contains("pinned maps ready") && !second.log.contains("maps sync:"), "agent 2 opened or wrote the maps: \(second.log)")
        #expect(try await Self.listing(fs.directory) == before, "agent 1's frontends unchanged")
        #expect(first.isRunning)

        kill(first.pid, SIGTERM)
        #expect(await first.waitForExit(limit: .seconds(20)) == 0)
    }

    @Test("--take-over waits for the running agent's lock, writes nothing meanwhile, and takes the maps once it exits")
    func takeOverWaits() async throws {
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let (root, firstDir, secondDir) = try Self.sources()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let first = try await Self.startFirst(bpffs: fs.directory, dir: firstDir, log: root + "/first.log")
        defer { first.kill() }
        let before = try await Self.listing(fs.directory)

        let second = try portwayProcess(Self.agentArguments(bpffs: fs.directory, dir: secondDir, extra: ["--take-over"]), logPath: root + "/second.log")
        defer { second.kill() }
        #expect(await second.waitForLog("taking over: waiting for agent PID \(first.pid)"), "agent 2 waits for agent 1: \(second.log)")
        // Agent 1 keeps resyncing meanwhile; agent 2 has not opened the maps.
        #expect(await first.waitForLog("maps repair:", count: 4))
        #expect(!second.log.contains("pinned maps ready"), "\(second.log)")
        #expect(try await Self.listing(fs.directory) == before, "nothing written while agent 1 runs")
        #expect(flockHolders(of: fs.directory) == [first.pid])

        kill(first.pid, SIGTERM)
        #expect(await first.waitForExit(limit: .seconds(20)) == 0)
        #expect(await second.waitForLog("maps sync:"), "agent 2 syncs once agent 1 is gone: \(second.log)")
        let after = try await Self.listing(fs.directory)
        #expect(after.contains("10.96.0.20") && !after.contains("10.96.0.10"), "agent 2's state: \(after)")
        #expect(flockHolders(of: fs.directory) == [second.pid])
        kill(second.pid, SIGTERM)
        #expect(await second.waitForExit(limit: .seconds(20)) == 0)
    }

    /// A kubeconfig for an API server that never answers: a listener that never accepts, so
    /// connections complete in its backlog and every request (TLS handshake first) hangs until it
    /// is cancelled or times out. Returns the kubeconfig's path and the listener (close it).
    static func silentAPIServer(root: String) throws -> (kubeconfig: String, listener: Int32) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard bound && listen(listener, 64) == 0 else {
            close(listener)
            throw TestFileError("cannot listen on 127.0.0.1: errno \(errno)")
        }
        let kubeconfig = root + "/kubeconfig"
        try write("""
            apiVersion: v1
            kind: Config
            clusters:
            - name: silent
              cluster: {server: "https://127.0.0.1:\(UInt16(bigEndian: address.sin_port))", insecure-skip-tls-verify: true}
            users:
            - name: agent
              user: {token: not-checked}
            contexts:
            - name: silent
              context: {cluster: silent, user: agent}
            current-context: silent

            """, to: kubeconfig)
        return (kubeconfig, listener)
    }

    /// Runs `body` with an agent (`kubeAgent`) on a `silentAPIServer`, once it has re-adopted its maps.
    static func withAgentOnSilentAPIServer(_ name: String, _ body: (Child) async throws -> Void) async throws {
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let root = try makeTempDirectory(name)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (kubeconfig, listener) = try silentAPIServer(root: root)
        defer { close(listener) }
        let agent = try kubeAgent(kubeconfig: kubeconfig, bpffs: fs.directory, log: root + "/agent.log")
        defer { agent.kill() }
        #expect(await agent.waitForLog("re-adopted"), "\(agent.log)")
        try await body(agent)
    }

    static func kubeAgent(kubeconfig: String, bpffs: String, log: String) throws -> Child {
        try portwayProcess(
            ["agent", "--kubeconfig", kubeconfig, "--no-datapath", "--proxy-listen", "off", "--health-port", "0", "--bpffs", bpffs, "--node-name", "node-a",
             "--node-ip", "192.0.2.10"] + sizeFlags, logPath: log)
    }

    @Test("one SIGTERM stops the agent within the grace period while the API server never answers (its informers never synced)")
    func stopsWhileTheAPIServerIsSilent() async throws {
        try await Self.withAgentOnSilentAPIServer("pwpl-silent") { agent in
            kill(agent.pid, SIGTERM)
            // Liveness, generous: the election's release of the Lease is cancelled after 10 s
            // (ShutdownTrigger.gracefulShutdownLimit); Kubernetes' default grace period is 30 s. Before,
            // the source waited forever for informers that had stopped without a sync.
            let status = await agent.waitForExit(limit: .seconds(25))
            #expect(status == 0, "exit status \(String(describing: status)) (nil: still running after 25 s)\n\(agent.log)")
            #expect(agent.log.contains("stopped"), "\(agent.log)")
        }
    }

    @Test("a second SIGTERM ends at once a graceful stop that waits on an API server that never answers (exit 143)")
    func secondSignalExitsAtOnce() async throws {
        // From "re-adopted" on, a stop goes through the election's release of the Lease, a request
        // the silent server never answers (the ServiceGroup would cancel it after 10 s).
        try await Self.withAgentOnSilentAPIServer("pwpl-signal2") { agent in
            kill(agent.pid, SIGTERM)
            #expect(await agent.waitForLog("signal 15: shutting down"), "\(agent.log)")
            #expect(agent.isRunning, "\(agent.log)")
            kill(agent.pid, SIGTERM)
            let status = await agent.waitForExit(limit: .seconds(5))
            #expect(status == 128 + SIGTERM, "the second signal exits at once with 143: \(String(describing: status))\n\(agent.log)")
        }
    }
}
