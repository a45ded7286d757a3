import CPortwayBPF
import Datapath
import Foundation
import Testing

private let agentReady = LabPrerequisites.readyWithAgent("AgentSurvivalTests")

/// The whole chain with the real agent: YAML files -> translator -> map writer -> tc programs,
/// and the datapath outliving the agent process.
@Suite(.serialized, .enabled(if: agentReady, "needs root, the netns lab prerequisites and the portway binary"))
struct AgentSurvivalTests {
    /// A NodePort Service `name` (port 80 → 8080) whose endpoints are the lab's three backends.
    private static func yaml(_ name: String, clusterIP: String, nodePort: Int) -> String {
        KubeYAML.join(
            KubeYAML.service(
                name, namespace: "lab", type: "NodePort", clusterIP: clusterIP,
                ports: [.init(name: "echo", port: 80, targetPort: 8080, nodePort: nodePort)]),
            KubeYAML.endpointSlice(
                "\(name)-1", namespace: "lab", service: name, ports: [.init(name: "echo", port: 8080)],
                endpoints: [
                    .init(Lab.backendIPs["be1"]!, nodeName: "lab-node"), .init(Lab.backendIPs["be2"]!, nodeName: "lab-node"),
                    .init(Lab.backendIPs["be3"]!, nodeName: "lab-node2"),
                ]))
    }

    /// Whether the master of nodeIP:`port` in the pins counts three backends.
    private static func programmed(_ lab: Lab, port: UInt16) -> Bool {
        (try? lab.maps.master(address: Lab.nodeIP, port: port, proto: UInt8(PW_PROTO_TCP)))?.count == 3
    }

    /// Starts `portway agent` in the node namespace (nsenter keeps the host's /sys/fs/bpf, which
    /// `ip netns exec` would hide by remounting /sys) and waits until nodeIP:`port` is programmed.
    private func startAgent(_ lab: Lab, dir: String, until port: UInt16 = 30090) async throws -> Child {
        let agent = try await onDedicatedThread {
            try lab.spawn(in: nil, [
                "nsenter", "--net=/var/run/netns/\(lab.node)", portwayBinary!, "agent", "--from-dir", dir,
                "--device", Lab.device, "--node-name", "lab-node", "--node-ip", Lab.nodeIP, "--bpffs", lab.bpffs,
                "--bpf-object", try Lab.objectPath(),
                "--service-map-size", "1024", "--backend-map-size", "1024", "--revnat-map-size", "1024",
                "--affinity-map-size", "1024", "--ct-map-size", "4096", "--snat-map-size", "4096",
            ])
        }
        do {
            try await eventually("the agent programmed \(Lab.nodeIP):\(port) with its three backends", every: .milliseconds(50)) {
                Self.programmed(lab, port: port)
            }
        } catch {
            agent.kill()
            throw error
        }
        return agent
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
            #expect(status.contains("netns sk_lookup: netns-link prog") == Datapath.skLookupSupported, "\(status)")
            #expect(status.contains("host routing off (--no-host-routing"))

            _ = try await portway(["attach"] + common + ["--bpf-object", object])
            let switched = try await portway(["status"] + common)
            #expect(switched.contains("host routing on ("))
            #expect(!switched.contains("cgroup-link"), "socket-LB off removes its links: \(switched)")

            let detached = try await portway(["detach"] + common)
            #expect(detached.contains("detached"))
            #expect(!(try await portway(["status"] + common)).contains("netns-link"), "detach removes the sk_lookup link")
            #expect(try await portway(["status"] + common).contains("host routing: nothing attached"))
        }
    }

    @Test("YAML through the agent reaches local and remote backends; traffic survives SIGKILL; the restarted agent writes again and keeps serving")
    func agentKillAndRestart() async throws {
        try await withLab { lab in
            let dir = lab.scripts + "/yaml"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Self.yaml("web", clusterIP: "10.96.0.90", nodePort: 30090).write(toFile: dir + "/web.yaml", atomically: true, encoding: .utf8)

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
            #expect(try await lab.attachments().filter { $0.device != nil }.count == 2)
            let afterKill = try await lab.burst("tcp", 30090, count: 30)
            #expect(afterKill.errors.isEmpty, "\(afterKill.errors)")
            #expect(Set(afterKill.countsByBackend.keys) == ["be1", "be2", "be3"])

            // A Service added while no agent runs: only the restarted agent can program it, so
            // seeing it programmed proves the new process came back and writes (the pins alone
            // keep serving 30090 whether it did or not).
            try Self.yaml("web2", clusterIP: "10.96.0.91", nodePort: 30091).write(toFile: dir + "/web2.yaml", atomically: true, encoding: .utf8)
            #expect(!Self.programmed(lab, port: 30091), "nobody programs the new Service while the agent is down")
            // A restarted agent swaps the programs in place; the established connection stays.
            let restarted = try await startAgent(lab, dir: dir, until: 30091)
            let added = try await lab.burst("tcp", 30091, count: 30)
            #expect(added.errors.isEmpty, "the Service only the restarted agent wrote serves: \(added.errors)")
            #expect(Set(added.countsByBackend.keys) == ["be1", "be2", "be3"], "\(added.countsByBackend)")
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
