import CPortwayBPF
import Datapath
import Foundation
import Testing

/// The `portway` binary next to the test bundle (swift build builds it with the tests), or
/// $PORTWAY_BIN.
let portwayBinary: String? = {
    if let env = ProcessInfo.processInfo.environment["PORTWAY_BIN"], FileManager.default.isExecutableFile(atPath: env) {
        return env
    }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("portway").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir.deleteLastPathComponent()
    }
    return nil
}()

private let agentReady: Bool = {
    guard LabPrerequisites.ready else { return false }
    guard portwayBinary != nil else {
        print("⚠️ AgentSurvivalTests skipped: the portway binary was not found next to the tests (set PORTWAY_BIN)")
        return false
    }
    guard haveCommand("nsenter") else {
        print("⚠️ AgentSurvivalTests skipped: nsenter (util-linux) not found")
        return false
    }
    return true
}()

/// The whole chain with the real agent: YAML files -> translator -> map writer -> tc programs,
/// and the datapath outliving the agent process.
@Suite(.serialized, .enabled(if: agentReady, "needs root, the netns lab prerequisites and the portway binary"))
struct AgentSurvivalTests {
    private static let yaml = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: lab}
        spec:
          type: NodePort
          clusterIP: 10.96.0.90
          ports:
          - {name: echo, port: 80, targetPort: 8080, nodePort: 30090, protocol: TCP}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: web-1
          namespace: lab
          labels: {kubernetes.io/service-name: web}
        addressType: IPv4
        ports:
        - {name: echo, port: 8080, protocol: TCP}
        endpoints:
        - {addresses: ["10.11.1.2"], conditions: {ready: true}, nodeName: lab-node}
        - {addresses: ["10.11.2.2"], conditions: {ready: true}, nodeName: lab-node}
        - {addresses: ["10.12.1.2"], conditions: {ready: true}, nodeName: lab-node2}

        """

    /// Starts `portway agent` in the node namespace (nsenter keeps the host's /sys/fs/bpf, which
    /// `ip netns exec` would hide by remounting /sys) and waits until the frontend is programmed.
    private func startAgent(_ lab: Lab, dir: String) async throws -> Child {
        let agent = try await onDedicatedThread {
            try lab.spawn(in: nil, [
                "nsenter", "--net=/var/run/netns/\(lab.node)", portwayBinary!, "agent", "--from-dir", dir,
                "--device", Lab.device, "--node-name", "lab-node", "--node-ip", Lab.nodeIP, "--bpffs", lab.bpffs,
                "--bpf-object", try Lab.objectPath(),
                "--service-map-size", "1024", "--backend-map-size", "1024", "--revnat-map-size", "1024",
                "--affinity-map-size", "1024", "--ct-map-size", "4096", "--snat-map-size", "4096",
            ])
        }
        // Programmed when the master of nodeIP:30090 has its three backends.
        for _ in 0..<200 {
            if let master = try? lab.maps.master(address: Lab.nodeIP, port: 30090, proto: UInt8(PW_PROTO_TCP)),
                master.count == 3
            {
                return agent
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        agent.kill()
        throw CommandError(command: ["portway", "agent"], status: -1, output: "the frontend was never programmed")
    }

    @Test("portway bpf attach|status|detach: the host routing mode and why, pod devices and socket-LB hooks")
    func bpfCommands() async throws {
        try await withLab(prefix: "pwdp") { lab in
            let object = try Lab.objectPath()
            let cgroup = try await onDedicatedThread { try lab.makeCgroup() }
            let nsenter = ["nsenter", "--net=/var/run/netns/\(lab.node)", portwayBinary!, "bpf"]
            let common = ["--device", Lab.device, "--pod-device", Lab.podDevice, "--bpffs", lab.bpffs]
            func portway(_ args: [String]) async throws -> String {
                try await onDedicatedThread { try run(nsenter + args) }
            }
            let attached = try await portway(
                ["attach"] + common + ["--bpf-object", object, "--no-host-routing", "--socket-lb", "--cgroup-path", cgroup])
            #expect(attached.contains("\(Lab.podDevice) ingress tcx"))
            #expect(attached.contains("cgroup \(cgroup) connect4 cgroup-link"))
            #expect(attached.contains("host routing off (--no-host-routing"))

            let status = try await portway(["status"] + common)
            #expect(status.contains("\(Lab.device) ingress: tcx prog"))
            #expect(status.contains("\(Lab.podDevice) egress: tcx prog"))
            #expect(status.contains("connect4: cgroup-link prog"), "\(status)")
            #expect(status.contains("host routing off (--no-host-routing"))

            _ = try await portway(["attach"] + common + ["--bpf-object", object])
            let switched = try await portway(["status"] + common)
            #expect(switched.contains("host routing on ("))
            #expect(!switched.contains("cgroup-link"), "socket-LB off removes its links: \(switched)")

            let detached = try await portway(["detach"] + common)
            #expect(detached.contains("detached"))
            #expect(try await portway(["status"] + common).contains("host routing: nothing attached"))
        }
    }

    @Test("YAML through the agent reaches local and remote backends; traffic survives SIGKILL; a restart keeps serving")
    func agentKillAndRestart() async throws {
        try await withLab { lab in
            let dir = lab.scripts + "/yaml"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Self.yaml.write(toFile: dir + "/web.yaml", atomically: true, encoding: .utf8)

            let agent = try await startAgent(lab, dir: dir)
            let first = try await lab.burst("tcp", 30090, count: 60)
            #expect(first.errors.isEmpty, "\(first.errors)")
            #expect(Set(first.countsByBackend.keys) == ["be1", "be2", "be3"], "\(first.countsByBackend)")
            #expect(first.answers.allSatisfy { $0.peer == "\(Lab.nodeIP):30090" })

            let held = try await lab.holdConnection(30090)
            #expect(await held.line() == "connected \(Lab.nodeIP):30090")
            held.send("before")
            let before = try #require(await held.line())

            try await onDedicatedThread { agent.kill() }  // SIGKILL: no cleanup ran
            #expect(try await lab.attachments().count == 2)
            let afterKill = try await lab.burst("tcp", 30090, count: 30)
            #expect(afterKill.errors.isEmpty, "\(afterKill.errors)")
            #expect(Set(afterKill.countsByBackend.keys) == ["be1", "be2", "be3"])

            // A restarted agent swaps the programs in place; the established connection stays.
            let restarted = try await startAgent(lab, dir: dir)
            held.send("after restart")
            let after = try #require(await held.line())
            #expect(after.split(separator: " ").first == before.split(separator: " ").first)
            let afterRestart = try await lab.burst("tcp", 30090, count: 30)
            #expect(afterRestart.errors.isEmpty, "\(afterRestart.errors)")
            held.closeInput()
            try await onDedicatedThread { restarted.kill() }
        }
    }
}
