import CPortwayBPF
import Datapath
import Foundation
import Testing

private let tcp = UInt8(PW_PROTO_TCP)
private let udp = UInt8(PW_PROTO_UDP)
private let nodePortFlags = PW_SVC_FLAG_NODEPORT

/// Backends 1/11 (be1) and 2/12 (be2) on the node, 3/13 (be3) behind node2 (TCP/UDP ids).
private func addBackends(_ lab: Lab) throws {
    for (id, name) in [(1, "be1"), (2, "be2"), (3, "be3")] {
        try lab.maps.setBackend(id: UInt32(id), address: Lab.backendIPs[name]!, port: Lab.backendPort, proto: tcp)
        try lab.maps.setBackend(id: UInt32(id + 10), address: Lab.backendIPs[name]!, port: Lab.backendPort, proto: udp)
    }
}

/// Real packets through the tc programs, in network namespaces (see `Lab`). Root only.
@Suite(.serialized, .enabled(if: LabPrerequisites.ready, "needs root, iproute2, python3, bpffs and bpf/out/portway_lb.o"))
struct NodePortDatapathTests {
    @Test("TCP and UDP to nodeIP:nodePort reach every backend; replies carry the frontend address")
    func nodePortReachesEveryBackend() async throws {
        try await withLab { lab in
            let attached = try await lab.install()
            #expect(attached.compactMap(\.direction) == [.egress, .ingress])
            try addBackends(lab)
            try lab.maps.setService(address: Lab.nodeIP, port: 30080, proto: tcp, flags: nodePortFlags, revNat: 1, active: [1, 2])
            try lab.maps.setService(address: Lab.nodeIP, port: 30080, proto: udp, flags: nodePortFlags, revNat: 2, active: [11, 12])

            for proto in ["tcp", "udp"] {
                let burst = try await lab.burst(proto, 30080, count: 60)
                #expect(burst.errors.isEmpty, "\(proto): \(burst.errors)")
                #expect(Set(burst.countsByBackend.keys) == ["be1", "be2"], "\(proto): \(burst.countsByBackend)")
                for a in burst.answers {
                    // The client's socket is connected to the frontend: it only got replies from there.
                    #expect(a.peer == "\(Lab.nodeIP):30080")
                    // The backend saw the real client (no SNAT for local backends) and its own address (DNAT).
                    #expect(a.seen_peer.hasPrefix("\(Lab.clientIP):"))
                    #expect(a.seen_local == "\(Lab.backendIPs[a.name]!):\(Lab.backendPort)")
                }
            }
        }
    }

    @Test("a backend behind another node is reached through SNAT to the node address")
    func remoteBackendThroughSNAT() async throws {
        try await withLab { lab in
            try await lab.install()
            try addBackends(lab)
            try lab.maps.setService(address: Lab.nodeIP, port: 30081, proto: tcp, flags: nodePortFlags, revNat: 3, active: [3])
            try lab.maps.setService(address: Lab.nodeIP, port: 30081, proto: udp, flags: nodePortFlags, revNat: 4, active: [13])
            // A mixed service: local and remote backends side by side.
            try lab.maps.setService(address: Lab.nodeIP, port: 30082, proto: tcp, flags: nodePortFlags, revNat: 5, active: [1, 3])

            for proto in ["tcp", "udp"] {
                let burst = try await lab.burst(proto, 30081, count: 20)
                #expect(burst.errors.isEmpty, "\(proto): \(burst.errors)")
                #expect(burst.countsByBackend == ["be3": 20])
                for a in burst.answers {
                    #expect(a.peer == "\(Lab.nodeIP):30081")
                    // be3 saw the node, not the client: its reply had to come back through the node.
                    #expect(a.seen_peer.hasPrefix("\(Lab.nodeIP):"))
                    #expect(a.seen_local == "\(Lab.backendIPs["be3"]!):\(Lab.backendPort)")
                }
            }
            let mixed = try await lab.burst("tcp", 30082, count: 40)
            #expect(mixed.errors.isEmpty, "\(mixed.errors)")
            #expect(Set(mixed.countsByBackend.keys) == ["be1", "be3"])
            for a in mixed.answers {
                #expect(a.seen_peer.hasPrefix(a.name == "be1" ? "\(Lab.clientIP):" : "\(Lab.nodeIP):"))
            }
            #expect(try lab.maps.count(PW_MAP_SNAT, keySize: MemoryLayout<pw_snat4_key>.size) > 0)
        }
    }

    @Test("removing a backend: new connections avoid it, an established one keeps working")
    func backendRemoval() async throws {
        try await withLab { lab in
            try await lab.install()
            try addBackends(lab)
            try lab.maps.setService(address: Lab.nodeIP, port: 30083, proto: tcp, flags: nodePortFlags, revNat: 6, active: [1, 2])

            let held = try await lab.holdConnection(30083)
            #expect(await held.line() == "connected \(Lab.nodeIP):30083")
            held.send("first")
            let first = try #require(await held.line())
            let heldBackend = String(first.split(separator: " ")[0])
            #expect(["be1", "be2"].contains(heldBackend))
            let (gone, kept): (UInt32, String) = heldBackend == "be1" ? (1, "be2") : (2, "be1")

            // What the writer does when the EndpointSlice loses the endpoint: the master shrinks,
            // the stale slot goes, the orphan backend goes last.
            try lab.maps.setService(
                address: Lab.nodeIP, port: 30083, proto: tcp, flags: nodePortFlags, revNat: 6, active: [gone == 1 ? 2 : 1])
            try lab.maps.deleteBackend(id: gone)

            let after = try await lab.burst("tcp", 30083, count: 30)
            #expect(after.errors.isEmpty, "\(after.errors)")
            #expect(after.countsByBackend == [kept: 30])

            held.send("second")
            let second = try #require(await held.line())
            #expect(second.hasPrefix("\(heldBackend) "), "established connection moved or broke: \(second)")
            held.closeInput()
        }
    }

    @Test("a Local frontend without a local backend drops; traffic not for a frontend passes untouched")
    func dropsAndPassThrough() async throws {
        try await withLab { lab in
            try await lab.install()
            try addBackends(lab)
            try lab.maps.setService(
                address: Lab.nodeIP, port: 30084, proto: tcp, flags: nodePortFlags | PW_SVC_FLAG_EXT_LOCAL, revNat: 7, active: [])
            #expect(try await lab.probe("tcp", 30084) == "timeout")
            // No frontend on this port: the node's own stack answers (RST), nothing was dropped.
            #expect(try await lab.probe("tcp", 30085) == "refused")
            let plain = try await lab.burst("tcp", 7000, count: 5)
            #expect(plain.countsByBackend == ["node": 5])
            for a in plain.answers { #expect(a.seen_peer.hasPrefix("\(Lab.clientIP):")) }
            #expect(try await lab.burst("udp", 7000, count: 5).countsByBackend == ["node": 5])
            // A ClusterIP-style (non-routable) entry is not served at the external device.
            try lab.maps.setService(
                address: Lab.nodeIP, port: 7000, proto: tcp, flags: PW_SVC_FLAG_CLUSTER_IP | PW_SVC_FLAG_NON_ROUTABLE,
                revNat: 8, active: [1])
            #expect(try await lab.burst("tcp", 7000, count: 5).countsByBackend == ["node": 5])
            // L7LB frontends are handed to the proxy: see L7RedirectTests.
        }
    }

    @Test("terminating backends serve only when no backend is active; session affinity sticks")
    func terminatingAndAffinity() async throws {
        try await withLab { lab in
            try await lab.install()
            try addBackends(lab)
            try lab.maps.setService(
                address: Lab.nodeIP, port: 30086, proto: tcp, flags: nodePortFlags, revNat: 9, active: [], terminating: [2])
            #expect(try await lab.burst("tcp", 30086, count: 10).countsByBackend == ["be2": 10])
            try lab.maps.setService(
                address: Lab.nodeIP, port: 30086, proto: tcp, flags: nodePortFlags, revNat: 9, active: [1], terminating: [2])
            #expect(try await lab.burst("tcp", 30086, count: 10).countsByBackend == ["be1": 10])

            try lab.maps.setService(
                address: Lab.nodeIP, port: 30087, proto: tcp, flags: nodePortFlags | PW_SVC_FLAG_AFFINITY, revNat: 10,
                active: [1, 2], affinityTimeout: 3600)
            let sticky = try await lab.burst("tcp", 30087, count: 20)
            #expect(sticky.errors.isEmpty)
            #expect(sticky.countsByBackend.count == 1, "affinity: one client, one backend: \(sticky.countsByBackend)")
        }
    }

    @Test("a pod device leaving the plan has its link detached and unpinned; cleanup removes every link, the proxy's policy route and the pins")
    func pruneAndCleanup() async throws {
        try await withLab { lab in
            let withPod = try await lab.install(podDevices: [Lab.podDevice])
            #expect(withPod.contains { $0.device == Lab.podDevice })
            let node = lab.node, bpffs = lab.bpffs
            let links = bpffs + "/links"
            #expect(FileManager.default.fileExists(atPath: links + "/\(Lab.podDevice)_ingress"))
            #expect(try await onDedicatedThread { try inNetns(node) { portway_dp_proxy_route_present() } } == 1)

            // The pod's device is no longer wanted (its pod went): pruned.
            let pruned = try await onDedicatedThread {
                try inNetns(node) { Datapath.pruneLinks(DatapathOptions(devices: [Lab.device], bpffs: bpffs)) }
            }
            #expect(pruned == ["\(Lab.podDevice)_egress", "\(Lab.podDevice)_ingress"])
            #expect(!FileManager.default.fileExists(atPath: links + "/\(Lab.podDevice)_ingress"))
            let left = try await onDedicatedThread {
                try inNetns(node) { Datapath.attachments(DatapathOptions(devices: [Lab.device], podDevices: [Lab.podDevice], bpffs: bpffs)) }
            }
            // The uplink's two hooks stay, and the namespace's sk_lookup link (no device) where the kernel has it.
            #expect(left.compactMap(\.device) == [Lab.device, Lab.device])
            #expect(left.filter { $0.device == nil }.count == (Datapath.skLookupSupported ? 1 : 0))

            let report = try await onDedicatedThread { try inNetns(node) { try Datapath.cleanup(bpffs: bpffs) } }
            #expect(report.links == ["\(Lab.device)_egress", "\(Lab.device)_ingress"] + (Datapath.skLookupSupported ? ["netns_sk_lookup"] : []))
            #expect(report.policyRoute)
            #expect(report.pins.contains("pw_lb4_services"))
            #expect(try await lab.attachments().isEmpty)
            #expect(!FileManager.default.fileExists(atPath: bpffs))
            #expect(try await onDedicatedThread { try inNetns(node) { portway_dp_proxy_route_present() } } == 0)
            let rules = try await onDedicatedThread { try run(["ip", "-n", node, "rule"]) }
            #expect(!rules.contains("lookup 2005"), "\(rules)")
        }
    }

    @Test("re-installing swaps the programs in place; uninstall detaches")
    func reinstallAndUninstall() async throws {
        try await withLab { lab in
            let first = try await lab.install()
            #expect(first.filter { $0.device != nil }.allSatisfy { $0.mode == .tcx })
            #expect(first.filter { $0.device == nil }.map(\.target) == (Datapath.skLookupSupported ? [.netns(hook: .skLookup)] : []))
            try addBackends(lab)
            try lab.maps.setService(address: Lab.nodeIP, port: 30088, proto: tcp, flags: nodePortFlags, revNat: 11, active: [1])
            let held = try await lab.holdConnection(30088)
            #expect(await held.line() == "connected \(Lab.nodeIP):30088")

            let second = try await lab.install()
            #expect(second.map(\.programID) != first.map(\.programID))
            #expect(try await lab.attachments() == second)
            // The maps (and the CT entry of the held connection) survived the swap.
            held.send("still there")
            #expect(await held.line()?.hasPrefix("be1 ") == true)

            #expect(try await lab.uninstall() == second)
            #expect(try await lab.attachments().isEmpty)
            #expect(try await lab.probe("tcp", 30088) == "refused")
            held.closeInput()
        }
    }

    @Test("the clsact fallback carries traffic too; switching to tcx removes it")
    func clsactMode() async throws {
        try await withLab { lab in
            let attached = try await lab.install(mode: .tc)
            #expect(attached.filter { $0.device != nil }.allSatisfy { $0.mode == .tc })
            try addBackends(lab)
            try lab.maps.setService(address: Lab.nodeIP, port: 30089, proto: tcp, flags: nodePortFlags, revNat: 12, active: [1, 2])
            let burst = try await lab.burst("tcp", 30089, count: 30)
            #expect(burst.errors.isEmpty)
            #expect(Set(burst.countsByBackend.keys) == ["be1", "be2"])
            let tcx = try await lab.install()
            #expect(tcx.filter { $0.device != nil }.allSatisfy { $0.mode == .tcx })
            #expect(try await lab.attachments().filter { $0.device != nil }.allSatisfy { $0.mode == .tcx })
            #expect(Set(try await lab.burst("tcp", 30089, count: 30).countsByBackend.keys) == ["be1", "be2"])
        }
    }

    @Test("a missing device is a clear error and attaches nothing")
    func missingDevice() async throws {
        try await withLab { lab in
            let object = try Lab.objectPath()
            let bpffs = lab.bpffs
            let node = lab.node
            let result: Result<[AttachedProgram], DatapathError> = try await onDedicatedThread {
                try inNetns(node) {
                    do {
                        return .success(try Datapath.install(
                            DatapathOptions(devices: ["eth0", "nosuchdev0"], bpffs: bpffs, objectPath: object)))
                    } catch let e as DatapathError { return .failure(e) }
                }
            }
            guard case .failure(let error) = result else {
                Issue.record("install succeeded with a missing device")
                return
            }
            #expect(error == .deviceNotFound("nosuchdev0"))
            #expect(error.description.contains("--device"))
            #expect(try await lab.attachments().isEmpty)
        }
    }
}
