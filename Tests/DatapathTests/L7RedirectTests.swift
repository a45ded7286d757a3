import CPortwayBPF
import Datapath
import Foundation
import Testing

private let tcp = UInt8(PW_PROTO_TCP)
private let clusterIP = "10.96.0.50"
private let proxyPort: UInt16 = 15001
private let noProxyPort: UInt16 = 15002

/// L7LB frontends: packets are handed to the local proxy socket (bpf_sk_assign, TPROXY style),
/// never DNATed. Real packets in network namespaces (`Lab`, prefix `pwdp`). Root only.
@Suite(.serialized, .enabled(if: LabPrerequisites.ready, "needs root, iproute2, python3, bpffs and bpf/out/portway_lb.o"))
struct L7RedirectTests {
    /// An L7LB frontend: no backends, the proxy port in the master's union.
    private func setL7(_ lab: Lab, address: String, port: UInt16, flags: Int32, revNat: UInt16, proxy: UInt16) throws {
        try lab.maps.setService(
            address: address, port: port, proto: tcp, flags: flags, flags2: PW_SVC_FLAG2_L7LB, revNat: revNat, active: [],
            affinityTimeout: UInt32(proxy))
    }

    /// Registered: the way the agent's proxy listens (the kernel's lookup with `pw_sk_lookup`);
    /// not registered: the tc programs' bpf_sk_assign (an older agent, a take-over's gap).
    @Test(
        "NodePort of an L7LB frontend: the proxy accepts the client's own address and sees the frontend as local address",
        arguments: [true, false])
    func nodePortLandsOnProxy(registered: Bool) async throws {
        try await withLab(prefix: "pwdp") { lab in
            let attached = try await lab.install(podDevices: [Lab.podDevice])
            #expect(attached.contains { $0.target == .netns(hook: .skLookup) && $0.mode == .netns } == Datapath.skLookupSupported)
            try setL7(lab, address: Lab.nodeIP, port: 30100, flags: PW_SVC_FLAG_NODEPORT, revNat: 1, proxy: proxyPort)
            try setL7(lab, address: Lab.nodeIP, port: 30101, flags: PW_SVC_FLAG_NODEPORT, revNat: 2, proxy: noProxyPort)
            let proxy = try await onDedicatedThread {
                try ProxyStub(netns: lab.node, port: proxyPort, registerIn: registered ? lab.bpffs : nil)
            }
            defer { proxy.stop() }
            #expect(try L7ListenerMap(bpffs: lab.bpffs).cookie(port: proxyPort) == (registered ? proxy.cookie : nil))

            let burst = try await lab.burst("tcp", 30100, count: 10)
            #expect(burst.errors.isEmpty, "\(burst.errors)")
            #expect(burst.countsByBackend == ["proxy": 10])
            for a in burst.answers {
                #expect(a.seen_peer.hasPrefix("\(Lab.clientIP):"), "the proxy must see the real client: \(a.seen_peer)")
                #expect(a.seen_local == "\(Lab.nodeIP):30100", "original destination: \(a.seen_local)")
                #expect(a.peer == "\(Lab.nodeIP):30100")
            }
            // No proxy on that frontend's port: the SYN is dropped (an agent restarting), the client retries.
            #expect(try await lab.probe("tcp", 30101) == "timeout")
        }
    }

    @Test("a LoadBalancer IP (not a node address) of an L7LB frontend lands on the proxy from outside; no listener: SYN dropped")
    func loadBalancerIPLandsOnProxy() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install()
            let lbIP = "198.51.100.10"
            let client = lab.client
            _ = try await onDedicatedThread { try run(["ip", "-n", client, "route", "add", "198.51.100.0/24", "via", Lab.nodeIP]) }
            try setL7(lab, address: lbIP, port: 443, flags: PW_SVC_FLAG_LOADBALANCER, revNat: 5, proxy: proxyPort)
            try setL7(lab, address: lbIP, port: 444, flags: PW_SVC_FLAG_LOADBALANCER, revNat: 6, proxy: noProxyPort)
            let proxy = try await onDedicatedThread { try ProxyStub(netns: lab.node, port: proxyPort, registerIn: lab.bpffs) }
            defer { proxy.stop() }

            let burst = try await lab.burst(from: client, "tcp", lbIP, 443, count: 10)
            #expect(burst.errors.isEmpty, "\(burst.errors)")
            #expect(burst.countsByBackend == ["proxy": 10])
            #expect(burst.answers.allSatisfy { $0.seen_peer.hasPrefix("\(Lab.clientIP):") && $0.seen_local == "\(lbIP):443" })
            #expect(try await lab.probe(from: client, "tcp", lbIP, 444) == "timeout")
        }
    }

    @Test("ClusterIP of an L7LB frontend from a pod lands on the proxy; without a listener the pod's SYN is dropped, an open connection reset")
    func clusterIPFromPodLandsOnProxy() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install(podDevices: [Lab.podDevice])
            let clusterFlags = PW_SVC_FLAG_CLUSTER_IP | PW_SVC_FLAG_NON_ROUTABLE
            try setL7(lab, address: clusterIP, port: 80, flags: clusterFlags, revNat: 3, proxy: proxyPort)
            try setL7(lab, address: clusterIP, port: 81, flags: clusterFlags, revNat: 4, proxy: noProxyPort)
            let proxy = try await onDedicatedThread { try ProxyStub(netns: lab.node, port: proxyPort, registerIn: lab.bpffs) }

            let burst = try await lab.burst(from: lab.pod, "tcp", clusterIP, 80, count: 10)
            #expect(burst.errors.isEmpty, "\(burst.errors)")
            #expect(burst.countsByBackend == ["proxy": 10])
            for a in burst.answers {
                #expect(a.seen_peer.hasPrefix("\(Lab.podIP):"))
                #expect(a.seen_local == "\(clusterIP):80")
                #expect(a.peer == "\(clusterIP):80")
            }
            #expect(try await lab.probe(from: lab.pod, "tcp", clusterIP, 81) == "timeout")
            // The proxy going away: its registration goes with the socket, and new connections wait
            // for the next one (SYN retransmission), neither reset nor answered.
            await onDedicatedThreadQuiet { proxy.stop() }
            #expect(try L7ListenerMap(bpffs: lab.bpffs).cookie(port: proxyPort) == nil)
            #expect(try await lab.probe(from: lab.pod, "tcp", clusterIP, 80) == "timeout")
        }
    }

    @Test("a connection attempted while the proxy restarts is served once it listens again (the SYN is dropped, not reset)")
    func synWaitsForTheProxy() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install()
            try setL7(lab, address: Lab.nodeIP, port: 30103, flags: PW_SVC_FLAG_NODEPORT, revNat: 9, proxy: proxyPort)
            // The client's first SYN goes out while nothing listens (the probe waits up to 4 s); the
            // proxy starts 300 ms later and takes the retransmitted SYN (1 s after the first).
            async let answer = onDedicatedThread { try lab.clientRun(["probe", "tcp", Lab.nodeIP, "30103", "4"]).trimmed }
            try await Task.sleep(for: .milliseconds(300))
            let proxy = try await onDedicatedThread { try ProxyStub(netns: lab.node, port: proxyPort) }
            defer { proxy.stop() }
            #expect(try await answer == "ok proxy")
        }
    }

    @Test("a client port reused right after the proxy closed first is answered at once: the node's TIME_WAIT socket gives way to the proxy's listener")
    func reusedPortAfterProxyClose() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install(podDevices: [Lab.podDevice])
            try setL7(lab, address: Lab.nodeIP, port: 30100, flags: PW_SVC_FLAG_NODEPORT, revNat: 1, proxy: proxyPort)
            try setL7(lab, address: clusterIP, port: 80, flags: PW_SVC_FLAG_CLUSTER_IP | PW_SVC_FLAG_NON_ROUTABLE, revNat: 3, proxy: proxyPort)
            // The stub answers one line and closes first, as the proxy does after `Connection: close`.
            let proxy = try await onDedicatedThread { try ProxyStub(netns: lab.node, port: proxyPort, registerIn: lab.bpffs) }
            defer { proxy.stop() }

            try #require(Datapath.skLookupSupported, "this kernel has no sk_lookup: the TIME_WAIT stall cannot be avoided")
            let count = 6
            for (ns, client, address, port, sourcePort) in [
                (lab.client, Lab.clientIP, Lab.nodeIP, UInt16(30100), UInt16(40123)), (lab.pod, Lab.podIP, clusterIP, UInt16(80), UInt16(40124)),
            ] {
                let before = try await lab.tcpExt(ns, "TCPSynRetrans")
                let reuse = try await lab.reuse(from: ns, address, port, sourcePort: sourcePort, count: count)
                let retransmitted = try await lab.tcpExt(ns, "TCPSynRetrans") - before
                #expect(reuse.errors.isEmpty, "\(address): \(reuse.errors)")
                #expect(reuse.countsByBackend == ["proxy": count])
                #expect(reuse.answers.allSatisfy { $0.seen_peer == "\(client):\(sourcePort)" && $0.seen_local == "\(address):\(port)" })
                // The case under test happened: the node holds the TIME_WAIT socket of the 4-tuple
                // (each connection's SYN met the one of the connection before).
                #expect(try await lab.timeWaitCount(lab.node, local: "\(address):\(port)", peer: "\(client):\(sourcePort)") == 1)
                // A SYN the node did not answer is sent again a second later: none may be.
                #expect(retransmitted == 0, "\(address): \(retransmitted) SYNs of \(count) reused-port connections were retransmitted (stalled)")
            }
        }
    }

    @Test("take-over: a second SO_REUSEPORT listener registered over the first shares the port with it; the first closing refuses nothing")
    func takeOverSharesThePort() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install(podDevices: [Lab.podDevice])
            try setL7(lab, address: Lab.nodeIP, port: 30100, flags: PW_SVC_FLAG_NODEPORT, revNat: 1, proxy: proxyPort)
            let old = try await onDedicatedThread {
                try ProxyStub(netns: lab.node, port: proxyPort, registerIn: lab.bpffs, name: "old", reusePort: true)
            }
            defer { old.stop() }
            let new = try await onDedicatedThread {
                try ProxyStub(netns: lab.node, port: proxyPort, registerIn: lab.bpffs, name: "new", reusePort: true)
            }
            defer { new.stop() }
            let listeners = L7ListenerMap(bpffs: lab.bpffs)
            #expect(try listeners.cookie(port: proxyPort) == new.cookie)

            // Both agents' listeners take connections (the kernel picks in the group after the program).
            let shared = try await lab.burst("tcp", 30100, count: 40)
            #expect(shared.errors.isEmpty, "\(shared.errors)")
            #expect(Set(shared.countsByBackend.keys) == ["old", "new"], "\(shared.countsByBackend)")
            // The old agent stops: its closing leaves the new one's registration alone.
            await onDedicatedThreadQuiet { old.stop() }
            #expect(try listeners.cookie(port: proxyPort) == new.cookie)
            let after = try await lab.burst("tcp", 30100, count: 10)
            #expect(after.errors.isEmpty, "\(after.errors)")
            #expect(after.countsByBackend == ["new": 10])
        }
    }

    @Test("UDP to an L7LB NodePort and, from a pod, ClusterIP: the proxy reads the client and the original destination per datagram")
    func udpToProxy() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install(podDevices: [Lab.podDevice])
            let udp = UInt8(PW_PROTO_UDP)
            for (address, port, flags, revNat) in [
                (Lab.nodeIP, UInt16(30102), PW_SVC_FLAG_NODEPORT, UInt16(7)),
                (clusterIP, UInt16(53), PW_SVC_FLAG_CLUSTER_IP | PW_SVC_FLAG_NON_ROUTABLE, UInt16(8)),
            ] {
                try lab.maps.setService(
                    address: address, port: port, proto: udp, flags: flags, flags2: PW_SVC_FLAG2_L7LB, revNat: revNat, active: [],
                    affinityTimeout: UInt32(proxyPort))
            }
            let proxy = try await onDedicatedThread { try ProxyStub(netns: lab.node, port: proxyPort, udp: true) }
            defer { proxy.stop() }

            for (ns, client, address, port) in [
                (lab.client, Lab.clientIP, Lab.nodeIP, UInt16(30102)), (lab.pod, Lab.podIP, clusterIP, UInt16(53)),
            ] {
                // Connected UDP sockets: an answer only counts if it came from the frontend.
                let burst = try await lab.burst(from: ns, "udp", address, port, count: 10)
                #expect(burst.errors.isEmpty, "\(address): \(burst.errors)")
                #expect(burst.countsByBackend == ["proxy": 10])
                #expect(burst.answers.allSatisfy { $0.seen_peer.hasPrefix("\(client):") && $0.seen_local == "\(address):\(port)" })
            }
        }
    }

    @Test("TransparentListener: a clear error for a port already taken")
    func listenerErrors() throws {
        let first = try TransparentListener.openTCP(port: 0, address: "127.0.0.1")
        defer { close(first) }
        let port = try TransparentListener.originalDestination(of: first).port
        #expect(port != 0)
        let error = #expect(throws: TransparentListener.Failure.self) {
            _ = try TransparentListener.openTCP(port: port, address: "127.0.0.1")
        }
        #expect(error?.errno == EADDRINUSE)
        #expect(error?.description.contains("bind 127.0.0.1:\(port)") == true)
    }
}

/// Runs a non-throwing blocking call on a dedicated thread.
func onDedicatedThreadQuiet(_ body: @escaping @Sendable () -> Void) async {
    _ = try? await onDedicatedThread { body() }
}
