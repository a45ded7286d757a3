import GatewayCore
import LoadBalancer
import NIOHTTP1
import NIOSSL

/// The Gateway control plane's route tables as the proxy's router: one `PortRouteTable` per proxy
/// port, matched with `RouteMatcher.match` (the same matcher `portway explain` uses).
///
/// What does not depend on the request is prepared once per table, not per request: the regular
/// expressions compiled (`CompiledRouteTable`) and each rule match's decision (backends as upstreams
/// with their own filters, the rule's lowered filters, route label). A request is matched by
/// position (`RouteMatch`) and answered with the decision at that position: its headers are read in
/// place and its query parsed only when a rule of the port looks at one.
public struct GatewayRouteTableRouter: RequestRouter {
    public var tables: [UInt16: PortRouteTable] {
        didSet { compiled = tables.mapValues(CompiledTable.init) }
    }
    private var compiled: [UInt16: CompiledTable]

    /// One port's table with its per-rule decisions, indexed like `table.listeners[l].rules[p]`.
    private struct CompiledTable: Sendable {
        var matcher: CompiledRouteTable
        var decisions: [[RoutingDecision]]

        init(_ table: PortRouteTable) {
            matcher = CompiledRouteTable(table)
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
        if let serverName = request.serverName, RouteMatcher.isMisdirected(port.matcher, normalizedHost: request.host, serverName: serverName) {
            return .respond(status: 421, route: .none)
        }
        // The host is normalized already (RequestTarget), the path and query are apart, the
        // headers are read in place: the matcher converts nothing and says where by position.
        let found = RouteMatcher.match(
            port.matcher, normalizedHost: request.host, path: request.path, query: request.query, method: request.method,
            headers: ProxyRequestHeaders(headers: request.headers))
        guard let listener = found.listener, let rule = found.rule else { return .respond(status: 404, route: .none) }
        return port.decisions[listener][rule]
    }

    /// The decision for a request that matched `entry`: forward to its backends with its filters and
    /// timeouts, or redirect.
    static func decision(for entry: RouteTableEntry) -> RoutingDecision {
        var forward = ForwardDecision(
            backends: entry.backends.map(Self.upstream), requestTimeoutSeconds: entry.timeouts.request,
            backendRequestTimeoutSeconds: entry.timeouts.backendRequest, route: RouteLabel("\(entry.route)/rule\(entry.rule)"))
        forward.retry = entry.retry
        if let redirect = RuleFilters.apply(entry.filters, to: &forward) { return .redirect(redirect) }
        return .forward(forward)
    }

    /// A backendRef as a weighted upstream: its endpoints, or 500 for its share when it failed to
    /// resolve (no endpoints at all gives 503 when chosen).
    /// Its RequestHeaderModifier / ResponseHeaderModifier filters go with it (applied when it is chosen).
    static func upstream(_ backend: GatewayCore.WeightedBackend) -> WeightedUpstream {
        let weight = UInt32(clamping: max(0, backend.weight))
        if backend.failure != nil { return WeightedUpstream(weight: weight, target: .status(500)) }
        var tls: UpstreamTLS?
        if let policy = backend.tls {
            // A BackendTLSPolicy that cannot be used: 500, never plain HTTP instead.
            guard policy.problem == nil, let made = try? UpstreamTLS.make(policy) else { return WeightedUpstream(weight: weight, target: .status(500)) }
            tls = made
        }
        var upstream = WeightedUpstream(weight: weight, target: .endpoints(backend.endpoints.map { UpstreamEndpoint(host: $0.address, port: $0.port, tls: tls) }))
        BackendFilters.apply(backend.filters, to: &upstream)
        return upstream
    }
}

/// A certificate a proxy port's TLS could not load: which listener and Secret, and why. The port
/// serves its other listeners; this one's SNI falls back as for any unknown name. Or (`kind`
/// ConfigMap) the port's client CA certificates: then no listener of the port is served.
public struct UnusableCertificate: Hashable, Sendable, CustomStringConvertible {
    public var listener: String
    public var hostname: String?
    /// The Secret (or, for client CA certificates, the ConfigMap) it comes from.
    public var secret: NamespacedName
    public var problem: String
    /// "Secret", or "ConfigMap" for client CA certificates.
    public var kind: String

    public init(listener: String, hostname: String?, secret: NamespacedName, problem: String, kind: String = "Secret") {
        self.listener = listener
        self.hostname = hostname
        self.secret = secret
        self.problem = problem
        self.kind = kind
    }

    public var description: String { "listener \(listener) (\(hostname ?? "any host")): \(kind) \(secret): \(problem)" }
}

/// The proxy's parsed request headers as the route matcher reads them (in place, no copy).
struct ProxyRequestHeaders: RouteRequestHeaders {
    let headers: HTTPHeaders

    func contains(name: String, where predicate: (String) -> Bool) -> Bool {
        for (field, value) in headers where Self.equalIgnoringASCIICase(field, lowercased: name) {
            if predicate(value) { return true }
        }
        return false
    }

    /// `field` equals the lowercase `name` when ASCII letters are folded (no allocation).
    static func equalIgnoringASCIICase(_ field: String, lowercased name: String) -> Bool {
        guard field.utf8.count == name.utf8.count else { return false }
        for (a, b) in zip(field.utf8, name.utf8) {
            let folded = a >= UInt8(ascii: "A") && a <= UInt8(ascii: "Z") ? a | 0x20 : a
            if folded != b { return false }
        }
        return true
    }
}

extension TLSListener {
    /// TLS for a proxy port whose table has HTTPS listeners: each listener's certificates with its
    /// hostname. A certificate that does not load is left out and listed in `unusable` (one bad
    /// Secret never takes down the other listeners of the port; the builder's certificate check
    /// normally keeps such listeners out of the table already). nil when the port has no HTTPS
    /// listener or none of its certificates is usable.
    public init?(table: PortRouteTable, certificates: [NamespacedName: TLSMaterial], unusable: inout [UnusableCertificate]) {
        var listenerCertificates: [ListenerCertificate] = []
        for listener in table.listeners where listener.protocol == .https {
            for reference in listener.certificates {
                guard let material = certificates[reference] else {
                    unusable.append(UnusableCertificate(listener: listener.name, hostname: listener.hostname, secret: reference, problem: "not among the resolved certificates"))
                    continue
                }
                do {
                    listenerCertificates.append(try ListenerCertificate(
                        hostname: listener.hostname, pemCertificateChain: material.certificateChain, pemPrivateKey: material.privateKey))
                } catch {
                    unusable.append(UnusableCertificate(listener: listener.name, hostname: listener.hostname, secret: reference, problem: "\(error)"))
                }
            }
        }
        guard !listenerCertificates.isEmpty else { return nil }
        var validation: ClientCertificateValidation?
        if let frontend = table.clientValidation {
            do {
                validation = try ClientCertificateValidation(pemTrustRoots: frontend.caCertificates, required: frontend.mode == .allowValidOnly)
            } catch {
                // Never served without the validation it asks for: the whole port is left out.
                let source = frontend.caCertificateRefs.first ?? NamespacedName(namespace: table.gateway.namespace, name: "?")
                for listener in table.listeners where listener.protocol == .https {
                    unusable.append(UnusableCertificate(
                        listener: listener.name, hostname: listener.hostname, secret: source,
                        problem: "client CA certificates (ca.crt) failed to load: \(error)", kind: "ConfigMap"))
                }
                return nil
            }
        }
        self.init(certificates: listenerCertificates, clientValidation: validation)
    }
}

/// The Gateway builder's CA certificate check done with the proxy's TLS library: a ConfigMap's
/// `ca.crt` must be well-formed PEM whose certificates NIOSSL parses (what the proxy loads).
public enum NIOSSLCACertificateValidator {
    public static let validate: CACertificateValidator = { pem in problem(with: pem) }

    public static func problem(with pem: [UInt8]) -> String? {
        if let structural = FrontendValidation.structuralProblem(pem) { return structural }
        do {
            guard !(try NIOSSLCertificate.fromPEMBytes(pem)).isEmpty else { return "holds no certificate" }
        } catch {
            return "does not parse as X.509 certificates (\(error))"
        }
        return nil
    }
}

/// The Gateway builder's certificate check done with the proxy's own TLS library, so what status,
/// `portway routes`/`explain` and the proxy accept is the same: the PEM structure first (for its
/// clear messages), then the chain and the key parsed by NIOSSL, and a server context made of them
/// (BoringSSL refuses a key that does not belong to the first certificate).
public enum NIOSSLCertificateValidator {
    public static let validate: CertificateValidator = { material in problem(with: material) }

    /// What is wrong with `material`, nil when the proxy can serve it.
    public static func problem(with material: TLSMaterial) -> String? {
        if let structural = material.structuralProblem { return structural }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(material.certificateChain)
        } catch {
            return "tls.crt does not parse as X.509 certificates (\(error))"
        }
        guard !chain.isEmpty else { return "tls.crt holds no certificate" }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: material.privateKey, format: .pem)
        } catch {
            return "tls.key does not parse as a private key (\(error))"
        }
        do {
            _ = try NIOSSLContext(configuration: TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)))
        } catch {
            return "tls.key does not belong to the first certificate of tls.crt (\(error))"
        }
        return nil
    }
}
