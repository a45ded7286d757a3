import CPortwayBPF
import Datapath
import Foundation
import Testing

private let tcp = UInt8(PW_PROTO_TCP)
private let udp = UInt8(PW_PROTO_UDP)
private let backendDevices = ["v-be1", "v-be2"]

private let nftReady: Bool = {
    guard LabPrerequisites.ready else { return false }
    guard haveCommand("nft") else {
        print("⚠️ HostRoutingTests skipped: nft (nftables) not found; `make deps` installs it")
        return false
    }
    return true
}()

/// eBPF host routing: with it on, NodePort traffic to local and remote backends never goes
/// through the node's netfilter FORWARD chain; off, it does. Root only.
@Suite(.serialized, .enabled(if: nftReady, "needs root, the netns lab prerequisites and nft"))
struct HostRoutingTests {
    /// A counter rule in the node namespace's forward hook; returns a reader of its packet count.
    private func forwardCounter(_ lab: Lab) async throws -> @Sendable () async throws -> Int {
        let node = lab.node
        _ = try await onDedicatedThread {
            try run(["ip", "netns", "exec", node, "nft", "-f", "-"], input: """
                table inet pwdp {
                  chain pwdp_forward {
                    type filter hook forward priority 0; policy accept;
                    counter
                  }
                }
                """)
        }
        return {
            try await onDedicatedThread {
                let out = try run(["ip", "netns", "exec", node, "nft", "list", "chain", "inet", "pwdp", "pwdp_forward"])
                guard let range = out.range(of: #"counter packets (\d+)"#, options: .regularExpression) else {
                    throw CommandError(command: ["nft", "list"], status: -1, output: out)
                }
                return Int(out[range].split(separator: " ")[2])!
            }
        }
    }

    private func program(_ lab: Lab) throws {
        for (id, name) in [(1, "be1"), (2, "be2"), (3, "be3")] {
            try lab.maps.setBackend(id: UInt32(id), address: Lab.backendIPs[name]!, port: Lab.backendPort, proto: tcp)
            try lab.maps.setBackend(id: UInt32(id + 10), address: Lab.backendIPs[name]!, port: Lab.backendPort, proto: udp)
        }
        try lab.maps.setService(address: Lab.nodeIP, port: 30110, proto: tcp, flags: PW_SVC_FLAG_NODEPORT, revNat: 1, active: [1, 2])
        try lab.maps.setService(address: Lab.nodeIP, port: 30110, proto: udp, flags: PW_SVC_FLAG_NODEPORT, revNat: 2, active: [11, 12])
        try lab.maps.setService(address: Lab.nodeIP, port: 30111, proto: tcp, flags: PW_SVC_FLAG_NODEPORT, revNat: 3, active: [3])
    }

    private func expectServed(_ lab: Lab) async throws {
        for proto in ["tcp", "udp"] {
            let local = try await lab.burst(proto, 30110, count: 20)
            #expect(local.errors.isEmpty, "\(proto): \(local.errors)")
            #expect(Set(local.countsByBackend.keys) == ["be1", "be2"], "\(proto): \(local.countsByBackend)")
            #expect(local.answers.allSatisfy { $0.peer == "\(Lab.nodeIP):30110" && $0.seen_peer.hasPrefix("\(Lab.clientIP):") })
        }
        let remote = try await lab.burst("tcp", 30111, count: 10)
        #expect(remote.errors.isEmpty, "\(remote.errors)")
        #expect(remote.countsByBackend == ["be3": 10])
    }

    /// Packets the node sent through the backends' host-side veths (bpf_redirect_peer skips them).
    private func vethTransmitted(_ lab: Lab) async throws -> Int {
        let node = lab.node
        return try await onDedicatedThread {
            try backendDevices.reduce(0) { sum, dev in
                let out = try run(["ip", "netns", "exec", node, "cat", "/sys/class/net/\(dev)/statistics/tx_packets"])
                return sum + (Int(out.trimmed) ?? 0)
            }
        }
    }

    private func mode(_ lab: Lab) async throws -> HostRoutingMode? {
        let node = lab.node, bpffs = lab.bpffs
        return try await onDedicatedThread {
            try inNetns(node) { Datapath.hostRouting(DatapathOptions(devices: [Lab.device], bpffs: bpffs)) }
        }
    }

    /// The case behind issue 20's "host routing makes new connections 3x slower": that was the
    /// benchmark (the backend's TIME_WAIT sockets from its direct run, met with another TCP
    /// timestamp offset: PAWS, a 1 s SYN retransmission each). Through the datapath itself, new
    /// connections that keep reusing one client port while the backend holds the TIME_WAIT socket
    /// of the one before are answered at once, and every packet of them takes the host-routed path.
    @Test("on: new connections from one reused client port, each closed by the backend first, are answered without a SYN retransmission, none through FORWARD or the host-side veths")
    func reusedPortNewConnections() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install(podDevices: backendDevices, hostRouting: true)
            try program(lab)
            let forwarded = try await forwardCounter(lab)
            // Neighbours resolved first (until then bpf_redirect_neigh sends through the veths).
            try await expectServed(lab)
            let txBefore = try await vethTransmitted(lab)
            let retransBefore = try await lab.tcpExt(lab.client, "TCPSynRetrans")
            let count = 10
            for (port, sourcePort, backends) in [(UInt16(30110), UInt16(40200), ["be1", "be2"]), (30111, 40201, ["be3"])] {
                let reuse = try await lab.reuse(from: lab.client, Lab.nodeIP, port, sourcePort: sourcePort, count: count)
                #expect(reuse.errors.isEmpty, "\(port): \(reuse.errors)")
                #expect(reuse.answers.count == count && Set(reuse.countsByBackend.keys).isSubset(of: Set(backends)), "\(reuse.countsByBackend)")
                #expect(reuse.answers.allSatisfy { $0.peer == "\(Lab.nodeIP):\(port)" })
            }
            // The local backends saw the client itself (no SNAT): their TIME_WAIT sockets were met.
            var timeWaits = 0
            for name in ["be1", "be2"] {
                timeWaits += try await lab.timeWaitCount(
                    "\(lab.prefix)-\(name)", local: "\(Lab.backendIPs[name]!):\(Lab.backendPort)", peer: "\(Lab.clientIP):40200")
            }
            #expect(timeWaits >= 1, "the backends closed first: a TIME_WAIT socket of the reused 4-tuple must exist")
            #expect(try await lab.tcpExt(lab.client, "TCPSynRetrans") - retransBefore == 0, "a SYN was not answered at once")
            #expect(try await forwarded() == 0, "host routing on: nothing may go through FORWARD")
            let tx = try await vethTransmitted(lab) - txBefore
            #expect(tx < count, "\(count) connections (>= \(3 * count) packets) to local backends, \(tx) sent through the host-side veths")
        }
    }

    @Test("on: local and remote backends are reached with the FORWARD counter at zero; off: it moves; held connections survive switching")
    func forwardBypass() async throws {
        try await withLab(prefix: "pwdp") { lab in
            try await lab.install(podDevices: backendDevices, hostRouting: true)
            #expect(try await mode(lab)?.enabled == true)
            try program(lab)
            let forwarded = try await forwardCounter(lab)

            let held = try await lab.holdConnection(30110)
            #expect(await held.line() == "connected \(Lab.nodeIP):30110")
            held.send("one")
            let first = try #require(await held.line())
            let backend = first.split(separator: " ").first.map(String.init)
            try await expectServed(lab)
            #expect(try await forwarded() == 0, "host routing on: nothing may go through FORWARD")
            // Neighbours are known now: packets to local backends enter the pods through the veth
            // peer (bpf_redirect_peer), not through the host-side veth's transmit path.
            let txBefore = try await vethTransmitted(lab)
            let peerBurst = try await lab.burst("tcp", 30110, count: 20)
            #expect(peerBurst.errors.isEmpty)
            let txOn = try await vethTransmitted(lab) - txBefore
            #expect(txOn < 20, "20 connections (>= 60 packets) to local backends, \(txOn) sent through the host-side veths")

            // Off (an upgrade re-attaches the programs in place): the stack forwards.
            try await lab.install(podDevices: backendDevices, hostRouting: false)
            let off = try await mode(lab)
            #expect(off?.enabled == false)
            #expect(off?.reason.contains("--no-host-routing") == true)
            held.send("two")
            #expect(await held.line()?.split(separator: " ").first.map(String.init) == backend, "held connection broke switching off")
            try await expectServed(lab)
            let txOffBefore = try await vethTransmitted(lab)
            _ = try await lab.burst("tcp", 30110, count: 20)
            let txOff = try await vethTransmitted(lab) - txOffBefore
            #expect(txOff >= 60, "host routing off: the stack transmits through the veths (\(txOff))")
            let afterOff = try await forwarded()
            #expect(afterOff > 0, "host routing off: the stack must forward")

            // On again: the same held connection still works, and FORWARD stays where it was.
            try await lab.install(podDevices: backendDevices, hostRouting: true)
            held.send("three")
            #expect(await held.line()?.split(separator: " ").first.map(String.init) == backend, "held connection broke switching on")
            try await expectServed(lab)
            #expect(try await forwarded() == afterOff)
            held.closeInput()
        }
    }
}
