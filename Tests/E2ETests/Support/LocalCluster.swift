import Foundation
import KubeAPI
import KubeAPITestSupport
import Yams

/// Where things are, and why the local cluster cannot run here (nil when it can).
enum E2EPrerequisites {
    /// The compiled datapath: $PORTWAY_BPF_DIR/portway_lb.o, else bpf/out/portway_lb.o.
    static let bpfObject: String? = {
        let candidates = [ProcessInfo.processInfo.environment["PORTWAY_BPF_DIR"].map { $0 + "/portway_lb.o" }, packageRoot + "/bpf/out/portway_lb.o"]
        return candidates.compactMap { $0 }.first { FileManager.default.fileExists(atPath: $0) }
    }()

    static let missing: String? = {
        if geteuid() != 0 { return "not root (network namespaces and BPF need root)" }
        for tool in ["ip", "nsenter", "python3"] where !haveCommand(tool) { return "`\(tool)` not found" }
        if let missing = BPFFSFixture.hostBPFFSMissing { return missing }
        if bpfObject == nil { return "bpf/out/portway_lb.o not built (make bpf)" }
        if portwayBinary == nil { return "the portway binary was not found next to the tests (swift build, or set PORTWAY_BIN)" }
        let assets = EnvtestControlPlane.assets(controllerManager: true)
        if assets.path == nil { return assets.reason }
        return nil
    }()

    /// True when the suite can run; prints the reason once when it cannot. In CI (`CI=true`) a
    /// missing prerequisite does not skip: the suite runs and fails with the reason.
    static let ready: Bool = {
        guard let missing else { return true }
        if EnvtestControlPlane.required() {
            print("CI: the e2e suite is required; running it so that it fails: \(missing)")
            return true
        }
        print("skipped: E2ETests: \(missing)")
        return false
    }()
}

struct E2EError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A Kubernetes cluster on this machine, for end-to-end tests:
///
/// ```
///   host (root netns): etcd, kube-apiserver (127.0.0.1), kube-controller-manager (EndpointSlice controller)
///        │ Unix socket forwarder: each node's 127.0.0.1:6443 → the API server
///   client 192.0.2.10 ─┐
///   node-a 192.0.2.1  ─┼─ br0 (ns lan)
///   node-b 192.0.2.2  ─┤   (node-c 192.0.2.3 when asked for three nodes)
///                      ┘
///   node-N: eth0 (Portway attached), cbr0 10.244.N.1/24 ─ pods 10.244.N.x; a route to every other node's pod subnet
/// ```
/// Each node namespace runs `portway agent --kubeconfig` as its DaemonSet pod would: authenticated
/// with a token of the ServiceAccount in manifests/portway.yaml (from the TokenRequest API) and
/// bound by its ClusterRole, so RBAC is the real one. The harness plays the kubelet: a Pod is a
/// network namespace behind its node serving HTTP on its Pod IP; the harness reports it Running and
/// Ready, and after a graceful delete it keeps serving until the harness ends its grace period.
/// Every name carries the `pwcp<random>` prefix (`$PORTWAY_TEST_PREFIX<random>` when set);
/// `tearDown()` removes everything.
final class LocalCluster: @unchecked Sendable {  // driven by one test at a time
    struct NodeInfo {
        var name: String
        var ip: String
        var podSubnet: String  // "10.244.1"
        var netns: String
        var bpffs: String
    }

    struct PodInfo {
        var name: String
        var node: String
        var ip: String
        var netns: String
        var server: Child
    }

    static let clientIP = "192.0.2.10"
    static let podPort = 8080
    static let namespace = "e2e"
    static let apiPortInNodes = 6443
    /// The agents' Gateway leader election (shorter than the defaults, so a crash hands over quickly).
    static let leaseDurationSeconds = 6
    static let retryPeriodSeconds = 1

    let prefix: String
    let work: String
    private(set) var plane: EnvtestControlPlane?
    private(set) var nodes: [NodeInfo] = []
    private(set) var pods: [String: PodInfo] = [:]
    private(set) var agents: [String: Child] = [:]
    private var agentToken = ""
    private var netnsList: [String] = []
    /// Removes processes, namespaces and pins if the test process dies without `tearDown()`.
    private var reaper: Reaper?
    private var children: [Child] = []
    private var nextPodHost: [String: Int] = [:]
    private var vethCounter = 0
    /// The API server port the harness talks to (the primary, or another during an outage).
    var apiPort: Int = 0
    /// Flags every agent is started with besides the harness's own (`--log-level debug`).
    private var agentArguments: [String] = []

    var client: String { "\(prefix)-client" }
    var lan: String { "\(prefix)-lan" }

    private init() {
        // $PORTWAY_TEST_PREFIX lets parallel runs on one machine keep apart (and be found by name).
        let base = ProcessInfo.processInfo.environment["PORTWAY_TEST_PREFIX"].flatMap { $0.isEmpty ? nil : $0 } ?? "pwcp"
        prefix = base + String(UInt32.random(in: 0..<UInt32.max), radix: 16)
        work = NSTemporaryDirectory() + prefix
    }

    /// Builds the whole cluster: control plane, RBAC from manifests/, Nodes, network, agents.
    static func start(nodeNames: [String] = ["node-a", "node-b"], agentArguments: [String] = []) async throws -> LocalCluster {
        let cluster = LocalCluster()
        cluster.agentArguments = agentArguments
        do {
            try await cluster.build(nodeNames: nodeNames)
        } catch {
            await cluster.close()
            throw error
        }
        return cluster
    }

    private func build(nodeNames: [String]) async throws {
        if let missing = E2EPrerequisites.missing { throw E2EError("cannot run the local cluster: \(missing)") }
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let work = self.work
        reaper = try await onDedicatedThread { try Reaper(directory: work) }
        for (name, text) in [("pod.py", Scripts.pod), ("client.py", Scripts.client), ("fwd.py", Scripts.forwarder), ("route_watch.py", Scripts.routeWatch)] {
            try text.write(toFile: "\(work)/\(name)", atomically: true, encoding: .utf8)
        }
        let plane = try await EnvtestControlPlane.start(crdDirectory: sharedDirectory + "/gateway-api-crds", controllerManager: true)
        self.plane = plane
        apiPort = plane.port
        try await applyManifests()
        agentToken = try await serviceAccountToken()
        _ = try await api("POST", "/api/v1/namespaces", ["metadata": ["name": Self.namespace]])

        let nodes = nodeNames.enumerated().map { i, name in
            NodeInfo(name: name, ip: "192.0.2.\(i + 1)", podSubnet: "10.244.\(i + 1)", netns: "\(prefix)-\(name)", bpffs: "/sys/fs/bpf/\(prefix)-\(name)")
        }
        self.nodes = nodes
        for node in nodes { reaper?.register(path: node.bpffs) }
        let apiPort = plane.port
        try await onDedicatedThread { try self.buildNetwork(apiPort: apiPort) }
        for node in nodes {
            _ = try await api("POST", "/api/v1/nodes", [
                "metadata": ["name": node.name, "labels": ["kubernetes.io/hostname": node.name]],
                "spec": ["podCIDR": "\(node.podSubnet).0/24", "podCIDRs": ["\(node.podSubnet).0/24"]],
                "status": ["addresses": [["type": "InternalIP", "address": node.ip], ["type": "Hostname", "address": node.name]]],
            ])
        }
        for node in nodes { try await startAgent(node.name) }
    }

    // MARK: control plane access (as the cluster admin)

    /// One request as the admin; returns the decoded JSON object. Throws on HTTP >= 300 unless `allow` has the code.
    @discardableResult
    func api(_ method: String, _ path: String, _ body: [String: Any]? = nil, allow: Set<Int> = [], port: Int? = nil) async throws -> [String: Any] {
        guard let plane else { throw E2EError("no control plane") }
        let contentType = method == "PATCH" ? "application/merge-patch+json" : "application/json"
        let request = HTTPRequest(
            method: method, url: "https://127.0.0.1:\(port ?? apiPort)\(path)",
            headers: ["Authorization: Bearer \(EnvtestControlPlane.adminToken)", "Content-Type: \(contentType)", "Accept: application/json"],
            body: try body.map { try JSONSerialization.data(withJSONObject: $0) }, timeout: .seconds(30),
            tls: TLSSettings(caData: plane.certificates.read(plane.certificates.caCertPath)))
        let response = try await CurlTransport.shared.send(request)
        let object = (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any] ?? [:]
        guard response.status < 300 || allow.contains(response.status) else {
            throw E2EError("\(method) \(path): HTTP \(response.status): \(String(decoding: response.body, as: UTF8.self).prefix(500))")
        }
        return object
    }

    /// The HTTP status of a request (GET by default) made with the agents' ServiceAccount token (RBAC checks).
    func statusAsAgent(_ path: String, method: String = "GET", body: [String: Any]? = nil) async throws -> Int {
        guard let plane else { throw E2EError("no control plane") }
        let request = HTTPRequest(
            method: method, url: "https://127.0.0.1:\(apiPort)\(path)",
            headers: ["Authorization: Bearer \(agentToken)", "Accept: application/json", "Content-Type: application/json"],
            body: try body.map { try JSONSerialization.data(withJSONObject: $0) },
            tls: TLSSettings(caData: plane.certificates.read(plane.certificates.caCertPath)))
        return try await CurlTransport.shared.send(request).status
    }

    /// Creates what manifests/portway.yaml declares (the DaemonSet excepted: the harness runs the agents).
    private func applyManifests() async throws {
        let text = try String(contentsOfFile: packageRoot + "/manifests/portway.yaml", encoding: .utf8)
        let paths = [
            "Namespace": "/api/v1/namespaces", "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        ]
        for document in try Yams.load_all(yaml: text) {
            guard let object = document as? [String: Any], let kind = object["kind"] as? String else { continue }
            let meta = object["metadata"] as? [String: Any] ?? [:]
            let path: String
            if kind == "ServiceAccount", let ns = meta["namespace"] as? String {
                path = "/api/v1/namespaces/\(ns)/serviceaccounts"
            } else if kind == "Role" || kind == "RoleBinding", let ns = meta["namespace"] as? String {
                path = "/apis/rbac.authorization.k8s.io/v1/namespaces/\(ns)/\(kind.lowercased())s"
            } else if let p = paths[kind] {
                path = p
            } else {
                continue  // the DaemonSet
            }
            _ = try await api("POST", path, object)
        }
    }

    /// A token for the agents' ServiceAccount, as the kubelet would project into the DaemonSet pod.
    private func serviceAccountToken() async throws -> String {
        let answer = try await api("POST", "/api/v1/namespaces/portway-system/serviceaccounts/portway/token", [
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": ["expirationSeconds": 3600],
        ])
        guard let token = (answer["status"] as? [String: Any])?["token"] as? String, !token.isEmpty else {
            throw E2EError("TokenRequest gave no token: \(answer)")
        }
        return token
    }

    // MARK: network

    private func netns(_ name: String) throws -> String {
        let full = "\(prefix)-\(name)"
        try run(["ip", "netns", "add", full])
        reaper?.register(netns: full)
        netnsList.append(full)
        try run(["ip", "-n", full, "link", "set", "lo", "up"])
        return full
    }

    private func veth(_ a: String, in nsA: String, _ b: String, in nsB: String) throws {
        try run(["ip", "link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB])
        try run(["ip", "-n", nsA, "link", "set", a, "up"])
        try run(["ip", "-n", nsB, "link", "set", b, "up"])
    }

    private func sysctl(_ ns: String, _ settings: [String]) throws {
        try run(["nsenter", "--net=/var/run/netns/\(ns)", "sysctl", "-qw"] + settings)
    }

    /// A process in a namespace (nsenter keeps the host's /sys/fs/bpf, which `ip netns exec` hides).
    private func spawn(in ns: String?, _ args: [String], log: String? = nil) throws -> Child {
        let child = try Child((ns.map { ["nsenter", "--net=/var/run/netns/\($0)"] } ?? []) + args, stderrLog: log)
        reaper?.register(pid: child.process.processIdentifier)
        children.append(child)
        return child
    }

    private func buildNetwork(apiPort: Int) throws {
        let lan = try netns("lan")
        try run(["ip", "-n", lan, "link", "add", "br0", "type", "bridge"])
        try run(["ip", "-n", lan, "link", "set", "br0", "up"])
        let client = try netns("client")
        var hosts = [(client, Self.clientIP)]
        for node in nodes { hosts.append((try netns(node.name), node.ip)) }
        for (i, (host, ip)) in hosts.enumerated() {
            try veth("eth0", in: host, "p\(i)", in: lan)
            try run(["ip", "-n", lan, "link", "set", "p\(i)", "master", "br0"])
            try run(["ip", "-n", host, "addr", "add", "\(ip)/24", "dev", "eth0"])
        }
        // The API server on the host's loopback, reachable from every node at 127.0.0.1:6443.
        let socket = "\(work)/api.sock"
        try spawn(in: nil, ["python3", "\(work)/fwd.py", "unix", socket, "127.0.0.1", String(apiPort)]).expectReady()
        for node in nodes {
            try sysctl(node.netns, [
                "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0",
                "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
            ])
            try run(["ip", "-n", node.netns, "link", "add", "cbr0", "type", "bridge"])
            try run(["ip", "-n", node.netns, "addr", "add", "\(node.podSubnet).1/24", "dev", "cbr0"])
            try run(["ip", "-n", node.netns, "link", "set", "cbr0", "up"])
            for other in nodes where other.name != node.name {
                try run(["ip", "-n", node.netns, "route", "add", "\(other.podSubnet).0/24", "via", other.ip])
            }
            try spawn(in: node.netns, ["python3", "\(work)/fwd.py", "tcp", "127.0.0.1", String(Self.apiPortInNodes), socket]).expectReady()
        }
    }

    // MARK: agents

    /// The controller name every agent of the cluster serves (`--gateway-controller-name`).
    static let gatewayControllerName = "example.com/portway-e2e"

    /// Starts (or restarts) `portway agent` in the node's namespace, as its DaemonSet pod would.
    func startAgent(_ nodeName: String) async throws {
        guard let node = nodes.first(where: { $0.name == nodeName }), let plane else { throw E2EError("no node \(nodeName)") }
        let kubeconfig = "\(work)/\(node.name).kubeconfig"
        try EnvtestControlPlane.kubeconfig(
            server: "https://127.0.0.1:\(Self.apiPortInNodes)", caData: plane.certificates.read(plane.certificates.caCertPath),
            token: agentToken, user: "system:serviceaccount:portway-system:portway"
        ).write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let args = [
            portwayBinary!, "agent", "--kubeconfig", kubeconfig, "--device", "eth0", "--node-name", node.name,
            "--bpffs", node.bpffs, "--bpf-object", E2EPrerequisites.bpfObject!,
            "--service-map-size", "1024", "--backend-map-size", "1024", "--revnat-map-size", "1024",
            "--affinity-map-size", "1024", "--ct-map-size", "8192", "--snat-map-size", "8192",
            "--lease-duration", String(Self.leaseDurationSeconds), "--renew-deadline", "4", "--retry-period", String(Self.retryPeriodSeconds),
            // A dead agent's report goes stale after 4 × 5 s (a leader SIGKILLed drops out of the
            // nodes that must serve a Gateway within the handover tests' bounds).
            "--node-report-period", "5",
            // Not the default: the node's proxy and the leader must both take it from this one flag.
            "--gateway-controller-name", Self.gatewayControllerName,
        ] + agentArguments
        let agent = try await onDedicatedThread { try self.spawn(in: node.netns, args, log: "\(self.work)/agent-\(node.name).log") }
        agents[node.name] = agent
    }

    /// SIGKILL: no cleanup runs; the pinned maps and attached programs stay.
    func killAgent(_ nodeName: String) async throws {
        guard let agent = agents.removeValue(forKey: nodeName) else { return }
        try await onDedicatedThread { agent.kill() }
    }

    /// What the agents of a node logged, every run of it (for failure messages and the RBAC
    /// check); `agents[node]?.log` is what the running one logged.
    func agentLog(_ nodeName: String) -> String {
        (try? String(contentsOfFile: "\(work)/agent-\(nodeName).log", encoding: .utf8)) ?? ""
    }

    // MARK: the kubelet's part

    /// Creates a Pod on `node`: its network namespace and HTTP server first, then the API object,
    /// then its status (Running, podIP, Ready) as a kubelet reports it.
    @discardableResult
    func createPod(_ name: String, on nodeName: String, labels: [String: String]) async throws -> PodInfo {
        guard let node = nodes.first(where: { $0.name == nodeName }) else { throw E2EError("no node \(nodeName)") }
        let host = nextPodHost[nodeName, default: 10]
        nextPodHost[nodeName] = host + 1
        vethCounter += 1
        let ip = "\(node.podSubnet).\(host)"
        let hostSide = "vp\(vethCounter)"
        let work = self.work
        let pod = try await onDedicatedThread { () throws -> PodInfo in
            let ns = try self.netns("pod-\(name)")
            try self.veth(hostSide, in: node.netns, "eth0", in: ns)
            try run(["ip", "-n", node.netns, "link", "set", hostSide, "master", "cbr0"])
            try run(["ip", "-n", ns, "addr", "add", "\(ip)/24", "dev", "eth0"])
            try run(["ip", "-n", ns, "route", "add", "default", "via", "\(node.podSubnet).1"])
            let server = try self.spawn(in: ns, ["python3", "\(work)/pod.py", name, ip, String(Self.podPort)])
            try server.expectReady()
            return PodInfo(name: name, node: nodeName, ip: ip, netns: ns, server: server)
        }
        pods[name] = pod
        let path = "/api/v1/namespaces/\(Self.namespace)/pods"
        try await api("POST", path, [
            "metadata": ["name": name, "labels": labels],
            "spec": [
                "nodeName": nodeName, "terminationGracePeriodSeconds": 30,
                "containers": [["name": "http", "image": "portway.test/http:e2e", "ports": [["containerPort": Self.podPort, "name": "http"]]]],
            ],
        ])
        let now = ISO8601DateFormatter().string(from: Date())
        try await api("PATCH", "\(path)/\(name)/status", [
            "status": [
                "phase": "Running", "hostIP": node.ip, "podIP": ip, "podIPs": [["ip": ip]], "startTime": now,
                "conditions": [
                    ["type": "Initialized", "status": "True", "lastTransitionTime": now],
                    ["type": "ContainersReady", "status": "True", "lastTransitionTime": now],
                    ["type": "Ready", "status": "True", "lastTransitionTime": now],
                    ["type": "PodScheduled", "status": "True", "lastTransitionTime": now],
                ],
            ],
        ])
        return pod
    }

    /// A graceful delete: the API server marks the Pod terminating and it keeps serving; after
    /// `grace` the kubelet (the harness) stops it and deletes the object for good.
    /// The Pod must back a Service: the EndpointSlice controller has to show its endpoint as
    /// terminating (ready false, serving true) while it drains, or this throws.
    func gracefulDelete(_ name: String, grace: Duration) async throws {
        let path = "/api/v1/namespaces/\(Self.namespace)/pods/\(name)"
        let start = ContinuousClock.now
        try await api("DELETE", path, ["apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 30])
        if let ip = pods[name]?.ip {
            let terminating = try await waitUntil(timeout: .seconds(20), every: .milliseconds(100)) {
                try await endpointConditions(ip) == ["ready": false, "serving": true, "terminating": true]
            }
            guard terminating else { throw E2EError("pod \(name) (\(ip)) never showed as a terminating endpoint") }
        }
        // Like a preStop hook that waits for the node proxies: the pod drains until no node's maps
        // hold it as an active backend any more (and at least `grace`), so zero failed requests do
        // not depend on how fast a loaded machine runs the agents. Then the kubelet's SIGTERM: the
        // pod serves every connection that already reached it and exits (a request in flight
        // when the last node let go of the pod is answered, not cut off).
        if let ip = pods[name]?.ip { try await waitUntilNotActive(ip) }
        let left = grace - (ContinuousClock.now - start)
        if left > .zero { try await Task.sleep(for: left) }
        try await removePod(name)
        try await api("DELETE", path, ["apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0], allow: [404])
    }

    /// Waits until no node's pinned maps list `ip` as an active backend (`portway bpf lb list`).
    func waitUntilNotActive(_ ip: String, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        let binary = portwayBinary!
        for node in nodes {
            let gone = try await waitUntil(timeout: max(deadline - ContinuousClock.now, .zero), every: .milliseconds(100)) {
                let table = try await onDedicatedThread { try run([binary, "bpf", "lb", "list", "--bpffs", node.bpffs]) }
                return !table.split(separator: "\n").contains { $0.contains(" \(ip):") && !$0.contains("[terminating]") }
            }
            guard gone else { throw E2EError("\(node.name) still has \(ip) as an active backend after \(timeout)") }
        }
    }

    /// The conditions of the endpoint with `ip` in this namespace's EndpointSlices (nil: none yet).
    func endpointConditions(_ ip: String) async throws -> [String: Bool]? {
        let list = try await api("GET", "/apis/discovery.k8s.io/v1/namespaces/\(Self.namespace)/endpointslices")
        for slice in list["items"] as? [[String: Any]] ?? [] {
            for endpoint in slice["endpoints"] as? [[String: Any]] ?? [] where (endpoint["addresses"] as? [String])?.contains(ip) == true {
                return (endpoint["conditions"] as? [String: Any] ?? [:]).compactMapValues { $0 as? Bool }
            }
        }
        return nil
    }

    private func removePod(_ name: String) async throws {
        guard let pod = pods.removeValue(forKey: name) else { return }
        try await onDedicatedThread {
            pod.server.terminate()  // as the kubelet stops a container: SIGTERM, then SIGKILL
            try run(["ip", "netns", "del", pod.netns])
        }
        netnsList.removeAll { $0 == pod.netns }
    }

    // MARK: Services

    /// A NodePort Service selecting `app: selector`, port 80 → targetPort 8080.
    func createService(_ name: String, selector: String, nodePort: Int, externalTrafficPolicy: String = "Cluster") async throws {
        try await api("POST", "/api/v1/namespaces/\(Self.namespace)/services", [
            "metadata": ["name": name],
            "spec": [
                "type": "NodePort", "selector": ["app": selector], "externalTrafficPolicy": externalTrafficPolicy,
                "ports": [["name": "http", "port": 80, "targetPort": Self.podPort, "nodePort": nodePort, "protocol": "TCP"]],
            ],
        ])
    }

    func nodeIP(_ name: String) -> String { nodes.first { $0.name == name }?.ip ?? "?" }

    // MARK: traffic from the client

    /// One HTTP request from the client namespace: `ok NAME PEER` or `fail REASON`.
    func get(_ target: String, timeout: Double = 1.0) async throws -> String {
        let client = self.client, work = self.work
        return try await onDedicatedThread {
            try run(["nsenter", "--net=/var/run/netns/\(client)", "python3", "\(work)/client.py", "get", target, String(timeout)]).trimmed
        }
    }

    /// Polls `target` until `accept` holds for an answer (bounded by `timeout`); returns the last answer.
    @discardableResult
    func waitFor(_ target: String, timeout: Duration = .seconds(60), _ accept: (String) -> Bool) async throws -> String {
        var last = ""
        let answered = try await waitUntil(timeout: timeout, every: .milliseconds(200)) {
            last = try await get(target, timeout: 0.5)
            return accept(last)
        }
        guard answered else { throw E2EError("\(target): never answered as expected within \(timeout); last answer: \(last)") }
        return last
    }

    /// Requests `hostname` at `target` back to back from the client namespace and reports each
    /// change of answer with the time it arrived (see `Scripts.routeWatch`; bounded by `maxSeconds`).
    func startRouteWatch(_ target: String, hostname: String, maxSeconds: Int = 300) async throws -> RouteWatch {
        let client = self.client, work = self.work
        let child = try await onDedicatedThread {
            let c = try self.spawn(in: client, ["python3", "\(work)/route_watch.py", target, hostname, String(maxSeconds)])
            try c.expectReady()
            return c
        }
        return RouteWatch(child: child)
    }

    /// A request loop running in the client namespace until `finish()` (bounded by `maxSeconds`).
    func startLoop(_ targets: [String], maxSeconds: Int = 120) async throws -> RequestLoop {
        let client = self.client, work = self.work
        let child = try await onDedicatedThread {
            let c = try self.spawn(in: client, ["python3", "\(work)/client.py", "loop", String(maxSeconds)] + targets)
            try c.expectReady()
            return c
        }
        return RequestLoop(child: child)
    }

    // MARK: tear-down

    func tearDown() {
        for agent in agents.values { agent.kill() }
        agents.removeAll()
        for pod in pods.values { pod.server.kill() }
        pods.removeAll()
        for child in children { child.kill() }
        children.removeAll()
        for ns in netnsList.reversed() { _ = try? run(["ip", "netns", "del", ns], allowFailure: true) }
        netnsList.removeAll()
        for node in nodes { _ = try? run(["rm", "-rf", node.bpffs], allowFailure: true) }
        guard let plane else { return }  // already torn down
        plane.stop()
        reaper?.disarm()
        self.plane = nil
        if ProcessInfo.processInfo.environment["PORTWAY_E2E_KEEP_LOGS"] == nil {
            try? FileManager.default.removeItem(atPath: work)
        } else {
            print("e2e logs kept in \(work)")
        }
    }

    func close() async {
        _ = try? await onDedicatedThread { self.tearDown() }
    }

    deinit { tearDown() }
}

/// A running route watch (see `Scripts.routeWatch`).
struct RouteWatch: Sendable {
    let child: Child

    /// The next change of answer: when it arrived (Unix time) and the answer (a pod's name,
    /// `http-CODE` or `fail-REASON`); nil once the watch has ended.
    func next() async -> (time: Double, answer: String)? {
        guard let line = await child.line() else { return nil }
        let parts = line.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, let time = Double(parts[0]) else { return (0, "unreadable: \(line)") }
        return (time, String(parts[1]))
    }

    func stop() { child.kill() }
}

/// A running request loop (see `Scripts.client`).
struct RequestLoop: Sendable {
    let child: Child

    struct Result: Decodable {
        var ok: Int
        var failures: [String]
        var names: [String: [String]]
    }

    /// Stops the loop and returns what it saw.
    func finish() async throws -> Result {
        let child = self.child
        return try await onDedicatedThread {
            child.send("stop")
            guard let line = child.readLine() else { throw E2EError("the request loop printed nothing") }
            child.kill()
            return try JSONDecoder().decode(Result.self, from: Data(line.utf8))
        }
    }
}

/// Builds a cluster, runs the body and always tears the cluster down.
func withLocalCluster(
    nodes: [String] = ["node-a", "node-b"], agentArguments: [String] = [], _ body: (LocalCluster) async throws -> Void
) async throws {
    let cluster = try await LocalCluster.start(nodeNames: nodes, agentArguments: agentArguments)
    do {
        try await body(cluster)
    } catch {
        for node in cluster.nodes { print("--- agent log \(node.name) (tail) ---\n\(cluster.agentLog(node.name).suffix(3000))") }
        await cluster.close()
        throw error
    }
    await cluster.close()
}
