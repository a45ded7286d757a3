import CPortwayBPF
import Datapath
import Foundation
import Testing

private let tcp = UInt8(PW_PROTO_TCP)
private let udp = UInt8(PW_PROTO_UDP)
private let clusterIP = "10.96.0.60"
private let clusterFlags = PW_SVC_FLAG_CLUSTER_IP | PW_SVC_FLAG_NON_ROUTABLE

/// Backends 1/11 (be1) and 2/12 (be2) on the node, 3/13 (be3) behind node2 (TCP/UDP ids).
private func addBackends(_ lab: Lab) throws {
    for (id, name) in [(1, "be1"), (2, "be2"), (3, "be3")] {
        try lab.maps.setBackend(id: UInt32(id), address: Lab.backendIPs[name]!, port: Lab.backendPort, proto: tcp)
        try lab.maps.setBackend(id: UInt32(id + 10), address: Lab.backendIPs[name]!, port: Lab.backendPort, proto: udp)
    }
}

/// ClusterIP for host processes and pods: socket-LB (cgroup hooks on the lab's own child cgroup)
/// and, with socket-LB off, the tc path on pod-facing devices. Root only.
@Suite(.serialized, .enabled(if: LabPrerequisites.ready && CgroupV2.defaultRoot() != nil, "needs root, the netns lab and a cgroup2 mount"))
struct SocketLBTests {
    private func setClusterIP(_ lab: Lab) throws {
        try addBackends(lab)
        try lab.maps.setService(address: clusterIP, port: 80, proto: tcp, flags: clusterFlags, revNat: 1, active: [1, 2, 3])
        try lab.maps.setService(address: clusterIP, port: 80, proto: udp, flags: clusterFlags, revNat: 2, active: [11, 12, 13])
    }

    @Test("node and pod processes reach a ClusterIP over TCP and UDP through socket-LB and see the frontend as peer")
    func socketLB() async throws {
        try await withLab(prefix: "pwdp") { lab in
            let attached = try await lab.install(socketLB: true)
            #expect(Set(attached.filter { $0.mode == .cgroup }.map(\.program)) == Set(CgroupHook.allCases.map(AttachPlan.Program.cgroup)))
            try setClusterIP(lab)

            for ns in [lab.node, lab.pod] {
                for proto in ["tcp", "udp"] {
                    let burst = try await lab.burst(from: ns, inCgroup: true, proto, clusterIP, 80, count: 30)
                    #expect(burst.errors.isEmpty, "\(ns) \(proto): \(burst.errors)")
                    #expect(Set(burst.countsByBackend.keys) == ["be1", "be2", "be3"], "\(ns) \(proto): \(burst.countsByBackend)")
                    for a in burst.answers {
                        // getpeername shows the frontend, the backend saw its own address.
                        #expect(a.peer == "\(clusterIP):80")
                        #expect(a.seen_local == "\(Lab.backendIPs[a.name]!):\(Lab.backendPort)")
                    }
                }
                // Unconnected UDP: the answers' source (recvmsg) is the frontend.
                let out = try await onDedicatedThread { try lab.clientRun(in: ns, inCgroup: true, ["udpfrom", clusterIP, "80", "10"]) }
                let burst = try JSONDecoder().decode(Burst.self, from: Data(out.utf8))
                #expect(burst.errors.isEmpty, "\(ns) udpfrom: \(burst.errors)")
                #expect(burst.answers.count == 10)
                #expect(burst.answers.allSatisfy { $0.peer == "\(clusterIP):80" }, "\(burst.answers.map(\.peer))")
            }
            // A process outside the cgroup is not translated (and no tc path serves ClusterIPs here).
            let outside = try? await lab.probe(from: lab.pod, "tcp", clusterIP, 80)
            #expect(outside?.hasPrefix("ok") != true, "\(outside ?? "no route")")

            // Detaching removes the cgroup links too: the cgroup's processes are no longer translated.
            let removed = try await lab.uninstall()
            #expect(removed.filter { $0.mode == .cgroup }.count == CgroupHook.allCases.count)
            #expect(try await lab.attachments().isEmpty)
            let after = try? await lab.probe(from: lab.node, inCgroup: true, "tcp", clusterIP, 80)
            #expect(after?.hasPrefix("ok") != true, "\(after ?? "no route")")
        }
    }

    @Test("socket-LB: 127.0.0.1:<nodePort> and 0.0.0.0:<nodePort> reach the NodePort's wildcard entry; the node IP's entry too")
    func nodePortFromTheNode() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install(socketLB: true)
            try addBackends(lab)
            let nodePort = PW_SVC_FLAG_NODEPORT
            try lab.maps.setService(address: "0.0.0.0", port: 30120, proto: tcp, flags: nodePort | PW_SVC_FLAG_NON_ROUTABLE, revNat: 4, active: [1, 2])
            try lab.maps.setService(address: Lab.nodeIP, port: 30120, proto: tcp, flags: nodePort, revNat: 5, active: [1, 2])
            // A wildcard entry that is not a NodePort is not used for loopback.
            try lab.maps.setService(address: "0.0.0.0", port: 30121, proto: tcp, flags: clusterFlags, revNat: 6, active: [1])
            for host in ["127.0.0.1", "0.0.0.0", Lab.nodeIP] {
                let burst = try await lab.burst(from: lab.node, inCgroup: true, "tcp", host, 30120, count: 10)
                #expect(burst.errors.isEmpty, "\(host): \(burst.errors)")
                #expect(Set(burst.countsByBackend.keys).isSubset(of: ["be1", "be2"]) && burst.answers.count == 10, "\(host): \(burst.countsByBackend)")
                // getpeername shows what the socket connected to (0.0.0.0 is connected as itself).
                #expect(burst.answers.allSatisfy { $0.peer == "\(host):30120" }, "\(host): \(burst.answers.map(\.peer))")
            }
            #expect(try await lab.probe(from: lab.node, inCgroup: true, "tcp", "127.0.0.1", 30121) == "refused")
        }
    }

    @Test("a cgroup path that is not cgroup v2 is a clear error and attaches nothing")
    func badCgroupPath() async throws {
        try await withLab(prefix: "pwdp") { lab in
            let object = try Lab.objectPath()
            let node = lab.node, bpffs = lab.bpffs
            for path in ["/nonexistent-pwdp", "/tmp"] {
                let result: DatapathError? = try await onDedicatedThread {
                    try inNetns(node) {
                        do {
                            try Datapath.install(DatapathOptions(devices: [Lab.device], socketLBCgroup: path, bpffs: bpffs, objectPath: object))
                            return nil
                        } catch let e as DatapathError { return e }
                    }
                }
                guard case .cgroupNotFound(let reported, _)? = result else {
                    Issue.record("\(path): expected cgroupNotFound, got \(String(describing: result))")
                    continue
                }
                #expect(reported == path)
                #expect(result?.description.contains("--cgroup-path") == true)
            }
            #expect(try await lab.attachments().isEmpty)
        }
    }

    @Test("with socket-LB off the pod reaches the ClusterIP through the tc path on its device")
    func tcPathForPods() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install(socketLB: true)
            let attached = try await lab.install(podDevices: [Lab.podDevice])
            #expect(attached.allSatisfy { $0.mode != .cgroup })
            #expect(try await lab.attachments().allSatisfy { $0.mode != .cgroup }, "turning socket-LB off removes its links")
            try setClusterIP(lab)
            for proto in ["tcp", "udp"] {
                let burst = try await lab.burst(from: lab.pod, proto, clusterIP, 80, count: 30)
                #expect(burst.errors.isEmpty, "\(proto): \(burst.errors)")
                #expect(Set(burst.countsByBackend.keys) == ["be1", "be2", "be3"], "\(proto): \(burst.countsByBackend)")
                for a in burst.answers {
                    #expect(a.peer == "\(clusterIP):80")
                    // Per-packet DNAT: the backend saw the pod itself (no SNAT from a pod device).
                    #expect(a.seen_peer.hasPrefix("\(Lab.podIP):"))
                }
            }
        }
    }

    @Test("socket-LB sends an L7LB ClusterIP from the node to 127.0.0.1:<proxy port>; getpeername shows the frontend")
    func socketLBL7() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install(podDevices: [Lab.podDevice], socketLB: true)
            try lab.maps.setService(
                address: clusterIP, port: 443, proto: tcp, flags: clusterFlags, flags2: PW_SVC_FLAG2_L7LB, revNat: 3, active: [],
                affinityTimeout: 15003)
            let proxy = try await onDedicatedThread { try ProxyStub(netns: lab.node, port: 15003, registerIn: lab.bpffs) }
            defer { proxy.stop() }
            let fromNode = try await lab.burst(from: lab.node, inCgroup: true, "tcp", clusterIP, 443, count: 5)
            #expect(fromNode.errors.isEmpty, "\(fromNode.errors)")
            #expect(fromNode.countsByBackend == ["proxy": 5])
            #expect(fromNode.answers.allSatisfy { $0.peer == "\(clusterIP):443" && $0.seen_local == "127.0.0.1:15003" })
            // A pod in the cgroup is left to the tc path, which keeps the original destination.
            let fromPod = try await lab.burst(from: lab.pod, inCgroup: true, "tcp", clusterIP, 443, count: 5)
            #expect(fromPod.errors.isEmpty, "\(fromPod.errors)")
            #expect(fromPod.answers.allSatisfy { $0.seen_local == "\(clusterIP):443" && $0.seen_peer.hasPrefix("\(Lab.podIP):") })
        }
    }
}
