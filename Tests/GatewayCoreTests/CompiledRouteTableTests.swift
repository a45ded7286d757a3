import GatewayCore
import KubeModels
import Testing
@testable import GatewayCore
import LoadBalancer
import Views

/// Regular expressions are compiled once, with the table; matching never compiles.
@Suite struct CompiledRouteTableTests {
    static func entry(_ route: String, match: Int = 0, _ spec: RouteMatchSpec) -> RouteTableEntry {
        RouteTableEntry(
            route: NamespacedName(namespace: "default", name: route), rule: 0, match: match, hostnames: [], matchSpec: spec,
            backends: [WeightedBackend(weight: 1, reference: NamespacedName(namespace: "default", name: route), port: 80,
                                       endpoints: [BackendEndpoint(address: "10.0.0.1", port: 80)])])
    }

    static func table(_ entries: [RouteTableEntry]) -> PortRouteTable {
        PortRouteTable(gateway: NamespacedName(namespace: "default", name: "gw"), port: 80, listeners: [
            ListenerRouteTable(name: "http", hostname: nil, protocol: .http, rules: entries.sorted(by: RoutePrecedence.before)),
        ])
    }

    static let regexTable = table([
        entry("users", RouteMatchSpec(pathKind: .regularExpression, path: "/v[0-9]+/users")),
        entry("header", RouteMatchSpec(headers: [ValueMatch(kind: .regularExpression, name: "x-id", value: "^[0-9]+$")])),
        entry("query", RouteMatchSpec(queryParams: [ValueMatch(kind: .regularExpression, name: "lang", value: "^(en|de)$")])),
        entry("fallback", RouteMatchSpec(pathKind: .pathPrefix, path: "/")),
    ])

    @Test func everyPatternIsCompiledWhenTheTableIsBuilt() throws {
        let compiled = CompiledRouteTable(Self.regexTable)
        let byRoute = Dictionary(uniqueKeysWithValues: zip(Self.regexTable.listeners[0].rules.map(\.route.name), compiled.matches[0]))
        #expect(byRoute["users"]?.pathRegex != nil)
        #expect(byRoute["header"]?.headerRegexes.first.flatMap { $0 } != nil)
        #expect(byRoute["query"]?.queryRegexes.first.flatMap { $0 } != nil)
        #expect(byRoute["fallback"]?.pathRegex == nil)
        #expect(compiled.problems.isEmpty)
    }

    @Test(arguments: [
        ("/v12/users", [(String, String)](), "users"),
        ("/api/v12/users", [], "fallback"),  // a path pattern matches the whole path
        ("/x", [("X-Id", "123")], "header"),
        ("/x", [("x-id", "12a")], "fallback"),
        ("/x?lang=de", [], "query"),
        ("/x?lang=fr", [], "fallback"),
    ])
    func compiledMatchingChoosesLikeTheExplainingMatcher(path: String, headers: [(String, String)], expected: String) {
        let compiled = CompiledRouteTable(Self.regexTable)
        let request = RouteRequest(host: "h.example", path: path, headers: headers.map { HTTPHeader(name: $0.0, value: $0.1) })
        let fast = RouteMatcher.match(compiled, request: request)
        #expect(fast.entry?.route.name == expected)
        #expect(RouteMatcher.decide(compiled, request: request).entry == fast.entry)
        #expect(RouteMatcher.decide(Self.regexTable, request: request).entry == fast.entry)
    }

    /// The builder rejects bad patterns (the route gets a condition); a table made by hand may
    /// still carry one: it is reported once, when compiled, its match never applies, and the
    /// rest of the table keeps working.
    @Test func anInvalidPatternIsReportedAtBuildTimeAndNeverMatches() {
        let table = Self.table([
            Self.entry("bad-path", RouteMatchSpec(pathKind: .regularExpression, path: "/(unclosed")),
            Self.entry("bad-header", RouteMatchSpec(headers: [ValueMatch(kind: .regularExpression, name: "x", value: "[")])),
            Self.entry("good", RouteMatchSpec(pathKind: .pathPrefix, path: "/")),
        ])
        let compiled = CompiledRouteTable(table)
        let problems = compiled.problems.map(\.description).sorted()
        #expect(problems.count == 2)
        #expect(problems.first?.contains("HTTPRoute default/bad-header") == true)
        #expect(problems.first?.contains("\"[\"") == true)
        #expect(problems.last?.contains("\"/(unclosed\"") == true)
        let request = RouteRequest(host: "h", path: "/(unclosed", headers: [HTTPHeader(name: "x", value: "[")])
        #expect(RouteMatcher.match(compiled, request: request).entry?.route.name == "good")
        let decision = RouteMatcher.decide(compiled, request: request)
        #expect(decision.candidates.filter { $0.result == .lost }.map(\.route.name).sorted() == ["bad-header", "bad-path"])
    }
}

/// Gateway regular expressions are RE2 matched in linear time (`LinearRegex`): the builder, the
/// proxy's compiled tables and `explain` use the one engine.
@Suite struct GatewayRegexTests {
    static func route(_ name: String, host: String, match: String) -> String {
        """
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: \(name), namespace: \(GW.infra), generation: 1}
        spec:
          parentRefs: [{name: gw}]
          hostnames: [\(host)]
          rules:
          - matches: [\(match)]
            backendRefs: [{name: infra-backend-v1, port: 8080}]

        """
    }

    static let gateway = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: \(GW.infra), generation: 1}
        spec:
          gatewayClassName: portway
          listeners: [{name: http, port: 80, protocol: HTTP}]

        """

    /// Patterns RE2 cannot express are never evaluated: the route is not accepted, and the
    /// condition's message names the construct.
    @Test(arguments: [
        ("{path: {type: RegularExpression, value: '/(?=x)'}}", "path regular expression \"/(?=x)\" is rejected: lookahead (?= is not supported"),
        ("{headers: [{name: x-id, type: RegularExpression, value: '(a)\\1'}]}", "header x-id regular expression \"(a)\\1\" is rejected: backreference \\1 is not supported"),
        ("{queryParams: [{name: q, type: RegularExpression, value: 'a*+'}]}", "query parameter q regular expression \"a*+\" is rejected: possessive quantifier *+"),
        ("{path: {type: RegularExpression, value: '/x{1001}'}}", "path regular expression \"/x{1001}\" is rejected: repetition count in {1001} is over 1000"),
    ])
    func unsupportedPatternsAreNotAccepted(match: String, message: String) throws {
        let state = try GW.build(Self.gateway + Self.route("bad", host: "bad.example", match: match)
            + Self.route("good", host: "good.example", match: "{path: {type: RegularExpression, value: '/v[0-9]+'}}"))
        #expect(state.routeConditions("bad") == ["Accepted=False/UnsupportedValue", "ResolvedRefs=True/ResolvedRefs"])
        let accepted = state.status.routes[NamespacedName(namespace: GW.infra, name: "bad")]?.first?.conditions?.first { $0.type == "Accepted" }
        #expect(accepted?.message?.hasPrefix("spec.rules[0].matches[0]: ") == true, "\(accepted?.message ?? "no message")")
        #expect(accepted?.message?.contains(message) == true, "\(accepted?.message ?? "no message")")
        #expect(state.route("gw", host: "bad.example", path: "/x") == "404")
        #expect(state.routeConditions("good") == ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"])
        #expect(state.route("gw", host: "good.example", path: "/v2") == "good/0 → infra-backend-v1")
    }

    /// Header and query parameter patterns must match the whole value, as Envoy's safe_regex does.
    @Test func valuePatternsMatchTheWholeValue() {
        let table = CompiledRouteTableTests.table([
            CompiledRouteTableTests.entry("header", RouteMatchSpec(headers: [ValueMatch(kind: .regularExpression, name: "x-id", value: "[0-9]+")])),
            CompiledRouteTableTests.entry("query", RouteMatchSpec(queryParams: [ValueMatch(kind: .regularExpression, name: "v", value: "v[12]")])),
        ])
        let compiled = CompiledRouteTable(table)
        func winner(_ path: String, _ headers: [(String, String)] = []) -> String? {
            RouteMatcher.match(compiled, request: RouteRequest(host: "h", path: path, headers: headers.map { HTTPHeader(name: $0.0, value: $0.1) })).entry?.route.name
        }
        #expect(winner("/", [("x-id", "123")]) == "header")
        #expect(winner("/", [("x-id", "id-123")]) == nil)
        #expect(winner("/", [("x-id", "123a")]) == nil)
        #expect(winner("/?v=v1") == "query")
        #expect(winner("/?v=v12") == nil)
        #expect(winner("/?v=xv1") == nil)
    }

    /// The issue's request: with a backtracking engine `match` (the proxy) and `decide`
    /// (`explain`) never return on it; the time limit fails the test instead of hanging.
    @Test(.timeLimit(.minutes(1)))
    func pathologicalRequestsAreDecidedInLinearTime() {
        let table = CompiledRouteTableTests.table([
            CompiledRouteTableTests.entry("nested", RouteMatchSpec(pathKind: .regularExpression, path: "/(a+)+b")),
            CompiledRouteTableTests.entry("files", RouteMatchSpec(pathKind: .regularExpression, path: "/files/(.*)/(.*)/(.*)\\.json")),
            CompiledRouteTableTests.entry("header", RouteMatchSpec(headers: [ValueMatch(kind: .regularExpression, name: "x", value: "(a|aa)+c")])),
        ])
        let nested = RouteRequest(host: "h", path: "/" + String(repeating: "a", count: 5000), headers: [HTTPHeader(name: "x", value: String(repeating: "a", count: 5000))])
        #expect(RouteMatcher.match(CompiledRouteTable(table), request: nested).code == 404)
        let decision = RouteMatcher.decide(table, request: nested)
        #expect(decision.code == 404 && decision.candidates.count == 3)
        let files = RouteRequest(host: "h", path: "/files/" + String(repeating: "d/", count: 400) + "x.json")
        #expect(RouteMatcher.match(table, request: files).entry?.route.name == "files")
        #expect(RouteMatcher.decide(table, request: files).entry?.route.name == "files")
    }
}
