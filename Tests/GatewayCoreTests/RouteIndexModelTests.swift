import GatewayCore
import KubeModels
import LoadBalancer
import PortwayTestSupport
import Testing
@testable import GatewayCore

/// Random route tables and requests over a small vocabulary (so hosts, prefixes and patterns
/// collide often): tables shaped as the builder makes them (listeners in hostname order, each
/// route's hostnames intersected with the listener's, matches in precedence order), and now and
/// then hand-made ones (hostnames in any case, routes that the listener would not take).
struct RouteTableGenerator {
    var rng: SeededRandom

    mutating func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }
    mutating func pick<T>(_ values: [T]) -> T { values[Int(rng.next() % UInt64(values.count))] }
    mutating func count(_ upTo: Int) -> Int { Int(rng.next() % UInt64(upTo + 1)) }

    static let domains = ["example.com", "example.net", "x.example.com", "com"]
    static let labels = ["a", "b", "api", "www", "x"]
    static let paths = [
        "/", "/a", "/a/", "/a/b", "/a/b/", "/ab", "/a/1", "/a/12/x", "/A/x", "//", "//a", "/v1/x", "/v2", "*", "",
        "/a/b/c", "/b", "/b/a", "/api/v1/users/7", "/a%2Fb", "/é/a", "/a/é",
    ]

    mutating func hostname() -> String {
        switch rng.next() % 10 {
        case 0, 1, 2: return "*." + pick(Self.domains)
        case 3: return pick(["A", "Api", "WWW"]) + "." + pick(["Example.com", "example.net"])
        case 4: return "*." + pick(Self.labels) + "." + pick(Self.domains)
        default: return pick(Self.labels) + "." + pick(Self.domains)
        }
    }

    mutating func host() -> String {
        switch rng.next() % 10 {
        case 0: return pick(Self.domains)
        case 1: return pick(Self.labels) + "." + pick(Self.labels) + "." + pick(Self.domains)
        case 2: return "unknown.example.org"
        case 3: return pick(["A.Example.com", "api.example.net:8080", "www.example.com."])
        default: return pick(Self.labels) + "." + pick(Self.domains)
        }
    }

    mutating func matchSpec() -> RouteMatchSpec {
        var spec = RouteMatchSpec()
        switch rng.next() % 10 {
        case 0, 1, 2:
            spec.pathKind = .exact
            spec.path = pick(["/", "/a", "/a/", "/a/b", "/ab", "/v1/x", "*", "/é/a"])
        case 3, 4:
            spec.pathKind = .regularExpression
            spec.path = pick([
                "/a/[0-9]+", "/a.*", "/ab*", "/a?b", "/(a|b)/.*", "(?i)/a/.*", "/a/b", ".*", "/v[12]/.*", "/a/b{0,1}",
                "/a|/b", "/é.*", "/[ab]+", "/a/b+", "/a/\\d+/x", "/api/v1/users/[0-9]+",
            ])
        default:
            spec.pathKind = .pathPrefix
            spec.path = pick(["/", "/a", "/a/", "/a/b", "/ab", "//", "", "a", "/v1", "/api/v1", "/a/b/", "/é", "/A"])
        }
        if chance(30) { spec.method = pick(["GET", "POST"]) }
        for _ in 0..<(chance(30) ? count(2) : 0) {
            spec.headers.append(pick([
                ValueMatch(kind: .exact, name: "x-a", value: "1"), ValueMatch(kind: .regularExpression, name: "X-A", value: "[0-9]+"),
                ValueMatch(kind: .exact, name: "x-b", value: "2"),
            ]))
        }
        if chance(20) {
            spec.queryParams.append(pick([ValueMatch(kind: .exact, name: "q", value: "1"), ValueMatch(kind: .regularExpression, name: "q", value: "[a-z]+")]))
        }
        return spec
    }

    mutating func table() -> PortRouteTable {
        let builderShaped = chance(80)
        var routes: [(NamespacedName, [String], String, [RouteMatchSpec])] = []
        for r in 0..<(1 + count(5)) {
            let hostnames = (0..<count(4)).map { _ in hostname() }
            let created = pick(["", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])
            let specs = (0..<(1 + count(8))).map { _ in matchSpec() }
            routes.append((NamespacedName(namespace: pick(["a", "b"]), name: "r\(r)"), hostnames, created, specs))
        }
        var listeners: [ListenerRouteTable] = []
        for l in 0..<(1 + count(2)) {
            let hostname: String? = chance(40) ? nil : hostname().lowercased()
            var entries: [RouteTableEntry] = []
            for (name, hostnames, created, specs) in routes {
                let served: [String]
                if builderShaped {
                    guard let intersected = Hostnames.intersect(listener: hostname, route: hostnames) else { continue }
                    served = intersected
                } else {
                    served = hostnames
                }
                for (i, spec) in specs.enumerated() {
                    entries.append(RouteTableEntry(
                        route: name, rule: i / 2, match: i % 2, hostnames: served, matchSpec: spec,
                        backends: [WeightedBackend(weight: 1, reference: name, port: 80, endpoints: [BackendEndpoint(address: "10.0.0.1", port: 80)])],
                        routeCreated: created))
                }
            }
            listeners.append(ListenerRouteTable(name: "l\(l)", hostname: hostname, protocol: .http, rules: entries.sorted(by: RoutePrecedence.before)))
        }
        if builderShaped { listeners.sort { RoutePrecedence.listenerBefore($0.hostname, $1.hostname) } }
        return PortRouteTable(gateway: NamespacedName(namespace: "a", name: "gw"), port: 80, listeners: listeners)
    }

    mutating func request() -> RouteRequest {
        var path = pick(Self.paths)
        if chance(20) { path += pick(["?q=1", "?q=abc", "?q=1&q=x", "?r=1"]) }
        var headers: [HTTPHeader] = []
        for _ in 0..<count(2) {
            headers.append(pick([HTTPHeader(name: "X-A", value: "1"), HTTPHeader(name: "x-a", value: "x"), HTTPHeader(name: "x-b", value: "2")]))
        }
        return RouteRequest(host: host(), path: path, method: pick(["GET", "POST", "PUT"]), headers: headers)
    }
}

/// The indexed lookup (`RouteIndex`, the proxy's path) chooses exactly what the linear scan over
/// every rule match chooses, and what the explaining matcher chooses, on random tables and requests.
/// Serialized, and the comparisons run on a thread of their own: they are synchronous CPU work
/// (tens of seconds in a debug build on a loaded machine), and on the cooperative pool they held
/// one of its two threads for the whole suite, starving the timers of the pipeline tests beside
/// them (their retries waited past 60 s).
@Suite(.serialized) struct RouteIndexModelTests {
    /// What one seed's comparisons found: the mismatches (empty when the index agrees), how many
    /// requests were compared and how many of them were routed.
    struct Outcome: Sendable {
        var mismatches: [String] = []
        var compared = 0
        var routed = 0
        var seed: UInt64 = 0
    }

    static func compare(seed: UInt64?, tables: Int, requests: Int) -> Outcome {
        var generator = RouteTableGenerator(rng: SeededRandom(seed: seed, label: "RouteIndexModelTests"))
        var outcome = Outcome(seed: generator.rng.seed)
        let seed = outcome.seed
        for t in 0..<tables {
            let table = generator.table()
            let compiled = CompiledRouteTable(table)
            for _ in 0..<requests {
                let request = generator.request()
                let indexed = RouteMatcher.match(compiled, request: request)
                let linear = RouteMatcher.linearMatch(compiled, request: request)
                let explained = RouteMatcher.decide(compiled, request: request)
                let linearEntry = linear.listener.flatMap { l in linear.rule.map { table.listeners[l].rules[$0] } }
                if indexed.listener != linear.listener { outcome.mismatches.append("seed \(seed) table \(t): \(request) listener") }
                if indexed.entry != linearEntry { outcome.mismatches.append("seed \(seed) table \(t): \(request)\n\(table)") }
                if indexed.entry != explained.entry { outcome.mismatches.append("seed \(seed) table \(t): \(request) explain") }
                outcome.compared += 1
                if indexed.entry != nil { outcome.routed += 1 }
            }
        }
        return outcome
    }

    /// Runs `compare` off the cooperative pool and checks what it found.
    static func check(seed: UInt64?, tables: Int, requests: Int) async throws {
        let outcome = try await onCPULane { compare(seed: seed, tables: tables, requests: requests) }
        #expect(outcome.mismatches.isEmpty, "\(outcome.mismatches.count) mismatches; the first: \(outcome.mismatches.prefix(3))")
        #expect(outcome.compared == tables * requests)
        // The generator is useful only if a good share of requests is routed and a good share is not.
        #expect(outcome.routed > outcome.compared / 10 && outcome.routed < outcome.compared * 9 / 10,
                "seed \(outcome.seed): \(outcome.routed) of \(outcome.compared) routed")
    }

    @Test(arguments: Array(1...24) as [UInt64])
    func indexedLookupEqualsLinearScan(seed: UInt64) async throws {
        try await Self.check(seed: seed, tables: 25, requests: 40)
    }

    /// A fresh seed each run (printed; replay with PORTWAY_TEST_SEED).
    @Test func indexedLookupEqualsLinearScanFreshSeed() async throws {
        try await Self.check(seed: nil, tables: 100, requests: 40)
    }

    /// A request's path visits only the prefix lists of its own segments (plus `/`), whatever
    /// the number of other prefixes.
    @Test func aPathVisitsOnlyThePrefixesItCanMatch() {
        let entries = (0..<1000).map { i in
            RouteTableEntry(
                route: NamespacedName(namespace: "a", name: "r"), rule: i, match: 0, hostnames: ["h.example.com"],
                matchSpec: RouteMatchSpec(pathKind: i.isMultiple(of: 2) ? .pathPrefix : .exact, path: "/svc\(i)"), backends: [])
        } + [RouteTableEntry(route: NamespacedName(namespace: "a", name: "r"), rule: 1000, match: 0, hostnames: ["h.example.com"],
                             matchSpec: RouteMatchSpec(pathKind: .pathPrefix, path: "/"), backends: [])]
        let rules = entries.sorted(by: RoutePrecedence.before)
        let index = ListenerRuleIndex(rules)
        #expect(index.groups.count == 1)
        var visited: [[String]] = []
        index.groups[0].forEachCandidateList(path: "/svc42/x") { list in visited.append(list.map { rules[$0].matchSpec.path }) }
        #expect(visited == [["/"], ["/svc42"]])
        visited = []
        index.groups[0].forEachCandidateList(path: "/svc41") { list in visited.append(list.map { rules[$0].matchSpec.path }) }
        #expect(visited == [["/svc41"], ["/"]])
    }

    /// A regular expression's literal start: only text every whole match must begin with.
    @Test(arguments: [
        ("/a/[0-9]+", "/a/"), ("/ab*", "/a"), ("/a?b", "/"), ("/a{0,1}", "/"), ("/a+", "/a"), ("(?i)/a", ""), ("/a|/b", ""),
        (".*", ""), ("/a.b", "/a"), ("/a\\d", "/a"), ("/é", "/"), ("/api/v1/users/[0-9]+", "/api/v1/users/"),
    ])
    func literalPrefixOfAPattern(pattern: String, literal: String) {
        #expect(PathIndex.literalPrefix(pattern) == literal)
    }
}
