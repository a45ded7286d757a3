// Per-request route lookup (issue 20): the proxy's router over a table built by the Gateway builder
// from one Gateway and one HTTPRoute of 5,000 rules over 1,000 hostnames, beside the same lookup on
// a 1-rule / 1-hostname table, so the ratio shows whether the cost depends on the number of rules.
import Foundation
import GatewayCore
import KubeModels
import L7Proxy
import NIOHTTP1

/// SplitMix64: the bench's seeded generator (the seed is printed, `PORTWAY_BENCH_SEED` replays it).
struct BenchRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The bench's objects: a GatewayClass of Portway's controller, a Gateway with one HTTP listener
/// (no hostname) on port 80, one backend Service with an endpoint, and `route`.
func routeBenchSnapshot(_ route: HTTPRoute) -> ClusterSnapshot {
    let ns = "bench"
    var snapshot = ClusterSnapshot()
    snapshot.gatewayClasses = [GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: GatewayOptions.defaultControllerName))]
    snapshot.gateways = [Gateway(
        metadata: ObjectMeta(name: "gw", namespace: ns),
        spec: GatewaySpec(gatewayClassName: "portway", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")]))]
    snapshot.services = [Service(
        metadata: ObjectMeta(name: "backend", namespace: ns),
        spec: ServiceSpec(type: "ClusterIP", clusterIP: "10.96.0.10", clusterIPs: ["10.96.0.10"], ports: [ServicePort(name: "http", protocol: "TCP", port: 8080, targetPort: .int(8080))]))]
    snapshot.endpointSlices = [EndpointSlice(
        metadata: ObjectMeta(name: "backend-x", namespace: ns, labels: [EndpointSlice.serviceNameLabel: "backend"]),
        addressType: "IPv4", endpoints: [Endpoint(addresses: ["10.1.0.1"], conditions: EndpointConditions(ready: true, serving: true, terminating: false))],
        ports: [EndpointPort(name: "http", protocol: "TCP", port: 8080)])]
    snapshot.httpRoutes = [route]
    return snapshot
}

/// The big route's rules: rule i serves `/svc<i>` in one of a few shapes (prefix, deeper prefix,
/// exact, prefix + header, prefix + method), 16 rules are regular expressions and the last is a
/// `/` catch-all.
func bigRouteRules(_ count: Int, regexRules: Int) -> [HTTPRouteRule] {
    let backend = [HTTPBackendRef(name: "backend", port: 8080)]
    var rules: [HTTPRouteRule] = []
    for i in 0..<(count - regexRules - 1) {
        let match: HTTPRouteMatch
        switch i % 10 {
        case 0, 1, 2, 3: match = HTTPRouteMatch(path: HTTPPathMatch(type: "PathPrefix", value: "/svc\(i)"))
        case 4, 5: match = HTTPRouteMatch(path: HTTPPathMatch(type: "PathPrefix", value: "/svc\(i)/v\(i % 3)"))
        case 6, 7: match = HTTPRouteMatch(path: HTTPPathMatch(type: "Exact", value: "/svc\(i)/exact"))
        case 8: match = HTTPRouteMatch(path: HTTPPathMatch(type: "PathPrefix", value: "/svc\(i)"), headers: [HTTPHeaderMatch(name: "x-tenant", value: "t\(i % 7)")])
        default: match = HTTPRouteMatch(path: HTTPPathMatch(type: "PathPrefix", value: "/svc\(i)"), method: "POST")
        }
        rules.append(HTTPRouteRule(matches: [match], backendRefs: backend))
    }
    for k in 0..<regexRules {
        rules.append(HTTPRouteRule(matches: [HTTPRouteMatch(path: HTTPPathMatch(type: "RegularExpression", value: "/re\(k)/[0-9]+"))], backendRefs: backend))
    }
    rules.append(HTTPRouteRule(matches: [HTTPRouteMatch(path: HTTPPathMatch(type: "PathPrefix", value: "/"))], backendRefs: backend))
    return rules
}

/// The proxy's router for `route`'s table on proxy port 10000, and how long building it took
/// (the Gateway builder, then the router's per-table preparation).
func routeBenchRouter(_ route: HTTPRoute) -> (GatewayRouteTableRouter, build: Double, compile: Double) {
    let clock = ContinuousClock()
    var state = GatewayState()
    let build = seconds(clock.measure { state = GatewayState.build(routeBenchSnapshot(route)) })
    guard let table = state.tables.first, table.listeners.first?.rules.isEmpty == false else {
        fatalError("route bench: the builder made no table (\(state.warnings))")
    }
    var router: GatewayRouteTableRouter?
    let compile = seconds(clock.measure { router = GatewayRouteTableRouter(tables: [10000: table]) })
    return (router!, build, compile)
}

/// Per-request times of `router.route` over `requests` (in order, repeated), sorted: at least
/// `minimum` lookups and then until `budget` seconds have passed (at most `maximum`); and how many
/// got a route (not 404).
func timeRouting(_ router: GatewayRouteTableRouter, _ requests: [RoutingRequest], minimum: Int, maximum: Int = 200_000, budget: Double) -> (times: [Double], routed: Int) {
    let clock = ContinuousClock()
    var times: [Double] = []
    var routed = 0
    let start = clock.now
    while times.count < maximum, times.count < minimum || seconds(clock.now - start) < budget {
        let request = requests[times.count % requests.count]
        var decision: RoutingDecision?
        times.append(seconds(clock.measure { decision = router.route(request) }))
        if case .respond(404, _) = decision! {} else { routed += 1 }
    }
    return (times.sorted(), routed)
}

/// One HTTPRoute of 5,000 rules over 1,000 hostnames (900 exact, 100 wildcards) against a
/// 1-rule / 1-hostname route, both through the proxy's router, requests drawn with a printed seed.
func benchRouteLookup() {
    let seed = ProcessInfo.processInfo.environment["PORTWAY_BENCH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
    var random = BenchRandom(seed: seed)
    let ruleCount = 5_000, regexRules = 16, exactHosts = 900, wildcardHosts = 100
    let hostnames = (0..<exactHosts).map { "app\($0).zone\($0 % wildcardHosts).example.com" }
        + (0..<wildcardHosts).map { "*.edge\($0).example.net" }
    let big = HTTPRoute(
        metadata: ObjectMeta(name: "big", namespace: "bench", creationTimestamp: "2026-01-01T00:00:00Z"),
        spec: HTTPRouteSpec(parentRefs: [ParentReference(name: "gw")], hostnames: hostnames, rules: bigRouteRules(ruleCount, regexRules: regexRules)))
    let small = HTTPRoute(
        metadata: ObjectMeta(name: "small", namespace: "bench", creationTimestamp: "2026-01-01T00:00:00Z"),
        spec: HTTPRouteSpec(
            parentRefs: [ParentReference(name: "gw")], hostnames: ["app0.zone0.example.com"],
            rules: [HTTPRouteRule(matches: [HTTPRouteMatch(path: HTTPPathMatch(type: "PathPrefix", value: "/svc0"))], backendRefs: [HTTPBackendRef(name: "backend", port: 8080)])]))
    let (bigRouter, bigBuild, bigCompile) = routeBenchRouter(big)
    let (smallRouter, _, _) = routeBenchRouter(small)

    // Requests over random hosts (exact names, names under a wildcard, unknown names) and paths
    // (each rule shape, regular expressions, the catch-all).
    func request(host: String, path: String, method: String = "GET", headers: HTTPHeaders = [:]) -> RoutingRequest {
        var path = path, query: String?
        if let q = path.firstIndex(of: "?") {
            query = String(path[path.index(after: q)...])
            path = String(path[..<q])
        }
        return RoutingRequest(proxyPort: 10000, host: host, path: path, query: query, method: method, headers: headers)
    }
    var requests: [RoutingRequest] = []
    for _ in 0..<4096 {
        let host: String
        switch Int.random(in: 0..<10, using: &random) {
        case 0..<7: host = hostnames[Int.random(in: 0..<exactHosts, using: &random)]
        case 7, 8: host = "x\(Int.random(in: 0..<1000, using: &random)).edge\(Int.random(in: 0..<wildcardHosts, using: &random)).example.net"
        default: host = "unknown\(Int.random(in: 0..<1000, using: &random)).example.org"
        }
        let i = Int.random(in: 0..<(ruleCount - regexRules - 1), using: &random)
        var headers: HTTPHeaders = ["user-agent": "bench", "accept": "*/*"]
        let path: String
        var method = "GET"
        switch Int.random(in: 0..<10, using: &random) {
        case 0..<4: path = "/svc\(i)/items/\(Int.random(in: 0..<100, using: &random))"
        case 4: path = "/svc\(i)/v\(i % 3)/x"
        case 5: path = "/svc\(i)/exact"
        case 6:
            path = "/svc\(i)/t?page=2"
            headers.add(name: "X-Tenant", value: "t\(i % 7)")
        case 7:
            path = "/svc\(i)/post"
            method = "POST"
        case 8: path = "/re\(Int.random(in: 0..<regexRules, using: &random))/\(Int.random(in: 0..<10_000, using: &random))"
        default: path = "/other/\(i)"
        }
        requests.append(request(host: host, path: path, method: method, headers: headers))
    }
    let smallRequests = (0..<64).map { request(host: "app0.zone0.example.com", path: "/svc0/items/\($0)", headers: ["user-agent": "bench", "accept": "*/*"]) }

    // A fixed budget of time per line; at least 2,000 lookups of the reference, at least 100 of
    // the big table (the linear scan took half a second per request).
    let budget = 2.0
    let reference = timeRouting(smallRouter, smallRequests, minimum: 2_000, budget: budget)
    let measured = timeRouting(bigRouter, requests, minimum: 100, budget: budget)
    let p50 = percentile(measured.times, 0.5), p99 = percentile(measured.times, 0.99)
    let refP50 = percentile(reference.times, 0.5), refP99 = percentile(reference.times, 0.99)
    print("route lookup (seed \(seed), PORTWAY_BENCH_SEED replays): one HTTPRoute of \(ruleCount) rules over \(hostnames.count) hostnames "
        + "(\(exactHosts) exact, \(wildcardHosts) wildcard; \(regexRules) regex rules), \(measured.times.count) requests "
        + "(\(measured.routed) routed, the rest 404 for unknown hosts): p50 \(formatMicros(p50)), p99 \(formatMicros(p99)); "
        + "1-rule/1-host table, \(reference.times.count) requests: p50 \(formatMicros(refP50)), p99 \(formatMicros(refP99)); "
        + "ratio p50 \(String(format: "%.1f", p50 / refP50))×, p99 \(String(format: "%.1f", p99 / refP99))×; "
        + "target p50 and p99 < 50 µs: \(p99 < 50e-6 ? "met" : "not met"); "
        + "table: builder \(format(bigBuild)), router compile \(format(bigCompile))")
    targetRow("per-request routing, one HTTPRoute of \(ruleCount) rules / \(hostnames.count) hostnames",
              measured: "p50 \(formatMicros(p50)), p99 \(formatMicros(p99))",
              reference: "1-rule table p50 \(formatMicros(refP50)), p99 \(formatMicros(refP99))",
              target: "p50 and p99 < 50 µs", met: p50 < 50e-6 && p99 < 50e-6)
}
