import KubeModels
import LoadBalancer

/// The Gateway control plane's route tables as the proxy's router: one `PortRouteTable` per proxy
/// port, matched with `RouteMatcher.match` (the same matcher `portway explain` uses).
///
/// What does not depend on the request is prepared once per table, not per request: the regular
/// expressions compiled (`CompiledRouteTable`), each rule match's decision (backends as upstreams
/// with their own filters, rule filters, route label) and whether any rule of the port matches on
/// headers (if none does, the matcher is not handed the request's headers to normalize).
public struct GatewayRouteTableRouter: RequestRouter {
    public var tables: [UInt16: PortRouteTable] {
        didSet { compiled = tables.mapValues(CompiledTable.init) }
    }
    private var compiled: [UInt16: CompiledTable]

    /// One port's table with its per-rule decisions, indexed like `table.listeners[l].rules[p]`.
    private struct CompiledTable: Sendable {
        var matcher: CompiledRouteTable
        var matchesHeaders: Bool
        var decisions: [[RoutingDecision]]
        var table: PortRouteTable { matcher.table }

        init(_ table: PortRouteTable) {
            matcher = CompiledRouteTable(table)
            matchesHeaders = table.listeners.contains { $0.rules.contains { !$0.matchSpec.headers.isEmpty } }
            decisions = table.listeners.map { $0.rules.map(GatewayRouteTableRouter.decision(for:)) }
        }
    }

    public init(tables: [UInt16: PortRouteTable]) {
        self.tables = tables
        self.compiled = tables.mapValues(CompiledTable.init)
    }

    /// Rule matches that can never apply (a regular expression the engine refuses), for the log.
    public var problems: [GatewayWarning] {
        compiled.keys.sorted().flatMap { compiled[$0]!.matcher.problems }
    }

    public func route(_ request: RoutingRequest) -> RoutingDecision {
        guard let port = compiled[request.proxyPort] else { return .respond(status: 404, route: .none) }
        // The matcher splits and percent-decodes the query itself.
        let target = request.query.map { request.path + "?" + $0 } ?? request.path
        let headers = port.matchesHeaders ? request.headers.map { KubeModels.HTTPHeader(name: $0.name, value: $0.value) } : []
        let match = RouteMatcher.match(port.matcher, request: RouteRequest(host: request.host, path: target, method: request.method, headers: headers))
        guard let entry = match.entry else { return .respond(status: 404, route: .none) }
        // The winner is one of the listener's rules; its decision was built with the table.
        if let listener = match.listener,
            let position = port.table.listeners[listener].rules.firstIndex(where: {
                $0.rule == entry.rule && $0.match == entry.match && $0.route == entry.route
            })
        {
            return port.decisions[listener][position]
        }
        return Self.decision(for: entry)
    }

    /// The decision for a request that matched `entry`: forward to its backends with its filters, or redirect.
    static func decision(for entry: RouteTableEntry) -> RoutingDecision {
        var forward = ForwardDecision(backends: entry.backends.map(Self.upstream), route: RouteLabel("\(entry.route)/rule\(entry.rule)"))
        let prefix = entry.matchSpec.pathKind == .pathPrefix ? entry.matchSpec.path : nil
        if let redirect = RuleFilters.apply(entry.filters, matchedPrefix: prefix, to: &forward) { return .redirect(redirect) }
        return .forward(forward)
    }

    /// A backendRef as a weighted upstream: its endpoints, or 500 for its share when it failed to
    /// resolve (no endpoints at all gives 503 when chosen).
    /// Its RequestHeaderModifier / ResponseHeaderModifier filters go with it (applied when it is chosen).
    static func upstream(_ backend: LoadBalancer.WeightedBackend) -> WeightedUpstream {
        let weight = UInt32(clamping: max(0, backend.weight))
        if backend.failure != nil { return WeightedUpstream(weight: weight, target: .status(500)) }
        var upstream = WeightedUpstream(weight: weight, target: .endpoints(backend.endpoints.map { UpstreamEndpoint(host: $0.address, port: $0.port) }))
        BackendFilters.apply(backend.filters, to: &upstream)
        return upstream
    }
}

extension TLSListener {
    /// TLS for a proxy port whose table has HTTPS listeners: each listener's certificates with its
    /// hostname. nil when the port has no HTTPS listener or none of its certificates resolved.
    public init?(table: PortRouteTable, certificates: [NamespacedName: TLSMaterial]) throws {
        var listenerCertificates: [ListenerCertificate] = []
        for listener in table.listeners where listener.protocol == .https {
            for reference in listener.certificates {
                guard let material = certificates[reference] else { continue }
                listenerCertificates.append(try ListenerCertificate(
                    hostname: listener.hostname, pemCertificateChain: material.certificateChain, pemPrivateKey: material.privateKey))
            }
        }
        guard !listenerCertificates.isEmpty else { return nil }
        self.init(certificates: listenerCertificates)
    }
}
