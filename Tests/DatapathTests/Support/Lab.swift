import CPortwayBPF
import Datapath
import Foundation

/// Why the datapath end-to-end tests cannot run here, or nil when they can.
enum LabPrerequisites {
    static let missing: String? = {
        if geteuid() != 0 { return "not root (network namespaces and BPF need root)" }
        if !haveCommand("ip") { return "`ip` (iproute2) not found" }
        if !FileManager.default.isExecutableFile(atPath: Lab.python) { return "\(Lab.python) not found" }
        if let missing = BPFFSFixture.hostBPFFSMissing { return missing }
        if (try? Lab.objectPath()) == nil {
            return "bpf/out/portway_lb.o not built (make bpf)"
        }
        return nil
    }()

    /// True when the suite can run; prints the reason once when it cannot.
    static let ready: Bool = {
        if let missing { print("⚠️ DatapathTests skipped: \(missing)") }
        return missing == nil
    }()

    /// True when a suite that runs the built `portway` binary in the lab can run: the lab, the
    /// binary and `commands` (util-linux); otherwise prints, naming `suite`, what is missing.
    static func readyWithAgent(_ suite: String, commands: [String] = ["nsenter"]) -> Bool {
        guard ready else { return false }
        guard portwayBinary != nil else {
            print("⚠️ \(suite) skipped: the portway binary was not found next to the tests (set PORTWAY_BIN)")
            return false
        }
        for command in commands where !haveCommand(command) {
            print("⚠️ \(suite) skipped: \(command) (util-linux) not found")
            return false
        }
        return true
    }
}

/// A throwaway network lab, all in namespaces named `<prefix><random>-*` (prefix `pw`, or `pwdp`
/// for the L7LB/socket-LB suites):
///
/// ```
///  client 192.0.2.10 ─┐
///  node   192.0.2.1  ─┼─ br0 (ns lan)        node:  eth0 = the external device, ip_forward=1
///  node2  192.0.2.2  ─┘                      node ─ v-b1 ─ be1 10.11.1.2, node ─ v-b2 ─ be2 10.11.2.2
///                                            node2 ─ v-b3 ─ be3 10.12.1.2 (node routes 10.12/16 via node2)
/// ```
/// Backends run `backend.py` on port 8080 (TCP and UDP); the node runs one on 192.0.2.1:7000
/// (not a frontend). Everything is removed by `tearDown()`.
final class Lab: @unchecked Sendable {  // used by one test at a time
    static let python = "/usr/bin/python3"

    /// The compiled datapath file the tests load: $PORTWAY_BPF_DIR/portway_lb.o, else the package's
    /// bpf/out/portway_lb.o (the agent itself loads the object embedded in its binary).
    static func objectPath() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        let dir = environment["PORTWAY_BPF_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? packageRoot + "/bpf/out"
        guard case .file(let path) = try ObjectLocator.locate(explicit: dir + "/" + ObjectLocator.fileName) else {
            throw DatapathError.objectNotFound(searched: [dir])
        }
        return path
    }

    static let nodeIP = "192.0.2.1"
    static let node2IP = "192.0.2.2"
    static let clientIP = "192.0.2.10"
    static let backendIPs = ["be1": "10.11.1.2", "be2": "10.11.2.2", "be3": "10.12.1.2"]
    static let backendPort: UInt16 = 8080
    static let device = "eth0"
    static let podIP = "10.11.3.2"
    static let podDevice = "v-pod"

    let prefix: String
    /// The lab's pins: /sys/fs/bpf/<prefix> (the agent runs in the node namespace through nsenter,
    /// which keeps the host's /sys/fs/bpf).
    let pins: BPFFSFixture
    var bpffs: String { pins.directory }
    let scripts: String
    private(set) var namespaces: [String] = []
    private var children: [Child] = []

    var client: String { "\(prefix)-client" }
    var node: String { "\(prefix)-node" }
    var node2: String { "\(prefix)-node2" }
    var pod: String { "\(prefix)-pod" }
    /// The child cgroup v2 directory socket-LB tests attach to (created on demand, removed at tear-down).
    private(set) var cgroup: String?
    var maps: TestMaps { TestMaps(bpffs: bpffs) }

    init(prefix namePrefix: String = "pw") throws {
        prefix = namePrefix + String(UInt32.random(in: 0..<UInt32.max), radix: 16)
        pins = try BPFFSFixture.onHost(name: prefix)
        scripts = NSTemporaryDirectory() + prefix
        do { try build() } catch {
            tearDown()
            throw error
        }
    }

    private func ns(_ name: String) throws -> String {
        let full = "\(prefix)-\(name)"
        try run(["ip", "netns", "add", full])
        namespaces.append(full)
        try run(["ip", "-n", full, "link", "set", "lo", "up"])
        return full
    }

    private func veth(_ a: String, in nsA: String, _ b: String, in nsB: String) throws {
        try run(["ip", "link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB])
        try run(["ip", "-n", nsA, "link", "set", a, "up"])
        try run(["ip", "-n", nsB, "link", "set", b, "up"])
    }

    private func addr(_ ns: String, _ dev: String, _ cidr: String) throws {
        try run(["ip", "-n", ns, "addr", "add", cidr, "dev", dev])
    }

    private func sysctl(_ ns: String, _ settings: [String]) throws {
        try run(["ip", "netns", "exec", ns, "sysctl", "-qw"] + settings)
    }

    private func build() throws {
        try FileManager.default.createDirectory(atPath: scripts, withIntermediateDirectories: true)
        try Scripts.backend.write(toFile: scripts + "/backend.py", atomically: true, encoding: .utf8)
        try Scripts.client.write(toFile: scripts + "/client.py", atomically: true, encoding: .utf8)

        let lan = try ns("lan")
        let client = try ns("client")
        let node = try ns("node")
        let node2 = try ns("node2")
        try run(["ip", "-n", lan, "link", "add", "br0", "type", "bridge"])
        try run(["ip", "-n", lan, "link", "set", "br0", "up"])
        for (host, ip) in [(client, Self.clientIP), (node, Self.nodeIP), (node2, Self.node2IP)] {
            let port = "p-" + host.split(separator: "-").last!.prefix(10)
            try veth("eth0", in: host, String(port), in: lan)
            try run(["ip", "-n", lan, "link", "set", String(port), "master", "br0"])
            try addr(host, "eth0", "\(ip)/24")
        }
        for n in [node, node2] {
            try sysctl(n, [
                "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0",
            ])
        }
        try run(["ip", "-n", node, "route", "add", "10.12.0.0/16", "via", Self.node2IP])
        try run(["ip", "-n", node2, "route", "add", "10.11.0.0/16", "via", Self.nodeIP])

        let pods: [(name: String, host: String, gw: String)] = [
            ("be1", node, "10.11.1.1"), ("be2", node, "10.11.2.1"), ("be3", node2, "10.12.1.1"),
        ]
        for pod in pods {
            let pns = try ns(pod.name)
            try veth("v-\(pod.name)", in: pod.host, "eth0", in: pns)
            try addr(pod.host, "v-\(pod.name)", "\(pod.gw)/24")
            try addr(pns, "eth0", "\(Self.backendIPs[pod.name]!)/24")
            try run(["ip", "-n", pns, "route", "add", "default", "via", pod.gw])
            try startServer(in: pns, name: pod.name, port: Self.backendPort)
        }
        try startServer(in: node, name: "node", port: 7000)

        let pod = try ns("pod")
        try veth(Self.podDevice, in: node, "eth0", in: pod)
        try addr(node, Self.podDevice, "10.11.3.1/24")
        try addr(pod, "eth0", "\(Self.podIP)/24")
        try run(["ip", "-n", pod, "route", "add", "default", "via", "10.11.3.1"])
    }

    /// Creates the lab's own child cgroup under the cgroup v2 root (socket-LB tests attach there,
    /// never to the machine's root).
    func makeCgroup() throws -> String {
        if let cgroup { return cgroup }
        guard let root = CgroupV2.defaultRoot() else {
            throw CommandError(command: ["cgroup2"], status: -1, output: "no cgroup2 mount in /proc/mounts")
        }
        let path = root + "/" + prefix
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        cgroup = path
        return path
    }

    private func startServer(in ns: String, name: String, port: UInt16) throws {
        let child = try Child(["ip", "netns", "exec", ns, Self.python, scripts + "/backend.py", name, String(port)])
        children.append(child)
        guard child.readLine() == "ready" else {
            throw CommandError(command: ["backend.py", name], status: -1, output: "server did not start")
        }
    }

    /// Loads and attaches the datapath on the node's eth0 from inside the node namespace.
    @discardableResult
    func installDatapath(mode: AttachMode? = nil, podDevices: [String] = [], socketLB: Bool = false, hostRouting: Bool = true) throws
        -> [AttachedProgram]
    {
        let options = DatapathOptions(
            devices: [Self.device], podDevices: podDevices, socketLBCgroup: socketLB ? try makeCgroup() : nil, bpffs: bpffs,
            objectPath: try Lab.objectPath(),
            mapSizes: Self.smallMaps, mode: mode, hostRouting: hostRouting)
        return try inNetns(node) { try Datapath.install(options) }
    }

    /// Small maps: tests never need many entries.
    static let smallMaps: [String: UInt32] = [
        PW_MAP_SERVICES: 1024, PW_MAP_BACKENDS: 1024, PW_MAP_REVNAT: 1024, PW_MAP_AFFINITY: 1024,
        PW_MAP_CT: 4096, PW_MAP_SNAT: 4096, PW_MAP_SOCK_REVNAT: 4096,
    ]

    /// Runs client.py in a namespace; with `inCgroup`, the process first joins the lab's cgroup
    /// (so socket-LB applies to it).
    func clientRun(in ns: String, inCgroup: Bool = false, _ args: [String]) throws -> String {
        let command = ["ip", "netns", "exec", ns, Self.python, scripts + "/client.py"] + args
        guard inCgroup, let cgroup else { return try run(command) }
        return try run(["sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", cgroup] + command)
    }

    /// Runs client.py in the client namespace.
    func clientRun(_ args: [String]) throws -> String {
        try run(["ip", "netns", "exec", client, Self.python, scripts + "/client.py"] + args)
    }

    /// `count` requests to host:port; the decoded answers.
    func burst(_ proto: String, _ host: String, _ port: UInt16, count: Int) throws -> Burst {
        let out = try clientRun(["burst", proto, host, String(port), String(count)])
        return try JSONDecoder().decode(Burst.self, from: Data(out.utf8))
    }

    /// A client process holding one TCP connection open.
    func hold(_ host: String, _ port: UInt16) throws -> Child {
        let child = try Child(["ip", "netns", "exec", client, Self.python, scripts + "/client.py", "hold", host, String(port)])
        children.append(child)
        return child
    }

    /// Starts a process (inside a namespace with `ip netns exec` when ns is given), killed at tear-down.
    func spawn(in ns: String?, _ args: [String]) throws -> Child {
        let child = try Child((ns.map { ["ip", "netns", "exec", $0] } ?? []) + args)
        children.append(child)
        return child
    }

    func tearDown() {
        for child in children { child.kill() }
        children.removeAll()
        for ns in namespaces.reversed() { _ = try? run(["ip", "netns", "del", ns], allowFailure: true) }
        namespaces.removeAll()
        pins.cleanup()
        _ = try? run(["rm", "-rf", scripts], allowFailure: true)
        if let cgroup {
            // Links pinned on it are gone with the bpffs directory; the (empty) cgroup can go.
            if rmdir(cgroup) != 0 { print("⚠️ could not remove test cgroup \(cgroup): errno \(errno)") }
            self.cgroup = nil
        }
    }

    deinit { tearDown() }
}

/// The async face of the lab: every blocking step runs on a dedicated thread, so the tests'
/// expectations stay in their task (Swift Testing attributes issues through task locals).
extension Lab {
    static func make(prefix: String = "pw") async throws -> Lab { try await onDedicatedThread { try Lab(prefix: prefix) } }

    @discardableResult
    func install(mode: AttachMode? = nil, podDevices: [String] = [], socketLB: Bool = false, hostRouting: Bool = true) async throws
        -> [AttachedProgram]
    {
        try await onDedicatedThread {
            try self.installDatapath(mode: mode, podDevices: podDevices, socketLB: socketLB, hostRouting: hostRouting)
        }
    }

    /// `count` requests from a namespace (the client's by default); the decoded answers.
    func burst(from ns: String, inCgroup: Bool = false, _ proto: String, _ host: String, _ port: UInt16, count: Int) async throws
        -> Burst
    {
        try await onDedicatedThread {
            let out = try self.clientRun(in: ns, inCgroup: inCgroup, ["burst", proto, host, String(port), String(count)])
            return try JSONDecoder().decode(Burst.self, from: Data(out.utf8))
        }
    }

    /// One attempt from a namespace: `ok NAME`, `refused` or `timeout`.
    func probe(from ns: String, inCgroup: Bool = false, _ proto: String, _ host: String, _ port: UInt16) async throws -> String {
        try await onDedicatedThread { try self.clientRun(in: ns, inCgroup: inCgroup, ["probe", proto, host, String(port)]).trimmed }
    }

    /// `count` connections one after the other from source port `sport` of a namespace, each closed
    /// by the server first (`client.py reuse`): every SYN after the first meets the server's
    /// TIME_WAIT socket of the connection before.
    func reuse(from ns: String, _ host: String, _ port: UInt16, sourcePort: UInt16, count: Int) async throws -> Burst {
        try await onDedicatedThread {
            let out = try self.clientRun(in: ns, ["reuse", host, String(port), String(sourcePort), String(count)])
            return try JSONDecoder().decode(Burst.self, from: Data(out.utf8))
        }
    }

    /// A TCP extension counter of a namespace (`TcpExt: NAME` in /proc/net/netstat), e.g.
    /// `TCPSynRetrans`: SYNs sent again because no answer came (a stalled connection attempt).
    func tcpExt(_ ns: String, _ name: String) async throws -> Int {
        try await onDedicatedThread {
            let lines = try run(["ip", "netns", "exec", ns, "cat", "/proc/net/netstat"]).split(separator: "\n")
            for (i, line) in lines.enumerated() where line.hasPrefix("TcpExt:") && i + 1 < lines.count {
                let names = line.split(separator: " "), values = lines[i + 1].split(separator: " ")
                if let at = names.firstIndex(where: { $0 == name }), at < values.count, let value = Int(values[at]) { return value }
            }
            throw CommandError(command: ["/proc/net/netstat"], status: -1, output: "no TcpExt \(name) in \(ns)")
        }
    }

    /// The TCP sockets of a namespace in TIME_WAIT from `local` to `peer` (`ss`).
    func timeWaitCount(_ ns: String, local: String, peer: String) async throws -> Int {
        try await onDedicatedThread {
            let out = try run(["ip", "netns", "exec", ns, "ss", "-Htan", "state", "time-wait"])
            return out.split(separator: "\n").filter { line in
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                return f.count >= 4 && f[f.count - 2] == local && f[f.count - 1] == peer
            }.count
        }
    }

    func attachments() async throws -> [AttachedProgram] {
        try await onDedicatedThread { try inNetns(self.node) { Datapath.attachments(devices: [Lab.device], bpffs: self.bpffs) } }
    }

    func uninstall() async throws -> [AttachedProgram] {
        try await onDedicatedThread {
            try inNetns(self.node) { try Datapath.uninstall(devices: [Lab.device], bpffs: self.bpffs) }
        }
    }

    func burst(_ proto: String, _ port: UInt16, count: Int, host: String = Lab.nodeIP) async throws -> Burst {
        try await onDedicatedThread { try self.burst(proto, host, port, count: count) }
    }

    /// One attempt: `ok NAME`, `refused` or `timeout`.
    func probe(_ proto: String, _ port: UInt16, host: String = Lab.nodeIP) async throws -> String {
        try await onDedicatedThread { try self.clientRun(["probe", proto, host, String(port)]).trimmed }
    }

    func holdConnection(_ port: UInt16, host: String = Lab.nodeIP) async throws -> Child {
        try await onDedicatedThread { try self.hold(host, port) }
    }

    func close() async {
        _ = try? await onDedicatedThread { self.tearDown() }
    }
}

/// What client.py burst printed.
struct Burst: Decodable {
    struct Answer: Decodable {
        var name: String
        var seen_peer: String
        var seen_local: String
        var peer: String
    }
    var answers: [Answer]
    var errors: [String]

    var countsByBackend: [String: Int] { answers.reduce(into: [:]) { $0[$1.name, default: 0] += 1 } }
}

/// Builds a lab, runs the body and always tears the lab down.
func withLab(prefix: String = "pw", _ body: (Lab) async throws -> Void) async throws {
    let lab = try await Lab.make(prefix: prefix)
    do {
        try await body(lab)
    } catch {
        await lab.close()
        throw error
    }
    await lab.close()
}
