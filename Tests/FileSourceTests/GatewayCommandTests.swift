import Foundation
import GatewayCore
import KubeModels
import LoadBalancer
import Testing
@testable import FileSource
import Views

/// docs/examples/gateway-traps: three LoadBalancers in front of two Portway Gateways with a shared HTTPRoute.
private let trapsDirectory = packageRoot + "/docs/examples/gateway-traps"

private func explain(_ to: String, host: String, path: String = "/", headers: [String] = []) throws -> Explanation {
    try Command.explain(GatewayViewOptions(directory: trapsDirectory), request: ExplainRequest(to: to, host: host, path: path, headers: headers), format: .json).explanation
}

private func summary(_ e: Explanation) -> String {
    let route = e.decision?.entry.map { "\($0.route) rule \($0.rule)" } ?? "no route"
    return "\(e.mode) \(e.gateway?.description ?? "-") \(e.decision?.listener ?? "-") \(route) \(e.code.map(String.init) ?? "-")"
}

@Suite struct GatewayExplainTests {
    @Test func eachLoadBalancerReachesItsGatewayAndRoute() throws {
        let public80 = try explain("203.0.113.10:80", host: "www.shop.example", path: "/api/cart")
        #expect(summary(public80) == "l7lb shop/public http shop/storefront rule 1 200")
        #expect(public80.backends == [ExplainBackend(address: "10.244.2.10", port: 8080, weight: 1)])
        #expect(public80.warnings.map(\.kind) == ["shared-nodeport", "route-multiple-parents", "route-shadowed"])
        #expect(public80.warnings[2].message == "route shop/api-v2 rule 0 also matches www.shop.example/api/cart, but shop/storefront rule 1 wins: shop/storefront's hostname is more specific for www.shop.example")

        let internal80 = try explain("203.0.113.20:80", host: "www.shop.example", path: "/api/cart")
        #expect(summary(internal80) == "l7lb shop/internal http shop/storefront rule 1 200")
        #expect(internal80.warnings.map(\.kind) == ["listener-any-hostname", "route-multiple-parents"])

        // The third LoadBalancer shares 203.0.113.10 with the public Gateway but leads to the internal one.
        let extra = try explain("203.0.113.10:9080", host: "www.shop.example")
        #expect(summary(extra) == "l7lb shop/internal extra shop/storefront rule 0 200")
        #expect(extra.backends.map(\.address) == ["10.244.1.10", "10.244.1.11"])
        #expect(extra.warnings.map(\.kind) == ["shared-nodeport", "listener-any-hostname", "route-multiple-parents"])
        #expect(extra.warnings[0].message == "LoadBalancer address 203.0.113.10 leads to different Gateways by port: Gateway shop/internal via port 9080 (NodePort 30280); Gateway shop/public via port 80 (NodePort 30080)")
    }

    @Test func theSameRequestThroughANodePort() throws {
        let nodePort = try explain("192.0.2.10:30080", host: "www.shop.example")
        #expect(summary(nodePort) == "l7lb shop/public http shop/storefront rule 0 200")
        #expect(nodePort.proxyPort == 10002)  // public:80 after internal:80 and internal:9080 in key order
        #expect(nodePort.warnings.map(\.kind) == ["route-multiple-parents"])
    }

    @Test func otherHostsAndPaths() throws {
        // The public listener takes *.shop.example only.
        #expect(summary(try explain("203.0.113.10:80", host: "shop.example")) == "l7lb shop/public - no route 404")
        // api-v2 serves other hosts, but its only endpoint is terminating: used because none is ready.
        let other = try explain("203.0.113.10:80", host: "m.shop.example", path: "/api")
        #expect(summary(other) == "l7lb shop/public http shop/api-v2 rule 0 200")
        #expect(other.backends == [ExplainBackend(address: "10.244.3.10", port: 8080, weight: 1)])
        #expect(other.decision?.candidates.map { "\($0.route) \($0.rule) \($0.result.rawValue)" } == [
            "shop/storefront 1 lost", "shop/api-v2 0 won", "shop/storefront 0 lost",
        ])
        #expect(summary(try explain("203.0.113.10:80", host: "m.shop.example", path: "/")) == "l7lb shop/public http no route 404")
    }

    @Test func anotherControllersGatewayStaysL4() throws {
        let legacy = try explain("203.0.113.30:80", host: "www.shop.example")
        #expect(summary(legacy) == "l4 - - no route -")
        #expect(legacy.warnings.map(\.kind) == ["not-portway"])
        #expect(legacy.warnings[0].message.contains("example.org/other-controller"))
    }

    @Test func anUnknownDestination() throws {
        let none = try explain("198.51.100.1:80", host: "x")
        #expect(summary(none) == "none - - no route -")
        let json = try Command.explain(GatewayViewOptions(directory: trapsDirectory), request: ExplainRequest(to: "198.51.100.1:80", host: "x", path: "/"), format: .json).stdout
        #expect(json == """
        {
          "frontend": null,
          "mode": "none",
          "proxyPort": null,
          "gateway": null,
          "listener": null,
          "route": null,
          "policy": null,
          "candidates": [],
          "backends": [],
          "code": null,
          "refused": false,
          "reason": null,
          "unservedListeners": [],
          "notAttached": [],
          "warnings": []
        }

        """)
    }

    @Test func explainJSONHasTheDocumentedShape() throws {
        let out = try Command.explain(
            GatewayViewOptions(directory: trapsDirectory), request: ExplainRequest(to: "203.0.113.20:80", host: "www.shop.example", path: "/api"), format: .json
        ).stdout
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(Set(object.keys) == [
            "frontend", "mode", "proxyPort", "gateway", "listener", "route", "policy", "candidates", "backends", "code", "refused", "reason",
            "unservedListeners", "notAttached", "warnings",
        ])
        #expect(object["mode"] as? String == "l7lb")
        #expect(object["gateway"] as? [String: String] == ["namespace": "shop", "name": "internal"])
        let listener = try #require(object["listener"] as? [String: Any])
        #expect(listener["name"] as? String == "http")
        #expect(listener["hostname"] is NSNull)
        #expect(listener["port"] as? Int == 80)
        let route = try #require(object["route"] as? [String: Any])
        #expect(route["name"] as? String == "storefront")
        #expect(route["rule"] as? Int == 1)
        let candidates = try #require(object["candidates"] as? [[String: Any]])
        #expect(candidates.map { Set($0.keys) } == Array(repeating: ["route", "rule", "match", "result", "reason"], count: 2))
        #expect(object["code"] as? Int == 200)
        // Issue 19: the winning rule's timeouts and retry as the proxy applies them.
        let policy = try #require(object["policy"] as? [String: Any])
        #expect(policy["timeouts"] as? [String: String] == ["request": "10s", "backendRequest": "2s"])
        let retry = try #require(policy["retry"] as? [String: Any])
        #expect(retry["codes"] as? [Int] == [502, 503] && retry["attempts"] as? Int == 2 && retry["backoff"] as? String == "100ms")
        #expect((policy["mirrors"] as? [Any])?.isEmpty == true)
        let text = try Command.explain(
            GatewayViewOptions(directory: trapsDirectory), request: ExplainRequest(to: "203.0.113.20:80", host: "www.shop.example", path: "/api"), format: .text
        ).stdout
        #expect(text.contains("policy: timeout request 10s, timeout backendRequest 2s, retry 2x on 502 / 503 / connect errors / resets / backend timeouts backoff 100ms\n"), "\(text)")
    }

    /// Issue 19: with the nodes' reports (`--kubeconfig`), explain says what this node's agent
    /// reports it serves of the Gateway the request reaches.
    @Test func explainShowsThisNodesReport() throws {
        let options = GatewayViewOptions(directory: trapsDirectory)
        let request = ExplainRequest(to: "203.0.113.20:80", host: "www.shop.example", path: "/api")
        func explained(_ reports: [String: NodeProgramReport]?, _ format: ExplainFormat = .json) throws -> (stdout: String, explanation: Explanation) {
            try Command.explain(request: request, format: format, nodeReports: reports) { address throws(GatewayCommandError) in
                try GatewayView.load(options, preferNodeWithAddress: address)
            }
        }
        let node = try explained(nil).explanation
        let gateway = try #require(node.gateway)
        #expect(node.nodeReport == nil, "no reports read: nothing said")
        #expect(try explained([:]).stdout == explained(nil).stdout, "no node reports at all: the output -f gives")
        let nodeName = try GatewayView.load(options, preferNodeWithAddress: IPAddress("203.0.113.20")).nodeName
        let failing = NodeProgramReport(gateways: [gateway.description: GatewayProgram(generation: 1000, failures: ["https": "certificate not loaded: bad"])])
        let withReport = try explained([nodeName: failing])
        #expect(withReport.explanation.nodeReport?.state == "failed")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(withReport.stdout.utf8)) as? [String: Any])
        let report = try #require(object["nodeReport"] as? [String: Any])
        #expect(report["node"] as? String == nodeName)
        #expect(report["failures"] as? [String: String] == ["https": "certificate not loaded: bad"])
        #expect(Set(report.keys) == ["node", "state", "generation", "gatewayGeneration", "failures", "waiting", "route"])
        // The winning route: its generation in the objects, and the one this node serves (none here).
        let route = try #require(report["route"] as? [String: Any])
        let routeName = try #require(route["name"] as? String)
        #expect(route["served"] is NSNull)
        let split = routeName.split(separator: "/").map(String.init)
        var serving = failing
        serving.routes = [split[0]: [split[1]: 1000]]
        let served = try explained([nodeName: serving]).explanation.nodeReport?.route
        #expect(served?.served == 1000 && served?.name.description == routeName)
        // Waiting for a port's redirect: pending, with what it waits for.
        let waiting = NodeProgramReport(gateways: [gateway.description: GatewayProgram(generation: 1000, pending: ["port 80": "the redirect to proxy port 10000 is not in the maps yet"])])
        let waited = try explained([nodeName: waiting])
        #expect(waited.explanation.nodeReport?.state == "pending")
        #expect(waited.explanation.nodeReport?.waiting == ["port 80": "the redirect to proxy port 10000 is not in the maps yet"])
        let text = try explained([nodeName: failing], .text).stdout
        #expect(text.contains("node report (\(nodeName)): serves generation 1000; listener https: certificate not loaded: bad; route \(routeName) not served (the route is at "), "\(text)")
        // Another node reports, this one does not: absent.
        #expect(try explained(["elsewhere": NodeProgramReport()]).explanation.nodeReport?.state == "absent")
        // This node at an older generation than the Gateway's: pending.
        let lagging = try explained([nodeName: NodeProgramReport(gateways: [gateway.description: GatewayProgram(generation: -1)])])
        #expect(lagging.explanation.nodeReport?.state == "pending")
    }

    @Test func badArgumentsAreErrors() {
        let options = GatewayViewOptions(directory: trapsDirectory)
        #expect(throws: GatewayCommandError.invalidDestination("203.0.113.10")) {
            try Command.explain(options, request: ExplainRequest(to: "203.0.113.10", host: "x", path: "/"), format: .json)
        }
        #expect(throws: GatewayCommandError.invalidHeader("novalue")) {
            try Command.explain(options, request: ExplainRequest(to: "203.0.113.10:80", host: "x", path: "/", headers: ["novalue"]), format: .json)
        }
    }
}

@Suite struct GatewayRoutesCommandTests {
    @Test func routesAsATable() throws {
        let out = try Command.routes(GatewayViewOptions(directory: trapsDirectory), format: .table)
        #expect(out.stderr == "")
        Golden.check(out.stdout, "gateway-traps.routes.txt")
    }

    @Test func routesAsJSON() throws {
        let out = try Command.routes(GatewayViewOptions(directory: trapsDirectory), format: .json)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
        let tables = try #require(object["tables"] as? [[String: Any]])
        #expect(tables.map { "\(($0["gateway"] as? [String: String])?["name"] ?? "") \($0["port"] as? Int ?? 0) \($0["proxyPort"] as? Int ?? 0)" } == [
            "internal 80 10000", "internal 9080 10001", "public 80 10002",
        ])
        let rule = try #require(((tables[2]["listeners"] as? [[String: Any]])?.first?["rules"] as? [[String: Any]])?.first)
        #expect(Set(rule.keys) == ["route", "rule", "match", "hostnames", "path", "headers", "queryParams", "method", "filters", "policy", "backends"])
        #expect(object["warnings"] as? [Any] != nil)
        // Byte-stable: two runs give the same text.
        #expect(try Command.routes(GatewayViewOptions(directory: trapsDirectory), format: .json).stdout == out.stdout)
    }
}

@Suite struct PinnedProxyPortTests {
    @Test("with a node's pinned proxy ports (--bpffs) the ports it uses are kept; keys the maps lack get the lowest free ones")
    func pinnedPortsAreKept() throws {
        let options = GatewayViewOptions(directory: trapsDirectory)
        let fresh = try GatewayView.load(options)
        // The node's maps: public:80 (reached at 203.0.113.10:80) on 10500; a frontend no Gateway has any more on 10001.
        let pinned: [Frontend: UInt16] = [
            Frontend(address: IPAddress("203.0.113.10")!, port: 80, proto: .tcp): 10500,
            Frontend(address: IPAddress("198.51.100.99")!, port: 80, proto: .tcp): 10001,
        ]
        let view = try GatewayView.load(options, pinnedProxyPorts: pinned)
        func port(_ view: GatewayView, _ name: String, _ listenerPort: Int) -> UInt16? {
            view.plan.proxyPort(gateway: NamespacedName(namespace: "shop", name: name), port: listenerPort)
        }
        #expect(port(fresh, "public", 80) == 10002, "without pins: in key order")
        #expect(port(view, "public", 80) == 10500, "the pinned port")
        #expect(port(view, "internal", 80) == 10000)
        #expect(port(view, "internal", 9080) == 10001, "a pin of a frontend no Gateway has does not hold a port")
        let explained = try Command.explain(request: ExplainRequest(to: "203.0.113.10:80", host: "www.shop.example", path: "/"), format: .json) { address throws(GatewayCommandError) in
            try GatewayView.load(options, preferNodeWithAddress: address, pinnedProxyPorts: pinned)
        }
        #expect(explained.explanation.proxyPort == 10500)
        let routes = try #require(try JSONSerialization.jsonObject(with: Data(Command.routes(view, format: .json).stdout.utf8)) as? [String: Any])
        #expect((routes["tables"] as? [[String: Any]])?.compactMap { $0["proxyPort"] as? Int } == [10000, 10001, 10500])
    }
}

@Suite struct TranslateWithGatewaysTests {
    @Test func translateMarksPortwayGatewayFrontendsL7WithTheSamePortsAsExplain() throws {
        let output = try Command.translate(TranslateRequest(directory: trapsDirectory, nodeName: "node-a"))
        let l7 = output.state.entries.filter { $0.flags.contains(.l7LoadBalancer) }
        #expect(Set(l7.map(\.service.name)) == ["portway-gw-public", "portway-gw-internal", "internal-extra"])
        #expect(l7.allSatisfy { $0.backends.isEmpty })
        let public80 = try #require(output.state.entries.first { $0.frontend.description == "203.0.113.10:80/TCP" })
        #expect(public80.l7ProxyPort == 10002)
        #expect(try explain("203.0.113.10:80", host: "www.shop.example").proxyPort == public80.l7ProxyPort)
        // Another controller's Gateway stays L4.
        let legacy = try #require(output.state.entries.first { $0.frontend.description == "203.0.113.30:80/TCP" })
        #expect(legacy.l7ProxyPort == nil && !legacy.flags.contains(.l7LoadBalancer))
    }
}

/// `portway explain` decides with the proxy's engine: RE2, linear time (issue 16 item 2). With
/// a backtracking engine the pathological path never gets an answer (the time limit fails it).
@Suite struct ExplainRegularExpressionTests {
    static let yaml = KubeYAML.join(
        KubeYAML.webGateway(namespace: "lab", clusterIP: "10.96.0.80"),
        KubeYAML.httpRoute("nested", namespace: "lab", hostnames: ["a.example.com"], rules: [
            KubeYAML.rule("a", matches: "[{path: {type: RegularExpression, value: '/(a+)+b'}}]"),
        ]),
        KubeYAML.backend("a", namespace: "lab", clusterIP: "10.96.0.81", targetPort: 8081, addresses: ["10.244.1.10"]))

    @Test(.timeLimit(.minutes(1)))
    func explainAnswersPathologicalPathsInLinearTime() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("portway-explain-regex-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.yaml.write(toFile: directory + "/gateway.yaml", atomically: true, encoding: .utf8)
        let options = GatewayViewOptions(directory: directory, nodeName: "lab-node", nodeIPs: ["192.0.2.10"])
        func explain(_ path: String) throws -> Explanation {
            try Command.explain(options, request: ExplainRequest(to: "192.0.2.10:30880", host: "a.example.com", path: path), format: .json).explanation
        }
        #expect(try explain("/aab").decision?.entry?.route.name == "nested")
        let pathological = try explain("/" + String(repeating: "a", count: 5000))
        #expect(pathological.code == 404)
        #expect(pathological.decision?.candidates.first?.reason.contains("does not match RegularExpression /(a+)+b") == true)
    }
}

/// A rule's timeouts in `routes` and `explain` (issue 19: "explain shows a retry/timeout policy"),
/// as a per-rule `policy` beside the filters.
@Suite struct RoutePolicyCommandTests {
    static let yaml = KubeYAML.join(
        KubeYAML.webGateway(namespace: "lab", clusterIP: "10.96.0.80"),
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: slow, namespace: lab}
        spec:
          parentRefs: [{name: web}]
          hostnames: [a.example.com]
          rules:
          - matches: [{path: {type: PathPrefix, value: /slow}}]
            backendRefs: [{name: a, port: 80}]
            timeouts: {request: 1m30s, backendRequest: 500ms}
          - matches: [{path: {type: PathPrefix, value: /stream}}]
            backendRefs: [{name: a, port: 80}]
            timeouts: {request: 0s}
          - backendRefs: [{name: a, port: 80}]

        """,
        KubeYAML.backend("a", namespace: "lab", clusterIP: "10.96.0.81", targetPort: 8081, addresses: ["10.244.1.10"]))

    static func withDirectory(_ body: (GatewayViewOptions) throws -> Void) throws {
        // One directory per test: the suite's tests run in parallel.
        let directory = try makeTempDirectory("portway-route-policy")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try yaml.write(toFile: directory + "/gateway.yaml", atomically: true, encoding: .utf8)
        try body(GatewayViewOptions(directory: directory, nodeName: "lab-node", nodeIPs: ["192.0.2.10"]))
    }

    @Test("explain: the winning rule's timeouts as text and as the JSON policy object; none when the rule sets none")
    func explainShowsTheRulesTimeouts() throws {
        try Self.withDirectory { options in
            func explain(_ path: String, _ format: ExplainFormat) throws -> String {
                try Command.explain(options, request: ExplainRequest(to: "192.0.2.10:30880", host: "a.example.com", path: path), format: format).stdout
            }
            let text = try explain("/slow/x", .text)
            #expect(text.contains("route: lab/slow rule 0\npolicy: timeout request 1m30s, timeout backendRequest 500ms\n"), "\(text)")
            #expect(try explain("/stream", .text).contains("policy: timeout request 0s (disabled)\n"))
            #expect(try explain("/other", .text).contains("policy: none (the proxy's own timeouts)\n"))
            let json = try #require(try JSONSerialization.jsonObject(with: Data(explain("/slow", .json).utf8)) as? [String: Any])
            let policy = try #require(json["policy"] as? [String: Any])
            #expect(policy["timeouts"] as? [String: String] == ["request": "1m30s", "backendRequest": "500ms"])
            #expect(policy["retry"] is NSNull && (policy["mirrors"] as? [Any])?.isEmpty == true)
            let none = try #require(try JSONSerialization.jsonObject(with: Data(explain("/other", .json).utf8)) as? [String: Any])
            let timeouts = try #require((none["policy"] as? [String: Any])?["timeouts"] as? [String: Any])
            #expect(timeouts["request"] is NSNull && timeouts["backendRequest"] is NSNull)
        }
    }

    @Test("routes: each rule's policy in the JSON, and the timeouts set at the end of its table line")
    func routesShowTheRulesTimeouts() throws {
        try Self.withDirectory { options in
            let table = try Command.routes(options, format: .table).stdout
            let lines = table.split(separator: "\n").filter { $0.contains("lab/slow rule") }
            #expect(lines.count == 3, "\(table)")
            #expect(lines.contains { $0.contains("PathPrefix /slow") && $0.hasSuffix(" {timeout request 1m30s, timeout backendRequest 500ms}") }, "\(table)")
            #expect(lines.contains { $0.contains("PathPrefix /stream") && $0.hasSuffix(" {timeout request 0s (disabled)}") }, "\(table)")
            #expect(lines.contains { $0.contains("PathPrefix / ") && !$0.contains("{") }, "\(table)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(Command.routes(options, format: .json).stdout.utf8)) as? [String: Any])
            let rules = try #require(((object["tables"] as? [[String: Any]])?.first?["listeners"] as? [[String: Any]])?.first?["rules"] as? [[String: Any]])
            let policies = rules.map { rule in
                let t = (rule["policy"] as? [String: Any])?["timeouts"] as? [String: Any]
                return "\(rule["rule"] as? Int ?? -1): \(t?["request"] as? String ?? "-") \(t?["backendRequest"] as? String ?? "-")"
            }
            #expect(policies.sorted() == ["0: 1m30s 500ms", "1: 0s -", "2: - -"])
        }
    }

    @Test func durationsPrintAsGatewayAPIDurations() {
        #expect(GatewayDuration.format(0.5) == "500ms")
        #expect(GatewayDuration.format(0) == "0s")
        #expect(GatewayDuration.format(90) == "1m30s")
        #expect(GatewayDuration.format(3723.25) == "1h2m3s250ms")
        for text in ["500ms", "1h2m3s250ms", "10s", "99999h"] {
            #expect(GatewayDuration.seconds(text).map(GatewayDuration.format) == text, "\(text) round-trips")
        }
    }
}

/// `portway routes` shows a port's client certificate validation (docs/CLI-JSON.md): the mode and
/// the ConfigMaps whose `ca.crt` resolved, as text and JSON; absent on ports without it.
@Suite struct RoutesClientValidationTests {
    @Test func routesShowAPortsClientCertificateValidation() throws {
        guard haveCommand("openssl") else {
            print("skipping: openssl is missing")
            return
        }
        let directory = try makeTempDirectory("portway-client-validation")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try makeCertificate(hostname: "example.org", path: directory + "/server")
        try makeCertificate(hostname: "client", path: directory + "/client")
        let ca = try String(contentsOfFile: directory + "/client.crt", encoding: .utf8)
        let yaml = KubeYAML.join(
            KubeYAML.gatewayClass(),
            KubeYAML.gateway("tls", namespace: "lab", listeners: [
                KubeYAML.listener("https", port: 443, protocol: "HTTPS", certificate: "cert"), KubeYAML.listener("https-8443", port: 8443, protocol: "HTTPS", certificate: "cert"),
            ]).replacingOccurrences(of: "  listeners:\n", with: """
                  tls:
                    frontend:
                      default: {validation: {caCertificateRefs: [{kind: ConfigMap, group: "", name: ca}]}}
                      perPort: [{port: 8443, tls: {}}]
                  listeners:

                """),
            KubeYAML.tlsSecret(
                "cert", namespace: "lab", certificate: try Data(contentsOf: URL(fileURLWithPath: directory + "/server.crt")),
                key: try Data(contentsOf: URL(fileURLWithPath: directory + "/server.key"))),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: lab}\ndata: {ca.crt: \(String(reflecting: ca))}\n",
            KubeYAML.gatewayService("tls", namespace: "lab", clusterIP: "10.96.0.44", ports: [
                .init(name: "https", port: 443, targetPort: 443, nodePort: 30443), .init(name: "https-8443", port: 8443, targetPort: 8443, nodePort: 30444),
            ]))
        try yaml.write(toFile: directory + "/gateway.yaml", atomically: true, encoding: .utf8)
        let options = GatewayViewOptions(directory: directory)
        let table = try Command.routes(options, format: .table).stdout
        #expect(table.contains("GATEWAY lab/tls PORT 443 PROXY PORT ") && table.contains(" CLIENT CERTIFICATES AllowValidOnly CA lab/ca\n"), "\(table)")
        #expect(table.components(separatedBy: "CLIENT CERTIFICATES").count == 2, "port 8443 has none: \(table)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(Command.routes(options, format: .json).stdout.utf8)) as? [String: Any])
        let tables = try #require(object["tables"] as? [[String: Any]])
        #expect(tables.map { "\($0["port"] as? Int ?? 0) \($0["clientValidation"].map { "\($0)" } ?? "none")" }.count == 2)
        let validation = try #require(tables.first { $0["port"] as? Int == 443 }?["clientValidation"] as? [String: Any])
        #expect(validation["mode"] as? String == "AllowValidOnly")
        #expect(validation["caCertificateRefs"] as? [String] == ["lab/ca"])
        #expect(tables.first { $0["port"] as? Int == 8443 }?["clientValidation"] == nil)

        // explain: the port's validation beside the listener.
        let https = ExplainRequest(to: "10.96.0.44:443", host: "example.org", path: "/")
        let text = try Command.explain(options, request: https, format: .text).stdout
        #expect(text.contains("client certificates: AllowValidOnly, CA lab/ca: a client without a certificate of these CAs fails the TLS handshake\n"), "\(text)")
        let other = try Command.explain(options, request: ExplainRequest(to: "10.96.0.44:8443", host: "example.org", path: "/"), format: .text).stdout
        #expect(!other.contains("client certificates"))
        let explained = try #require(try JSONSerialization.jsonObject(with: Data(Command.explain(options, request: https, format: .json).stdout.utf8)) as? [String: Any])
        let listener = try #require(explained["listener"] as? [String: Any], "\(explained)")
        #expect((listener["clientValidation"] as? [String: Any])?["caCertificateRefs"] as? [String] == ["lab/ca"])
    }
}

/// `portway routes` and `explain` show a backend's TLS (its BackendTLSPolicy: SNI, CA source,
/// subject alternative names) as text and JSON; plain backends keep their JSON as it was.
@Suite struct RoutesBackendTLSTests {
    @Test func routesAndExplainShowABackendsTLS() throws {
        let directory = try makeTempDirectory("portway-backend-tls")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ca = "-----BEGIN CERTIFICATE-----\nMAEJ\n-----END CERTIFICATE-----\n"
        let yaml = KubeYAML.join(
            KubeYAML.webGateway(namespace: "lab", clusterIP: "10.96.0.45"),
            KubeYAML.backend("secure", namespace: "lab", clusterIP: "10.96.0.46", targetPort: 8443, addresses: ["10.244.1.5"]),
            KubeYAML.backend("plain", namespace: "lab", clusterIP: "10.96.0.47", targetPort: 8080, addresses: ["10.244.1.6"]),
            KubeYAML.httpRoute("r", namespace: "lab", hostnames: ["abc.example.com"], rules: [
                KubeYAML.rule("secure", matches: "[{path: {type: PathPrefix, value: /secure}}]"), KubeYAML.rule("plain"),
            ]),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: lab}\ndata: {ca.crt: \(String(reflecting: ca))}\n",
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: BackendTLSPolicy
            metadata: {name: secure-tls, namespace: lab}
            spec:
              targetRefs: [{group: "", kind: Service, name: secure}]
              validation:
                caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]
                hostname: abc.example.com
                subjectAltNames: [{type: URI, uri: "spiffe://abc.example.com/id"}]

            """)
        try yaml.write(toFile: directory + "/gateway.yaml", atomically: true, encoding: .utf8)
        let options = GatewayViewOptions(directory: directory)
        let table = try Command.routes(options, format: .table).stdout
        #expect(table.contains("lab/secure:80 w1 (1 endpoints) [TLS SNI abc.example.com, CA ConfigMap lab/ca, SAN URI:spiffe://abc.example.com/id]"), "\(table)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(Command.routes(options, format: .json).stdout.utf8)) as? [String: Any])
        let rules = (object["tables"] as? [[String: Any]])?.first.flatMap { ($0["listeners"] as? [[String: Any]])?.first?["rules"] as? [[String: Any]] } ?? []
        let backends = rules.compactMap { ($0["backends"] as? [[String: Any]])?.first }
        let secure = try #require(backends.first { ($0["service"] as? [String: Any])?["name"] as? String == "secure" }, "\(rules)")
        let tls = try #require(secure["tls"] as? [String: Any])
        #expect(tls["sni"] as? String == "abc.example.com")
        #expect(tls["caCertificateRefs"] as? [String] == ["lab/ca"])
        #expect(tls["wellKnownCACertificates"] is NSNull)
        #expect((tls["subjectAltNames"] as? [[String: String]]) == [["type": "URI", "value": "spiffe://abc.example.com/id"]])
        let plain = try #require(backends.first { ($0["service"] as? [String: Any])?["name"] as? String == "plain" })
        #expect(plain["tls"] == nil, "a plain backend has no tls key")

        let request = ExplainRequest(to: "10.96.0.45:80", host: "abc.example.com", path: "/secure")
        let text = try Command.explain(options, request: request, format: .text).stdout
        #expect(text.contains("backends: 10.244.1.5:8443 (weight 1, TLS SNI abc.example.com, CA ConfigMap lab/ca, SAN URI:spiffe://abc.example.com/id)\n"), "\(text)")
        let explained = try #require(try JSONSerialization.jsonObject(with: Data(Command.explain(options, request: request, format: .json).stdout.utf8)) as? [String: Any])
        let explainedTLS = try #require((explained["backends"] as? [[String: Any]])?.first?["tls"] as? [String: Any], "\(explained)")
        #expect(explainedTLS["sni"] as? String == "abc.example.com")
        let plainText = try Command.explain(options, request: ExplainRequest(to: "10.96.0.45:80", host: "abc.example.com", path: "/"), format: .text).stdout
        #expect(plainText.contains("backends: 10.244.1.6:8080 (weight 1)\n"), "\(plainText)")
    }
}
