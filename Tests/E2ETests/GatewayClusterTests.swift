import Foundation
import Testing

/// `host_get.py TARGET HOST TIMEOUT`: one HTTP/1.1 request with that Host from the client namespace;
/// prints `ok BODY` for a 200, `http CODE` for another status, `fail REASON` when nothing answered.
private let hostClient = #"""
    import socket, sys
    target, host, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    addr, port = target.rsplit(":", 1)
    try:
        s = socket.create_connection((addr, int(port)), timeout=timeout)
        s.settimeout(timeout)
        s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            print("fail bad answer %r" % head[:40], flush=True)
        elif parts[1] == b"200":
            print("ok " + body.decode().strip(), flush=True)
        else:
            print("http " + parts[1].decode(), flush=True)
    except Exception as e:
        print("fail " + type(e).__name__, flush=True)
    """#

extension LocalCluster {
    /// One request with `host` from the client namespace (see `hostClient`).
    func get(_ target: String, host: String, timeout: Double = 1.0) async throws -> String {
        let client = self.client, script = "\(work)/host_get.py"
        if !FileManager.default.fileExists(atPath: script) { try hostClient.write(toFile: script, atomically: true, encoding: .utf8) }
        return try await onDedicatedThread {
            try run(["nsenter", "--net=/var/run/netns/\(client)", "python3", script, target, host, String(timeout)]).trimmed
        }
    }

    /// Polls until `accept` holds for the answer to `host` (bounded); returns the last answer.
    @discardableResult
    func waitFor(_ target: String, host: String, timeout: Duration = .seconds(60), _ accept: (String) -> Bool) async throws -> String {
        var last = ""
        let answered = try await waitUntil(timeout: timeout, every: .milliseconds(200)) {
            last = try await get(target, host: host, timeout: 1.0)
            return accept(last)
        }
        guard answered else { throw E2EError("\(target) Host \(host): never answered as expected within \(timeout); last answer: \(last)") }
        return last
    }

    /// The GatewayClass `portway` (this cluster's controller name) and the Gateway `web` in the
    /// test namespace: one HTTP listener on port 80.
    func createWebGateway() async throws {
        let gatewayAPI = "/apis/gateway.networking.k8s.io/v1"
        try await api("POST", "\(gatewayAPI)/gatewayclasses", [
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": ["name": "portway"], "spec": ["controllerName": LocalCluster.gatewayControllerName],
        ])
        try await api("POST", "\(gatewayAPI)/namespaces/\(LocalCluster.namespace)/gateways", [
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": ["name": "web"],
            "spec": ["gatewayClassName": "portway", "listeners": [["name": "http", "port": 80, "protocol": "HTTP"]]],
        ])
    }

    /// Polls the object at `path` until `accept` holds (bounded); returns it.
    @discardableResult
    func waitForObject(_ path: String, _ what: String, timeout: Duration = .seconds(60), _ accept: ([String: Any]) -> Bool) async throws -> [String: Any] {
        var last: [String: Any] = [:]
        let seen = try await waitUntil(timeout: timeout, every: .milliseconds(250)) {
            last = try await api("GET", path, allow: [404])
            return accept(last)
        }
        if seen { return last }
        throw E2EError("\(path): \(what) not seen within \(timeout); last: \(String(describing: last["status"] ?? last).prefix(1500))")
    }
}

/// The conditions of a status object as type → (status, reason, observedGeneration).
private func conditions(_ status: [String: Any]?) -> [String: (status: String, reason: String, generation: Int)] {
    var out: [String: (String, String, Int)] = [:]
    for condition in status?["conditions"] as? [[String: Any]] ?? [] {
        guard let type = condition["type"] as? String else { continue }
        out[type] = (condition["status"] as? String ?? "", condition["reason"] as? String ?? "", (condition["observedGeneration"] as? NSNumber)?.intValue ?? -1)
    }
    return out
}

private func generation(_ object: [String: Any]) -> Int {
    ((object["metadata"] as? [String: Any])?["generation"] as? NSNumber)?.intValue ?? -1
}

/// The Gateway half in cluster mode: the upstream Gateway API CRDs, a Portway GatewayClass, a
/// Gateway and two HTTPRoutes applied through the real API server; the leader creates the
/// Gateway's Service and writes status; every node's datapath hands the Service's NodePort to its
/// proxy, which routes by Host; an HTTPRoute edited through the API moves the traffic (the
/// incremental feed into every agent's Gateway stage).
@Suite("e2e: Gateways in cluster mode", .serialized, .enabled(if: E2EPrerequisites.ready, "needs root, bpffs, the BPF object, the portway binary and KUBEBUILDER_ASSETS (reason printed)"))
struct GatewayClusterTests {
    static let gatewayAPI = "/apis/gateway.networking.k8s.io/v1"
    static var namespace: String { LocalCluster.namespace }

    func route(_ name: String, host: String, service: String) -> [String: Any] {
        [
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": ["name": name],
            "spec": [
                "parentRefs": [["name": "web"]], "hostnames": [host],
                "rules": [["backendRefs": [["name": service, "port": 80]]]],
            ],
        ]
    }

    @Test("Host routing through the Gateway's NodePort on every node; status written by the leader; an HTTPRoute edit moves the traffic; an agent restart keeps routing")
    func hostRouting() async throws {
        try await withLocalCluster { cluster in
            let ns = Self.namespace
            try await cluster.createPod("app-a-1", on: "node-a", labels: ["app": "app-a"])
            try await cluster.createPod("app-b-1", on: "node-b", labels: ["app": "app-b"])
            try await cluster.createService("app-a", selector: "app-a", nodePort: 30091)
            try await cluster.createService("app-b", selector: "app-b", nodePort: 30092)

            try await cluster.createWebGateway()
            try await cluster.api("POST", "\(Self.gatewayAPI)/namespaces/\(ns)/httproutes", route("route-a", host: "a.example.com", service: "app-a"))
            try await cluster.api("POST", "\(Self.gatewayAPI)/namespaces/\(ns)/httproutes", route("route-b", host: "b.example.com", service: "app-b"))

            // The leader creates the Gateway's Service; the API server picks its NodePort.
            let service = try await cluster.waitForObject("/api/v1/namespaces/\(ns)/services/portway-gw-web", "the Gateway's Service") {
                (($0["spec"] as? [String: Any])?["ports"] as? [[String: Any]])?.first?["nodePort"] != nil
            }
            let ports = try #require((service["spec"] as? [String: Any])?["ports"] as? [[String: Any]])
            let nodePort = try #require((ports.first?["nodePort"] as? NSNumber)?.intValue)
            #expect(ports.count == 1 && (ports.first?["port"] as? NSNumber)?.intValue == 80)

            // Every node routes by Host, whichever node the backend runs on.
            for node in ["node-a", "node-b"] {
                let target = "\(cluster.nodeIP(node)):\(nodePort)"
                try await cluster.waitFor(target, host: "a.example.com") { $0.hasPrefix("ok app-a-1 ") }
                try await cluster.waitFor(target, host: "b.example.com") { $0.hasPrefix("ok app-b-1 ") }
                #expect(try await cluster.get(target, host: "c.example.com") == "http 404", "\(node): an unknown host")
                for _ in 0..<5 {
                    let answer = try await cluster.get(target, host: "a.example.com")
                    #expect(answer.hasPrefix("ok app-a-1 "), "\(node): \(answer)")
                }
            }

            // Status, written by the leader with each object's generation.
            let gatewayPath = "\(Self.gatewayAPI)/namespaces/\(ns)/gateways/web"
            let gateway = try await cluster.waitForObject(gatewayPath, "Gateway Accepted and Programmed, 2 routes attached") { object in
                let status = object["status"] as? [String: Any]
                let listeners = status?["listeners"] as? [[String: Any]] ?? []
                let c = conditions(status)
                return c["Accepted"]?.status == "True" && c["Programmed"]?.status == "True"
                    && (listeners.first?["attachedRoutes"] as? NSNumber)?.intValue == 2
            }
            let gatewayConditions = conditions(gateway["status"] as? [String: Any])
            #expect(gatewayConditions["Accepted"]?.generation == generation(gateway))
            let listener = try #require(((gateway["status"] as? [String: Any])?["listeners"] as? [[String: Any]])?.first)
            #expect(conditions(listener)["Programmed"]?.status == "True")
            #expect(conditions(listener)["ResolvedRefs"]?.status == "True")
            let classStatus = try await cluster.waitForObject("\(Self.gatewayAPI)/gatewayclasses/portway", "GatewayClass Accepted") {
                conditions($0["status"] as? [String: Any])["Accepted"]?.status == "True"
            }
            #expect(conditions(classStatus["status"] as? [String: Any])["Accepted"]?.reason == "Accepted")

            // The route edit: a.example.com to app-b. Its generation moves to 2; the traffic and the status follow.
            let routeAPath = "\(Self.gatewayAPI)/namespaces/\(ns)/httproutes/route-a"
            try await cluster.api("PATCH", routeAPath, ["spec": ["rules": [["backendRefs": [["name": "app-b", "port": 80]]]]]])
            for node in ["node-a", "node-b"] {
                try await cluster.waitFor("\(cluster.nodeIP(node)):\(nodePort)", host: "a.example.com") { $0.hasPrefix("ok app-b-1 ") }
            }
            let routeA = try await cluster.waitForObject(routeAPath, "route-a's parent status at generation 2") { object in
                let parents = (object["status"] as? [String: Any])?["parents"] as? [[String: Any]] ?? []
                guard let ours = parents.first(where: { $0["controllerName"] as? String == LocalCluster.gatewayControllerName }) else { return false }
                let c = conditions(ours)
                return c["Accepted"]?.status == "True" && c["ResolvedRefs"]?.status == "True" && c["Accepted"]?.generation == generation(object)
            }
            #expect(generation(routeA) == 2)

            // A backendRef to a Service that does not exist: 500 for its share, ResolvedRefs False (BackendNotFound).
            let routeBPath = "\(Self.gatewayAPI)/namespaces/\(ns)/httproutes/route-b"
            try await cluster.api("PATCH", routeBPath, ["spec": ["rules": [["backendRefs": [["name": "missing", "port": 80]]]]]])
            try await cluster.waitFor("\(cluster.nodeIP("node-a")):\(nodePort)", host: "b.example.com") { $0 == "http 500" }
            try await cluster.waitForObject(routeBPath, "route-b ResolvedRefs False") { object in
                let parents = (object["status"] as? [String: Any])?["parents"] as? [[String: Any]] ?? []
                let c = conditions(parents.first { $0["controllerName"] as? String == LocalCluster.gatewayControllerName })
                return c["ResolvedRefs"]?.status == "False" && c["ResolvedRefs"]?.reason == "BackendNotFound"
            }

            // route-b deleted: b.example.com is a 404 on every node; the listener counts one route.
            try await cluster.api("DELETE", routeBPath)
            for node in ["node-a", "node-b"] {
                try await cluster.waitFor("\(cluster.nodeIP(node)):\(nodePort)", host: "b.example.com") { $0 == "http 404" }
            }
            try await cluster.waitForObject(gatewayPath, "1 route attached") { object in
                let listeners = (object["status"] as? [String: Any])?["listeners"] as? [[String: Any]] ?? []
                return (listeners.first?["attachedRoutes"] as? NSNumber)?.intValue == 1
            }
            // Unrelated L4 Services still work beside it.
            #expect(try await cluster.get("\(cluster.nodeIP("node-a")):30091").hasPrefix("ok app-a-1 "))

            // node-a's agent killed and restarted: it re-adopts the pins (its L7LB frontends and
            // their proxy port), reopens the proxy port and routes by Host again.
            try await cluster.killAgent("node-a")
            try await cluster.startAgent("node-a")
            try await cluster.waitFor("\(cluster.nodeIP("node-a")):\(nodePort)", host: "a.example.com") { $0.hasPrefix("ok app-b-1 ") }
            #expect(try await cluster.get("\(cluster.nodeIP("node-a")):\(nodePort)", host: "b.example.com") == "http 404")
            // The new process's own log (the proxy lives in the agent: the answers above already came from it).
            let restartedLog = cluster.agents["node-a"]?.log ?? ""
            #expect(restartedLog.contains("proxy ports found in the pins; kept for their Gateways"), "the restarted agent read its proxy port back:\n\(restartedLog.suffix(2000))")
        }
    }
}
