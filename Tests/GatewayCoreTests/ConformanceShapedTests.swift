import GatewayCore
import KubeModels
import Testing
@testable import GatewayCore
import LoadBalancer
import Views

// Fixtures shaped like the Gateway API conformance tests (v1.2), written from their facts.

private func gateway(_ name: String, namespace: String = GW.infra, listeners: String) -> String {
    """
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: \(name), namespace: \(namespace), generation: 1}
    spec:
      gatewayClassName: portway
      listeners:
    \(listeners)

    """
}

/// The conformance suite's `same-namespace` Gateway: one HTTP listener on 80, routes from its namespace.
private let sameNamespace = gateway("same-namespace", listeners: "  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}")

private func route(_ name: String, namespace: String = GW.infra, parents: String = "[{name: same-namespace}]", hostnames: String = "[]", created: String = "2026-01-01T00:00:00Z", rules: String) -> String {
    """
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: \(name), namespace: \(namespace), generation: 2, creationTimestamp: "\(created)"}
    spec:
      parentRefs: \(parents)
      hostnames: \(hostnames)
      rules:
    \(rules)

    """
}

private func rule(_ matches: String, _ backend: String = "infra-backend-v1", extra: String = "") -> String {
    "  - matches: \(matches)\n    backendRefs: [{name: \(backend), port: 8080}]\(extra)"
}

@Suite struct GatewayConformanceShapedTests {
    @Test func hostnameIntersection() throws {
        let yaml = gateway("httproute-hostname-intersection", listeners: """
          - {name: listener-1, port: 80, protocol: HTTP, hostname: very.specific.com, allowedRoutes: {namespaces: {from: Same}}}
          - {name: listener-2, port: 80, protocol: HTTP, hostname: "*.wildcard.io", allowedRoutes: {namespaces: {from: Same}}}
          - {name: listener-3, port: 80, protocol: HTTP, hostname: "*.anotherwildcard.io", allowedRoutes: {namespaces: {from: Same}}}
        """)
            + route("specific-host-matches-listener-specific-host", parents: "[{name: httproute-hostname-intersection}]",
                    hostnames: "[non.matching.com, '*.nonmatchingwildcard.io', very.specific.com]", rules: rule("[{path: {type: PathPrefix, value: /s1}}]"))
            + route("specific-host-matches-listener-wildcard-host", parents: "[{name: httproute-hostname-intersection}]",
                    hostnames: "[non.matching.com, wildcard.io, foo.wildcard.io, bar.wildcard.io, '*.anotherwildcard.io']", rules: rule("[{path: {type: PathPrefix, value: /s2}}]", "infra-backend-v2"))
            + route("wildcard-host-matches-listener-specific-host", parents: "[{name: httproute-hostname-intersection}]",
                    hostnames: "[non.matching.com, '*.specific.com']", rules: rule("[{path: {type: PathPrefix, value: /s3}}]", "infra-backend-v3"))
            + route("wildcard-host-matches-listener-wildcard-host", parents: "[{name: httproute-hostname-intersection}]",
                    hostnames: "['*.anotherwildcard.io']", rules: rule("[{path: {type: PathPrefix, value: /s4}}]"))
            + route("no-intersecting-hosts", parents: "[{name: httproute-hostname-intersection}]",
                    hostnames: "[specific.but.wrong.com, wildcard.io]", rules: rule("[{path: {type: PathPrefix, value: /s5}}]"))
        let state = try GW.build(yaml)
        let gw = "httproute-hostname-intersection"
        let cases: [(String, String, String)] = [
            ("very.specific.com", "/s1", "specific-host-matches-listener-specific-host/0 → infra-backend-v1"),
            ("non.matching.com", "/s1", "404"),
            ("foo.nonmatchingwildcard.io", "/s1", "404"),
            ("foo.wildcard.io", "/s2", "specific-host-matches-listener-wildcard-host/0 → infra-backend-v2"),
            ("bar.wildcard.io", "/s2", "specific-host-matches-listener-wildcard-host/0 → infra-backend-v2"),
            ("foo.bar.wildcard.io", "/s2", "404"),
            ("wildcard.io", "/s2", "404"),
            ("foo.anotherwildcard.io", "/s2", "specific-host-matches-listener-wildcard-host/0 → infra-backend-v2"),
            ("very.specific.com", "/s3", "wildcard-host-matches-listener-specific-host/0 → infra-backend-v3"),
            ("anotherinstance.specific.com", "/s3", "404"),
            ("foo.anotherwildcard.io", "/s4", "wildcard-host-matches-listener-wildcard-host/0 → infra-backend-v1"),
            ("anotherwildcard.io", "/s4", "404"),
            ("specific.but.wrong.com", "/s5", "404"),
            ("wildcard.io", "/s5", "404"),
        ]
        for (host, path, expected) in cases {
            #expect(state.route(gw, host: host, path: path) == expected, "\(host)\(path)")
        }
        #expect(state.routeConditions("no-intersecting-hosts") == ["Accepted=False/NoMatchingListenerHostname", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.routeConditions("wildcard-host-matches-listener-specific-host") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.listenerConditions(gw, listener: "listener-1").last == "attachedRoutes=2")
        #expect(state.listenerConditions(gw, listener: "listener-2").last == "attachedRoutes=1")
        #expect(state.listenerConditions(gw, listener: "listener-3").last == "attachedRoutes=2")
    }

    @Test func listenerHostnameMatching() throws {
        let yaml = gateway("httproute-listener-hostname-matching", listeners: """
          - {name: listener-1, port: 80, protocol: HTTP, hostname: bar.com, allowedRoutes: {namespaces: {from: Same}}}
          - {name: listener-2, port: 80, protocol: HTTP, hostname: foo.bar.com, allowedRoutes: {namespaces: {from: Same}}}
          - {name: listener-3, port: 80, protocol: HTTP, hostname: "*.bar.com", allowedRoutes: {namespaces: {from: Same}}}
          - {name: listener-4, port: 80, protocol: HTTP, hostname: "*.foo.com", allowedRoutes: {namespaces: {from: Same}}}
        """)
            + route("backend-v1", parents: "[{name: httproute-listener-hostname-matching, sectionName: listener-1}]", rules: rule("[]"))
            + route("backend-v2", parents: "[{name: httproute-listener-hostname-matching, sectionName: listener-2}]", rules: rule("[]", "infra-backend-v2"))
            + route("backend-v3", parents: "[{name: httproute-listener-hostname-matching, sectionName: listener-3}, {name: httproute-listener-hostname-matching, sectionName: listener-4}]",
                    rules: rule("[]", "infra-backend-v3"))
        let state = try GW.build(yaml)
        let gw = "httproute-listener-hostname-matching"
        #expect(state.route(gw, host: "bar.com") == "backend-v1/0 → infra-backend-v1")
        #expect(state.route(gw, host: "foo.bar.com") == "backend-v2/0 → infra-backend-v2")
        #expect(state.route(gw, host: "baz.bar.com") == "backend-v3/0 → infra-backend-v3")
        #expect(state.route(gw, host: "boo.bar.com") == "backend-v3/0 → infra-backend-v3")
        #expect(state.route(gw, host: "multiple.prefixes.bar.com") == "backend-v3/0 → infra-backend-v3")
        #expect(state.route(gw, host: "multiple.prefixes.foo.com") == "backend-v3/0 → infra-backend-v3")
        #expect(state.route(gw, host: "foo.com") == "404")
        #expect(state.route(gw, host: "no.matching.host") == "404")
        // The route with two parentRefs has two status entries, both accepted.
        #expect(state.routeConditions("backend-v3", parent: 1) == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        // Most specific listener first: exact names (longer first), then wildcards.
        #expect(state.table(gateway: NamespacedName(namespace: GW.infra, name: gw), port: 80)?.listeners.map(\.name) == ["listener-2", "listener-1", "listener-3", "listener-4"])
    }

    @Test func listenerIsolation() throws {
        // Each request is served by the most specific listener for its host only: a route on a
        // less specific listener never takes it, even when its path matches.
        let names = ["empty-hostname", "wildcard-example-com", "wildcard-foo-example-com", "abc-foo-example-com"]
        let yaml = gateway("http-listener-isolation", listeners: """
          - {name: empty-hostname, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
          - {name: wildcard-example-com, port: 80, protocol: HTTP, hostname: "*.example.com", allowedRoutes: {namespaces: {from: All}}}
          - {name: wildcard-foo-example-com, port: 80, protocol: HTTP, hostname: "*.foo.example.com", allowedRoutes: {namespaces: {from: All}}}
          - {name: abc-foo-example-com, port: 80, protocol: HTTP, hostname: abc.foo.example.com, allowedRoutes: {namespaces: {from: All}}}
        """) + names.map { name in
            route("attaches-to-\(name)", parents: "[{name: http-listener-isolation, sectionName: \(name)}]", rules: rule("[{path: {type: PathPrefix, value: /\(name)}}]"))
        }.joined()
        let state = try GW.build(yaml)
        let hosts = ["bar.com": "empty-hostname", "bar.example.com": "wildcard-example-com", "bar.foo.example.com": "wildcard-foo-example-com", "abc.foo.example.com": "abc-foo-example-com"]
        for (host, served) in hosts {
            for name in names {
                let expected = name == served ? "attaches-to-\(name)/0 → infra-backend-v1" : "404"
                #expect(state.route("http-listener-isolation", host: host, path: "/\(name)") == expected, "\(host)/\(name)")
            }
        }
    }

    @Test func matchingAcrossRoutes() throws {
        let yaml = sameNamespace
            + route("matching-part1", hostnames: "[example.com, example.net]", rules: [
                rule("[{path: {type: PathPrefix, value: /}}]"),
                rule("[{path: {type: PathPrefix, value: /v2}}]", "infra-backend-v2"),
            ].joined(separator: "\n"))
            + route("matching-part2", hostnames: "[example.com]", rules: [
                rule("[{path: {type: PathPrefix, value: /}, headers: [{name: version, value: two}]}]", "infra-backend-v2"),
                rule("[{path: {type: PathPrefix, value: /v2}, headers: [{name: version, value: two}]}]", "infra-backend-v3"),
            ].joined(separator: "\n"))
        let state = try GW.build(yaml)
        #expect(state.route("same-namespace", host: "example.com", path: "/") == "matching-part1/0 → infra-backend-v1")
        #expect(state.route("same-namespace", host: "example.net", path: "/example") == "matching-part1/0 → infra-backend-v1")
        #expect(state.route("same-namespace", host: "example.com", path: "/v2") == "matching-part1/1 → infra-backend-v2")
        #expect(state.route("same-namespace", host: "example.net", path: "/v2/example") == "matching-part1/1 → infra-backend-v2")
        #expect(state.route("same-namespace", host: "example.com", path: "/", headers: [("Version", "two")]) == "matching-part2/0 → infra-backend-v2")
        #expect(state.route("same-namespace", host: "example.com", path: "/v2", headers: [("Version", "two")]) == "matching-part2/1 → infra-backend-v3")
        // The header rule is on example.com only.
        #expect(state.route("same-namespace", host: "example.net", path: "/v2", headers: [("Version", "two")]) == "matching-part1/1 → infra-backend-v2")
        #expect(state.route("same-namespace", host: "example.org", path: "/") == "404")
    }

    @Test func pathMatchOrder() throws {
        let yaml = sameNamespace + route("path-matching-order", rules: [
            rule("[{path: {type: PathPrefix, value: /match}}]", "infra-backend-v1"),
            rule("[{path: {type: PathPrefix, value: /match/exact}}]", "infra-backend-v2"),
            rule("[{path: {type: Exact, value: /match/exact/one}}]", "infra-backend-v3"),
            rule("[{path: {type: PathPrefix, value: /match/prefix/one}}]", "infra-backend-v1"),
            rule("[{path: {type: PathPrefix, value: /match/prefix}}]", "infra-backend-v2"),
            rule("[{path: {type: RegularExpression, value: '/match/[0-9]+'}}]", "infra-backend-v3"),
        ].joined(separator: "\n"))
        let state = try GW.build(yaml)
        let cases: [(String, String)] = [
            ("/match", "path-matching-order/0 → infra-backend-v1"),
            ("/match/exact", "path-matching-order/1 → infra-backend-v2"),
            ("/match/exact/one", "path-matching-order/2 → infra-backend-v3"),
            ("/match/exact/one/two", "path-matching-order/1 → infra-backend-v2"),
            ("/match/prefix/one/two", "path-matching-order/3 → infra-backend-v1"),
            ("/match/prefix/oneplus", "path-matching-order/4 → infra-backend-v2"),
            ("/match/123", "path-matching-order/5 → infra-backend-v3"),
            ("/match/123/x", "path-matching-order/0 → infra-backend-v1"),
            ("/matchx", "404"),
        ]
        for (path, expected) in cases {
            #expect(state.route("same-namespace", host: "any.example", path: path) == expected, "\(path)")
        }
    }

    @Test func headerMatching() throws {
        let yaml = sameNamespace + route("header-matching", rules: [
            rule("[{headers: [{name: version, value: one}]}]", "infra-backend-v1"),
            rule("[{headers: [{name: version, value: two}]}]", "infra-backend-v2"),
            rule("[{headers: [{name: version, value: two}, {name: color, value: orange}]}]", "infra-backend-v1"),
            rule("[{headers: [{name: color, value: blue}]}, {headers: [{name: color, value: green}]}]", "infra-backend-v1"),
            rule("[{headers: [{name: color, value: red}]}, {headers: [{name: color, value: yellow}]}]", "infra-backend-v2"),
            rule("[{headers: [{name: x-id, type: RegularExpression, value: '^[0-9]+$'}]}]", "infra-backend-v3"),
        ].joined(separator: "\n"))
        let state = try GW.build(yaml)
        let cases: [([(String, String)], String)] = [
            ([("version", "one")], "header-matching/0 → infra-backend-v1"),
            ([("VERSION", "one")], "header-matching/0 → infra-backend-v1"),  // names are case-insensitive
            ([("version", "ONE")], "404"),  // values are not
            ([("version", "two")], "header-matching/1 → infra-backend-v2"),
            ([("version", "two"), ("color", "orange")], "header-matching/2 → infra-backend-v1"),  // more headers win
            ([("version", "two"), ("color", "blue")], "header-matching/1 → infra-backend-v2"),  // same count: rule order
            ([("color", "blue")], "header-matching/3 → infra-backend-v1"),
            ([("color", "green")], "header-matching/3 → infra-backend-v1"),
            ([("color", "red")], "header-matching/4 → infra-backend-v2"),
            ([("color", "yellow")], "header-matching/4 → infra-backend-v2"),
            ([("x-id", "1234")], "header-matching/5 → infra-backend-v3"),
            ([("x-id", "12a")], "404"),
            ([], "404"),
        ]
        for (headers, expected) in cases {
            #expect(state.route("same-namespace", host: "h", headers: headers) == expected, "\(headers)")
        }
    }

    @Test func queryParamMatching() throws {
        let yaml = sameNamespace + route("query-param-matching", rules: [
            rule("[{queryParams: [{name: animal, value: whale}]}]", "infra-backend-v1"),
            rule("[{queryParams: [{name: animal, value: dolphin}]}]", "infra-backend-v2"),
            rule("[{queryParams: [{name: animal, value: dolphin}, {name: color, value: blue}]}]", "infra-backend-v3"),
            rule("[{queryParams: [{name: ANIMAL, value: Whale}]}]", "infra-backend-v3"),
        ].joined(separator: "\n"))
        let state = try GW.build(yaml)
        let cases: [(String, String)] = [
            ("/?animal=whale", "query-param-matching/0 → infra-backend-v1"),
            ("/?animal=dolphin", "query-param-matching/1 → infra-backend-v2"),
            ("/?animal=dolphin&color=blue", "query-param-matching/2 → infra-backend-v3"),
            ("/?color=blue&animal=dolphin", "query-param-matching/2 → infra-backend-v3"),
            ("/?ANIMAL=Whale", "query-param-matching/3 → infra-backend-v3"),  // names are case-sensitive
            ("/?animal=Whale", "404"),
            ("/?animal=d%6flphin", "query-param-matching/1 → infra-backend-v2"),  // percent-decoded
            ("/", "404"),
        ]
        for (path, expected) in cases {
            #expect(state.route("same-namespace", host: "h", path: path) == expected, "\(path)")
        }
    }

    @Test func methodMatching() throws {
        let yaml = sameNamespace + route("method-matching", rules: [
            rule("[{method: POST}]", "infra-backend-v1"),
            rule("[{method: GET}]", "infra-backend-v2"),
            rule("[{path: {type: PathPrefix, value: /path1}, method: GET}]", "infra-backend-v1"),
            rule("[{path: {type: PathPrefix, value: /path1}, headers: [{name: version, value: one}]}]", "infra-backend-v3"),
            rule("[{path: {type: PathPrefix, value: /path2}}]", "infra-backend-v3"),
            rule("[{path: {type: PathPrefix, value: /path2}, method: POST}]", "infra-backend-v1"),
        ].joined(separator: "\n"))
        let state = try GW.build(yaml)
        #expect(state.route("same-namespace", host: "h", method: "POST") == "method-matching/0 → infra-backend-v1")
        #expect(state.route("same-namespace", host: "h", method: "GET") == "method-matching/1 → infra-backend-v2")
        #expect(state.route("same-namespace", host: "h", method: "HEAD") == "404")
        // Path before method, method before headers.
        #expect(state.route("same-namespace", host: "h", path: "/path1", method: "GET", headers: [("version", "one")]) == "method-matching/2 → infra-backend-v1")
        #expect(state.route("same-namespace", host: "h", path: "/path1", method: "POST", headers: [("version", "one")]) == "method-matching/3 → infra-backend-v3")
        #expect(state.route("same-namespace", host: "h", path: "/path2", method: "POST") == "method-matching/5 → infra-backend-v1")
        #expect(state.route("same-namespace", host: "h", path: "/path2", method: "DELETE") == "method-matching/4 → infra-backend-v3")
    }

    @Test func crossNamespaceRouteWithSelector() throws {
        let yaml = gateway("backend-namespaces", listeners: """
          - name: http
            port: 80
            protocol: HTTP
            allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {gateway-conformance: web-backend}}}}
        """)
            + GW.backend("web-backend", namespace: GW.web, subnet: 9)
            + route("cross-namespace", namespace: GW.web, parents: "[{name: backend-namespaces, namespace: \(GW.infra)}]", rules: rule("[]", "web-backend"))
            + route("wrong-namespace", namespace: GW.app, parents: "[{name: backend-namespaces, namespace: \(GW.infra)}]", rules: rule("[]", "app-backend-v1"))
        let state = try GW.build(yaml)
        #expect(state.route("backend-namespaces", host: "h") == "gateway-conformance-web-backend/cross-namespace/0 → web-backend")
        #expect(state.routeConditions("cross-namespace", namespace: GW.web) == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.routeConditions("wrong-namespace", namespace: GW.app) == ["Accepted=False/NotAllowedByListeners", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.listenerConditions("backend-namespaces", listener: "http").last == "attachedRoutes=1")
    }

    @Test func referenceGrantPermitsCrossNamespaceBackends() throws {
        let grant = """
        ---
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: reference-grant, namespace: \(GW.app)}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: \(GW.infra)}]
          to: [{group: "", kind: Service, name: app-backend-v1}]

        """
        let crossRoute = route("reference-grant", rules: "  - backendRefs: [{name: app-backend-v1, namespace: \(GW.app), port: 8080}]")
        let granted = try GW.build(sameNamespace + grant + crossRoute)
        #expect(granted.route("same-namespace", host: "h") == "reference-grant/0 → app-backend-v1")
        #expect(granted.routeConditions("reference-grant") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])

        let denied = try GW.build(sameNamespace + crossRoute)
        #expect(denied.route("same-namespace", host: "h") == "reference-grant/0 → 500 RefNotPermitted")
        #expect(denied.routeConditions("reference-grant") == ["Accepted=True/Accepted", "ResolvedRefs=False/RefNotPermitted"])

        // A grant for another Service name, or from another kind, does not count.
        let otherName = grant.replacing("name: app-backend-v1}", with: "name: app-backend-v2}")
        #expect(try GW.build(sameNamespace + otherName + crossRoute).route("same-namespace", host: "h") == "reference-grant/0 → 500 RefNotPermitted")
        let otherKind = grant.replacing("kind: HTTPRoute", with: "kind: GRPCRoute")
        #expect(try GW.build(sameNamespace + otherKind + crossRoute).route("same-namespace", host: "h") == "reference-grant/0 → 500 RefNotPermitted")
    }

    /// GEP-1911: a backend port whose `appProtocol` the proxy cannot speak (HTTP/2 in clear text,
    /// TLS) is an unresolved reference, not a backend sent HTTP/1.1; WebSocket and other values are served.
    @Test func backendAppProtocolsTheProxyCannotSpeakAreUnsupportedProtocol() throws {
        let service = """
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: proto-backend, namespace: \(GW.infra)}
        spec:
          clusterIP: 10.96.30.1
          ports:
          - {name: h2c, port: 8081, targetPort: 3000, appProtocol: kubernetes.io/h2c}
          - {name: ws, port: 8082, targetPort: 3000, appProtocol: kubernetes.io/ws}
          - {name: wss, port: 8083, targetPort: 3000, appProtocol: kubernetes.io/wss}
          - {name: plain, port: 8084, targetPort: 3000, appProtocol: http}
          - {name: none, port: 8085, targetPort: 3000}

        """
        func ref(_ name: String, _ port: Int, _ host: String) -> String {
            route(name, hostnames: "[\(host)]", rules: "  - backendRefs: [{name: proto-backend, port: \(port)}]")
        }
        let state = try GW.build(sameNamespace + service + ref("h2c", 8081, "a.example") + ref("ws", 8082, "b.example")
            + ref("wss", 8083, "c.example") + ref("plain", 8084, "d.example") + ref("none", 8085, "e.example"))
        for name in ["h2c", "wss"] {
            #expect(state.routeConditions(name) == ["Accepted=True/Accepted", "ResolvedRefs=False/UnsupportedProtocol"], "\(name)")
        }
        #expect(state.route("same-namespace", host: "a.example") == "h2c/0 → 500 UnsupportedProtocol")
        for name in ["ws", "plain", "none"] {
            #expect(state.routeConditions(name) == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"], "\(name)")
        }
    }

    @Test func invalidReferencesAndTheirReasons() throws {
        let yaml = sameNamespace
            + route("nonexistent-backend", hostnames: "[a.example]", rules: "  - backendRefs: [{name: nonexistent, port: 8080}]")
            + route("unknown-kind", hostnames: "[b.example]", rules: "  - backendRefs: [{group: unknown.example.com, kind: Unknown, name: infra-backend-v1, port: 8080}]")
            + route("wrong-port", hostnames: "[c.example]", rules: "  - backendRefs: [{name: infra-backend-v1, port: 9999}]")
            + route("not-matching-section", parents: "[{name: same-namespace, sectionName: nope}]", hostnames: "[d.example]", rules: rule("[]"))
            + route("not-matching-port", parents: "[{name: same-namespace, port: 81}]", hostnames: "[e.example]", rules: rule("[]"))
            + route("partially-invalid", hostnames: "[f.example]", rules: """
              - backendRefs: [{name: infra-backend-v1, port: 8080, weight: 1}, {name: nonexistent, port: 8080, weight: 1}]
            """)
            + route("unsupported-filter", hostnames: "[g.example]", rules: rule("[]", extra: "\n    filters: [{type: RequestMirror}]"))
            + route("bad-regex", hostnames: "[h.example]", rules: rule("[{path: {type: RegularExpression, value: '(unclosed'}}]"))
            + route("backend-mirror", hostnames: "[l.example]", rules: "  - backendRefs: [{name: infra-backend-v1, port: 8080, filters: [{type: RequestMirror}]}]")
            + route("backend-headers", hostnames: "[m.example]", rules: """
              - backendRefs: [{name: infra-backend-v1, port: 8080, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-b, value: v1}]}}]}]
            """)
            + route("not-portway", parents: "[{name: someone-elses}]", hostnames: "[i.example]", rules: rule("[]"))
            + route("zero-weights", hostnames: "[j.example]", rules: "  - backendRefs: [{name: infra-backend-v1, port: 8080, weight: 0}]")
            + GW.backend("empty", subnet: 20, ready: 0)
            + route("no-endpoints", hostnames: "[k.example]", rules: rule("[]", "empty"))
            + gateway("someone-elses", listeners: "  - {name: http, port: 80, protocol: HTTP}").replacing("gatewayClassName: portway", with: "gatewayClassName: other")
        let state = try GW.build(yaml)
        #expect(state.routeConditions("nonexistent-backend") == ["Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound"])
        #expect(state.route("same-namespace", host: "a.example") == "nonexistent-backend/0 → 500 BackendNotFound")
        #expect(state.routeConditions("unknown-kind") == ["Accepted=True/Accepted", "ResolvedRefs=False/InvalidKind"])
        #expect(state.route("same-namespace", host: "b.example") == "unknown-kind/0 → 500 InvalidKind")
        #expect(state.routeConditions("wrong-port") == ["Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound"])
        #expect(state.routeConditions("not-matching-section") == ["Accepted=False/NoMatchingParent", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.route("same-namespace", host: "d.example") == "404")
        #expect(state.routeConditions("not-matching-port") == ["Accepted=False/NoMatchingParent", "ResolvedRefs=True/ResolvedRefs"])
        // Half the weight resolves: the request is served (the other half would get 500).
        #expect(state.route("same-namespace", host: "f.example") == "partially-invalid/0 → infra-backend-v1")
        let partial = try #require(state.table(gateway: NamespacedName(namespace: GW.infra, name: "same-namespace"), port: 80)?.listeners[0].rules.first { $0.route.name == "partially-invalid" })
        #expect(partial.backends.map(\.failureCode) == [nil, 500])
        #expect(partial.backends.map(\.weight) == [1, 1])
        #expect(state.routeConditions("partially-invalid") == ["Accepted=True/Accepted", "ResolvedRefs=False/BackendNotFound"])
        #expect(state.routeConditions("unsupported-filter") == ["Accepted=False/UnsupportedValue", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.route("same-namespace", host: "g.example") == "404")
        #expect(state.routeConditions("bad-regex") == ["Accepted=False/UnsupportedValue", "ResolvedRefs=True/ResolvedRefs"])
        // A backendRef takes only the header modifiers; they travel with the backend to the proxy.
        #expect(state.routeConditions("backend-mirror") == ["Accepted=False/UnsupportedValue", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.routeConditions("backend-headers") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        let withFilters = try #require(state.table(gateway: NamespacedName(namespace: GW.infra, name: "same-namespace"), port: 80)?
            .listeners[0].rules.first { $0.route.name == "backend-headers" })
        #expect(withFilters.backends.first?.filters.map(\.typeName) == ["RequestHeaderModifier"])
        // Another controller's Gateway gets no status entry from Portway.
        #expect(state.routeConditions("not-portway") == ["no status"])
        #expect(state.foreignGateways[NamespacedName(namespace: GW.infra, name: "someone-elses")] == "example.org/other-controller")
        #expect(state.route("same-namespace", host: "j.example") == "zero-weights/0 → 500 ")
        #expect(state.route("same-namespace", host: "k.example") == "no-endpoints/0 → 503")
    }
}

@Suite struct GatewayRulePrecedenceAndFilterTests {
    @Test func tiesGoToTheOldestRouteThenNamespaceAndName() throws {
        let same = "[{path: {type: PathPrefix, value: /x}}]"
        let yaml = sameNamespace
            + route("b-newer", created: "2026-02-01T00:00:00Z", rules: rule(same, "infra-backend-v1"))
            + route("c-older", created: "2026-01-01T00:00:00Z", rules: rule(same, "infra-backend-v2"))
            + route("a-older", created: "2026-01-01T00:00:00Z", rules: rule(same, "infra-backend-v3"))
        let state = try GW.build(yaml)
        #expect(state.route("same-namespace", host: "h", path: "/x") == "a-older/0 → infra-backend-v3")
        let table = try #require(state.table(gateway: NamespacedName(namespace: GW.infra, name: "same-namespace"), port: 80))
        #expect(table.listeners[0].rules.map(\.route.name) == ["a-older", "c-older", "b-newer"])
        let decision = RouteMatcher.decide(table, request: RouteRequest(host: "h", path: "/x"))
        #expect(decision.candidates.map(\.reason) == [
            "matches; highest precedence",
            "matches, but loses to gateway-conformance-infra/a-older rule 0: same age: gateway-conformance-infra/a-older comes first by namespace/name",
            "matches, but loses to gateway-conformance-infra/a-older rule 0: route gateway-conformance-infra/a-older is older (created 2026-01-01T00:00:00Z, the other 2026-02-01T00:00:00Z)",
        ])
    }

    @Test func weightsSplitTrafficAndZeroMeansNone() throws {
        let yaml = sameNamespace + route("weighted", rules: """
          - backendRefs:
            - {name: infra-backend-v1, port: 8080, weight: 3}
            - {name: infra-backend-v2, port: 8080, weight: 0}
            - {name: infra-backend-v3, port: 8080, weight: 1}
        """)
        let state = try GW.build(yaml)
        let entry = try #require(state.tables.first?.listeners.first?.rules.first)
        // The weights as written; the proxy's picker splits by them (GatewayRouteTableRouterTests).
        #expect(entry.backends.map(\.weight) == [3, 0, 1])
        #expect(entry.backends.map(\.endpoints) == [
            [BackendEndpoint(address: "10.1.1.1", port: 3000)], [BackendEndpoint(address: "10.1.2.1", port: 3000)], [BackendEndpoint(address: "10.1.3.1", port: 3000)],
        ])
    }

    @Test func terminatingEndpointsOnlyWhenNoneIsReady() throws {
        let yaml = sameNamespace
            + GW.backend("mixed", subnet: 30, ready: 1, terminating: 1) + GW.backend("draining", subnet: 31, ready: 0, terminating: 2)
            + route("r", rules: "  - backendRefs: [{name: mixed, port: 8080}, {name: draining, port: 8080}]")
        let entry = try #require(try GW.build(yaml).tables.first?.listeners.first?.rules.first)
        #expect(entry.backends[0].endpoints == [BackendEndpoint(address: "10.1.30.1", port: 3000)])
        #expect(entry.backends[1].endpoints == [
            BackendEndpoint(address: "10.1.31.100", port: 3000, terminating: true), BackendEndpoint(address: "10.1.31.101", port: 3000, terminating: true),
        ])
    }

    @Test func filtersAreCarriedAndRedirectsAnswerWithTheirCode() throws {
        let yaml = sameNamespace + route("filters", rules: """
          - matches: [{path: {type: PathPrefix, value: /moved}}]
            filters: [{type: RequestRedirect, requestRedirect: {hostname: new.example, statusCode: 301}}]
          - matches: [{path: {type: PathPrefix, value: /found}}]
            filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
          - matches: [{path: {type: PathPrefix, value: /rewrite}}]
            filters:
            - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}
            - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: "1"}], remove: [x-b]}}
            - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-c, value: "2"}]}}
            backendRefs: [{name: infra-backend-v1, port: 8080}]
        """)
        let state = try GW.build(yaml)
        #expect(state.route("same-namespace", host: "h", path: "/moved/x") == "filters/0 → 301")
        #expect(state.route("same-namespace", host: "h", path: "/found") == "filters/1 → 302")
        #expect(state.route("same-namespace", host: "h", path: "/rewrite/a") == "filters/2 → infra-backend-v1")
        let rules = try #require(state.tables.first?.listeners.first?.rules)
        let rewrite = try #require(rules.first { $0.rule == 2 })
        #expect(rewrite.filters.map(\.typeName) == ["URLRewrite", "RequestHeaderModifier", "ResponseHeaderModifier"])
        #expect(rewrite.filters[0] == .urlRewrite(URLRewrite(path: .replacePrefixMatch(matchedPrefix: rewrite.matchSpec.path, replacement: "/v2"))))
        #expect(rewrite.filters[1] == .requestHeaderModifier(HeaderModifier(remove: ["x-b"])) || {
            if case .requestHeaderModifier(let m) = rewrite.filters[1] { return m.remove == ["x-b"] } else { return false }
        }())
        #expect(rules.first { $0.rule == 0 }?.redirect?.hostname == "new.example")
    }

    @Test func aRouteFromAnotherNamespaceIsNotAllowedBySame() throws {
        let yaml = sameNamespace + GW.backend("web-backend", namespace: GW.web, subnet: 9)
            + route("elsewhere", namespace: GW.web, parents: "[{name: same-namespace, namespace: \(GW.infra)}]", rules: rule("[]", "web-backend"))
        let state = try GW.build(yaml)
        #expect(state.routeConditions("elsewhere", namespace: GW.web) == ["Accepted=False/NotAllowedByListeners", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.route("same-namespace", host: "h") == "404")
    }
}

@Suite struct GatewayBadInputTests {
    @Test func objectsDefinedTwiceInFilesUseTheFirstWithAWarning() throws {
        let yaml = sameNamespace + sameNamespace.replacing("protocol: HTTP", with: "protocol: HTTPS")
            + route("twice", rules: rule("[]", "infra-backend-v1")) + route("twice", rules: rule("[]", "infra-backend-v2"))
        let state = try GW.build(yaml)
        #expect(state.warnings.map(\.description) == [
            "Gateway gateway-conformance-infra/same-namespace: defined more than once; the first definition is used",
            "HTTPRoute gateway-conformance-infra/twice: defined more than once; the first definition is used",
        ])
        #expect(state.tables.count == 1)
        #expect(state.route("same-namespace", host: "h") == "twice/0 → infra-backend-v1")
    }

    @Test func aGatewayWithAMissingClassIsAWarning() throws {
        let state = try GW.build(sameNamespace.replacing("gatewayClassName: portway", with: "gatewayClassName: nope"))
        #expect(state.tables.isEmpty)
        #expect(state.warnings.map(\.message) == ["GatewayClass \"nope\" does not exist; Gateway not served"])
        #expect(state.foreignGateways[NamespacedName(namespace: GW.infra, name: "same-namespace")] == "")
    }
}
