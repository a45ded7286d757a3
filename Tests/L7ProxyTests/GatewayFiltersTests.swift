import GatewayCore
import KubeModels
import LoadBalancer
import NIOHTTP1
import Testing
@testable import L7Proxy

/// A filter as the builder lowers it (the proxy only ever sees lowered filters).
private func lowered(_ filter: HTTPRouteFilter, at place: RouteFilter.Place = .rule, prefix: String? = "/") throws -> RouteFilter {
    try RouteFilter.lower(filter, at: place, matchedPrefix: prefix).get()
}

@Suite struct GatewayFiltersTests {
    @Test func headerModifiersAccumulateInOrder() throws {
        var forward = ForwardDecision(backends: [], route: RouteLabel("ns/r/rule0"))
        let redirect = RuleFilters.apply([
            try lowered(HTTPRouteFilter(type: "RequestHeaderModifier", requestHeaderModifier: HTTPHeaderFilter(set: [HTTPHeader(name: "x-a", value: "1")], remove: ["x-b"]))),
            try lowered(HTTPRouteFilter(type: "ResponseHeaderModifier", responseHeaderModifier: HTTPHeaderFilter(add: [HTTPHeader(name: "x-r", value: "2")]))),
        ], to: &forward)
        #expect(redirect == nil)
        var headers: HTTPHeaders = ["x-b": "gone", "x-a": "old"]
        forward.requestHeaders.apply(to: &headers)
        #expect(headers["x-a"] == ["1"])
        #expect(!headers.contains(name: "x-b"))
        #expect(forward.responseHeaders == HeaderModifier(add: [HeaderField("x-r", "2")]))
    }

    @Test func urlRewriteUsesTheMatchedPrefix() throws {
        var forward = ForwardDecision(backends: [])
        _ = RuleFilters.apply([
            try lowered(HTTPRouteFilter(type: "URLRewrite", urlRewrite: HTTPURLRewriteFilter(
                hostname: "internal.example", path: HTTPPathModifier(type: "ReplacePrefixMatch", replacePrefixMatch: "/v2"))), prefix: "/api"),
        ], to: &forward)
        #expect(forward.rewrite == URLRewrite(hostname: "internal.example", path: .replacePrefixMatch(matchedPrefix: "/api", replacement: "/v2")))
        #expect(forward.rewrite?.path?.apply(to: "/api/users") == "/v2/users")
    }

    @Test func requestRedirectWinsWithDefaults() throws {
        var forward = ForwardDecision(backends: [], route: RouteLabel("ns/r/rule1"))
        let redirect = RuleFilters.apply([
            try lowered(HTTPRouteFilter(type: "RequestRedirect", requestRedirect: HTTPRequestRedirectFilter(scheme: "https"))),
        ], to: &forward)
        #expect(redirect == RedirectDecision(scheme: "https", statusCode: 302, route: RouteLabel("ns/r/rule1")))
        #expect(redirect?.location(requestScheme: "http", requestHost: "a.example.com", path: "/p", query: nil) == "https://a.example.com/p")
    }

    /// A backendRef's header modifiers go with that backend only, after the rule's.
    @Test func backendFiltersTravelWithTheirBackend() throws {
        let table = PortRouteTable(gateway: NamespacedName(namespace: "ns", name: "gw"), port: 80, listeners: [
            ListenerRouteTable(name: "http", hostname: nil, protocol: .http, rules: [
                RouteTableEntry(
                    route: NamespacedName(namespace: "ns", name: "r"), rule: 0, match: 0, hostnames: [], matchSpec: RouteMatchSpec(),
                    filters: [try lowered(HTTPRouteFilter(type: "RequestHeaderModifier", requestHeaderModifier: HTTPHeaderFilter(set: [HTTPHeader(name: "x-rule", value: "r")])))],
                    backends: [
                        Self.backend("one", "10.0.0.1", filters: [
                            try lowered(HTTPRouteFilter(type: "RequestHeaderModifier", requestHeaderModifier: HTTPHeaderFilter(set: [HTTPHeader(name: "x-backend", value: "one")], remove: ["x-rule"])), at: .backendRef),
                            try lowered(HTTPRouteFilter(type: "ResponseHeaderModifier", responseHeaderModifier: HTTPHeaderFilter(add: [HTTPHeader(name: "x-served-by", value: "one")])), at: .backendRef),
                        ]),
                        Self.backend("two", "10.0.0.2", filters: []),
                    ]),
            ]),
        ])
        let router = GatewayRouteTableRouter(tables: [10080: table])
        guard case .forward(let forward) = router.route(RoutingRequest(proxyPort: 10080, host: "h", path: "/", method: "GET")) else {
            Issue.record("expected forward")
            return
        }
        // The rule's filters stay on the decision; each backend carries its own.
        #expect(forward.requestHeaders == HeaderModifier(set: [HeaderField("x-rule", "r")]))
        #expect(forward.backends[0].requestHeaders == HeaderModifier(set: [HeaderField("x-backend", "one")], remove: ["x-rule"]))
        #expect(forward.backends[0].responseHeaders == HeaderModifier(add: [HeaderField("x-served-by", "one")]))
        #expect(forward.backends[1].requestHeaders.isEmpty && forward.backends[1].responseHeaders.isEmpty)
        // The pick says which backend was chosen (its filters then apply).
        #expect(BackendChoice.pick(from: forward.backends, random: { _ in 0 }).backend == 0)
        #expect(BackendChoice.pick(from: forward.backends, random: { n in n == 2 ? 1 : 0 }).backend == 1)
        #expect(BackendChoice.pick(from: [], random: { _ in 0 }).backend == nil)
    }

    static func backend(_ name: String, _ address: String, filters: [RouteFilter]) -> GatewayCore.WeightedBackend {
        GatewayCore.WeightedBackend(weight: 1, reference: NamespacedName(namespace: "ns", name: name), port: 80,
                                     endpoints: [GatewayCore.BackendEndpoint(address: address, port: 8080)], filters: filters)
    }
}
