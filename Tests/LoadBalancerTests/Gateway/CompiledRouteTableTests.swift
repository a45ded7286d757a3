import KubeModels
import Testing
@testable import LoadBalancer

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
