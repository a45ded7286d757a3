import KubeModels
import LoadBalancer

/// The Gateway control plane's route tables as the proxy's router: one `PortRouteTable` per proxy
/// port, matched with `RouteMatcher.match` (the same matcher `portway explain` uses). The tables'
/// regular expressions are compiled once, here, never per request.
public struct GatewayRouteTableRouter: RequestRouter {
    /// The tables compiled, by proxy port.
    public let compiled: [UInt16: CompiledRouteTable]

    public init(tables: [UInt16: PortRouteTable]) {
        compiled = tables.mapValues(CompiledRouteTable.init)
    }

    /// The tables as the control plane built them.
    public var tables: [UInt16: PortRouteTable] { compiled.mapValues(\.table) }

    /// Rule matches that can never apply (a regular expression that does not compile), for the log.
    public var problems: [GatewayWarning] {
        compiled.keys.sorted().flatMap { compiled[$0]!.problems }
    }

    public func route(_ request: RoutingRequest) -> RoutingDecision {
        guard let table = compiled[request.proxyPort] else { return .respond(status: 404, route: .none) }
        // The matcher splits and percent-decodes the query itself.
        let target = request.path + (request.query.map { "?\($0)" } ?? "")
        let headers = request.headers.map { KubeModels.HTTPHeader(name: $0.name, value: $0.value) }
        let match = RouteMatcher.match(table, request: RouteRequest(host: request.host, path: target, method: request.method, headers: headers))
        guard let entry = match.entry else { return .respond(status: 404, route: .none) }
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
