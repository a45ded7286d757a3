import GatewayCore
import KubeModels
import LoadBalancer
import NIOHTTP1
import NIOPosix
import Testing
@testable import L7Proxy

/// The adapter from the Gateway route tables (LoadBalancer) to the proxy's RequestRouter.
@Suite struct GatewayRouteTableRouterTests {
    static let ns = "default"

    static func entry(_ route: String, rule: Int = 0, hostnames: [String], spec: RouteMatchSpec = RouteMatchSpec(),
                      filters: [RouteFilter] = [], backends: [GatewayCore.WeightedBackend]) -> RouteTableEntry {
        RouteTableEntry(route: NamespacedName(namespace: ns, name: route), rule: rule, match: 0, hostnames: hostnames,
                        matchSpec: spec, filters: filters, backends: backends)
    }

    static func backend(_ name: String, _ address: String, weight: Int = 1) -> GatewayCore.WeightedBackend {
        GatewayCore.WeightedBackend(weight: weight, reference: NamespacedName(namespace: ns, name: name), port: 80,
                                     endpoints: [GatewayCore.BackendEndpoint(address: address, port: 8080)])
    }

    static let table = PortRouteTable(gateway: NamespacedName(namespace: ns, name: "gw"), port: 80, listeners: [
        ListenerRouteTable(name: "http", hostname: nil, protocol: .http, rules: [
            entry("a", hostnames: ["a.example.com"], backends: [backend("svc-a", "10.0.0.1")]),
            entry("b", hostnames: ["b.example.com"], spec: RouteMatchSpec(pathKind: .pathPrefix, path: "/api"),
                  filters: [.urlRewrite(URLRewrite(path: .replacePrefixMatch(matchedPrefix: "/api", replacement: "/v2")))],
                  backends: [backend("svc-b", "10.0.0.2")]),
            entry("r", hostnames: ["old.example.com"],
                  filters: [.requestRedirect(RedirectDecision(hostname: "new.example.com", statusCode: 301))],
                  backends: []),
            entry("broken", hostnames: ["broken.example.com"], backends: [
                GatewayCore.WeightedBackend(weight: 1, reference: NamespacedName(namespace: ns, name: "missing"), port: 80,
                                             failure: BackendFailure(reason: "BackendNotFound", message: "no such Service")),
            ]),
            entry("empty", hostnames: ["empty.example.com"], backends: [
                GatewayCore.WeightedBackend(weight: 1, reference: NamespacedName(namespace: ns, name: "idle"), port: 80),
            ]),
        ]),
    ])

    let router = GatewayRouteTableRouter(tables: [10080: GatewayRouteTableRouterTests.table])

    func decide(_ host: String, _ path: String = "/", port: UInt16 = 10080) -> RoutingDecision {
        router.route(RoutingRequest(proxyPort: port, host: host, path: path, method: "GET"))
    }

    @Test func hostSelectsTheRouteAndItsEndpoints() {
        guard case .forward(let a) = decide("a.example.com") else { Issue.record("expected forward"); return }
        #expect(a.route == RouteLabel("default/a/rule0"))
        #expect(BackendChoice.choose(from: a.backends) == .endpoint(UpstreamEndpoint(host: "10.0.0.1", port: 8080)))
        guard case .forward(let b) = decide("b.example.com", "/api/users") else { Issue.record("expected forward"); return }
        #expect(b.rewrite?.path?.apply(to: "/api/users") == "/v2/users")
    }

    /// GatewayHTTPSListenerDetectMisdirectedRequests: the SNI's listener and the Host's must be the
    /// same (upstream's listeners: any host, second-example.org, *.wildcard.org,
    /// fourth-example.wildcard.org); without SNI nothing is compared.
    @Test func aHostServedByAnotherListenerThanTheSNIIsMisdirected() {
        func listener(_ name: String, _ hostname: String?, _ address: String) -> ListenerRouteTable {
            ListenerRouteTable(name: name, hostname: hostname, protocol: .https, rules: [Self.entry(name, hostnames: [], backends: [Self.backend(name, address)])])
        }
        // The table's order: exact names, then wildcards, then no hostname.
        let table = PortRouteTable(gateway: NamespacedName(namespace: Self.ns, name: "gw"), port: 443, listeners: [
            listener("https-with-hostname", "second-example.org", "10.0.0.2"),
            listener("https-with-hostname-matching-wildcard", "fourth-example.wildcard.org", "10.0.0.4"),
            listener("https-with-wildcard-hostname", "*.wildcard.org", "10.0.0.3"),
            listener("https", nil, "10.0.0.1"),
        ])
        let router = GatewayRouteTableRouter(tables: [10443: table])
        func outcome(_ serverName: String?, _ host: String) -> String {
            switch router.route(RoutingRequest(proxyPort: 10443, host: host, path: "/", method: "GET", isTLS: true, serverName: serverName)) {
            case .respond(let status, _): return "\(status)"
            case .forward(let forward): return forward.route.name
            case .redirect: return "redirect"
            }
        }
        #expect(outcome("example.org", "example.org") == "default/https/rule0")
        #expect(outcome("example.org", "second-example.org") == "421")
        #expect(outcome("second-example.org", "example.org") == "421")
        #expect(outcome("Second-Example.org.", "second-example.org") == "default/https-with-hostname/rule0")
        #expect(outcome("third-example.wildcard.org", "fith-example.wildcard.org") == "default/https-with-wildcard-hostname/rule0")
        #expect(outcome("third-example.wildcard.org", "fourth-example.wildcard.org") == "421")
        #expect(outcome("fourth-example.wildcard.org", "fith-example.wildcard.org") == "421")
        #expect(outcome("unknown-example.org", "example.org") == "default/https/rule0")
        #expect(outcome(nil, "second-example.org") == "default/https-with-hostname/rule0")
    }

    /// The Gateway API weights, through the picker the proxy forwards with (BackendChoice): 3:0:1,
    /// a weight of 0 never chosen.
    @Test func weightsSplitTrafficAndZeroMeansNone() {
        let weighted = PortRouteTable(gateway: NamespacedName(namespace: Self.ns, name: "gw"), port: 80, listeners: [
            ListenerRouteTable(name: "http", hostname: nil, protocol: .http, rules: [
                Self.entry("w", hostnames: [], backends: [
                    Self.backend("v1", "10.1.1.1", weight: 3), Self.backend("v2", "10.1.2.1", weight: 0), Self.backend("v3", "10.1.3.1", weight: 1),
                ]),
            ]),
        ])
        let router = GatewayRouteTableRouter(tables: [1: weighted])
        guard case .forward(let forward) = router.route(RoutingRequest(proxyPort: 1, host: "x", path: "/", method: "GET")) else {
            Issue.record("expected forward")
            return
        }
        var totals: [UInt64] = []
        let picks = (0..<4).map { roll in
            BackendChoice.pick(from: forward.backends) { total in totals.append(total); return UInt64(roll) }.backend
        }
        #expect(totals.allSatisfy { $0 == 4 }, "the draw is over the total weight")
        #expect(picks == [0, 0, 0, 2])
    }

    @Test func unknownHostPathOrPortIs404() {
        guard case .respond(404, _) = decide("nobody.example.com") else { Issue.record("expected 404"); return }
        guard case .respond(404, _) = decide("b.example.com", "/other") else { Issue.record("expected 404"); return }
        guard case .respond(404, _) = decide("a.example.com", port: 9) else { Issue.record("expected 404"); return }
    }

    @Test func redirectAndFailingBackends() {
        guard case .redirect(let redirect) = decide("old.example.com", "/x") else { Issue.record("expected redirect"); return }
        #expect(redirect.location(requestScheme: "http", requestHost: "old.example.com", path: "/x", query: nil) == "http://new.example.com/x")
        #expect(redirect.statusCode == 301)
        guard case .forward(let broken) = decide("broken.example.com") else { Issue.record("expected forward"); return }
        #expect(BackendChoice.choose(from: broken.backends) == .status(500))
        guard case .forward(let empty) = decide("empty.example.com") else { Issue.record("expected forward"); return }
        #expect(BackendChoice.choose(from: empty.backends) == .status(503))
    }

    @Test func headerMatchesSeeTheRequestHeadersAndDecisionsFollowATableChange() {
        // One rule matching on a header (the router hands the matcher headers only for such tables).
        let canary = PortRouteTable(gateway: NamespacedName(namespace: Self.ns, name: "gw"), port: 80, listeners: [
            ListenerRouteTable(name: "http", hostname: nil, protocol: .http, rules: [
                Self.entry("canary", hostnames: ["a.example.com"], spec: RouteMatchSpec(headers: [ValueMatch(name: "x-canary", value: "1")]),
                           backends: [Self.backend("svc-canary", "10.0.0.9")]),
                Self.entry("a", rule: 1, hostnames: ["a.example.com"], backends: [Self.backend("svc-a", "10.0.0.1")]),
            ]),
        ])
        var router = GatewayRouteTableRouter(tables: [10080: canary])
        func label(_ headers: HTTPHeaders) -> String? {
            guard case .forward(let f) = router.route(RoutingRequest(proxyPort: 10080, host: "a.example.com", path: "/", method: "GET", headers: headers)) else { return nil }
            return f.route.name
        }
        #expect(label(["X-Canary": "1"]) == "default/canary/rule0")
        #expect(label([:]) == "default/a/rule1")
        // Replacing the tables replaces the prepared decisions too.
        router.tables = [10080: Self.table]
        #expect(label(["X-Canary": "1"]) == "default/a/rule0")
    }

    /// The adapter driving the real proxy on loopback: Host picks the backend, unknown hosts get 404.
    @Test func routesRealTrafficThroughTheGatewayTable() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let a = try await TestBackend(name: "A", group: group)
        let b = try await TestBackend(name: "B", group: group)
        let proxy = L7Proxy(group: group)
        do {
            let port = try await proxy.open(port: 0)
            func backend(_ name: String, _ server: TestBackend) -> GatewayCore.WeightedBackend {
                GatewayCore.WeightedBackend(weight: 1, reference: NamespacedName(namespace: Self.ns, name: name), port: 80,
                                             endpoints: [GatewayCore.BackendEndpoint(address: "127.0.0.1", port: server.port)])
            }
            let table = PortRouteTable(gateway: NamespacedName(namespace: Self.ns, name: "gw"), port: 80, listeners: [
                ListenerRouteTable(name: "http", hostname: "*.example.com", protocol: .http, rules: [
                    Self.entry("a", hostnames: ["a.example.com"], backends: [backend("svc-a", a)]),
                    Self.entry("b", hostnames: ["b.example.com"], backends: [backend("svc-b", b)]),
                ]),
            ])
            proxy.routes.swap(GatewayRouteTableRouter(tables: [port: table]))
            let client = try await RawClient(port: port, group: group)
            try await client.send("GET /x HTTP/1.1\r\nHost: a.example.com\r\n\r\nGET /y HTTP/1.1\r\nHost: b.example.com:80\r\n\r\n"
                + "GET /z HTTP/1.1\r\nHost: c.example.com\r\n\r\n")
            let responses = await client.responses(3)
            #expect(responses.map(\.status) == [200, 200, 404])
            #expect(responses.prefix(2).map(\.body) == ["A GET /x", "B GET /y"])
            #expect(proxy.metrics.count(route: "default/a/rule0", status: 200) == 1)
            await client.close()
        } catch {
            Issue.record("unexpected error: \(error)")
        }
        await proxy.shutdown()
        await a.close()
        await b.close()
        try await group.shutdownGracefully()
    }
}
