import LoadBalancer
import KubeModels

// The route tables: what the Gateway control plane hands to the L7 proxy and to `portway routes`
// and `portway explain`. All types are plain values (Sendable, Hashable, Codable); encode them
// with sorted keys for stable JSON. Certificates and keys are kept out of the tables
// (`GatewayState.certificates`) so that printing a table never prints a private key.

/// A namespaced object's name.
public struct NamespacedName: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    public static func < (lhs: NamespacedName, rhs: NamespacedName) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }

    /// "namespace/name".
    public var description: String { "\(namespace)/\(name)" }
}

/// Says what is wrong with a TLS Secret's certificate chain and key (nil: usable). The builder asks
/// it for every certificateRef it resolves: a listener whose Secret it refuses gets `ResolvedRefs`
/// False/`InvalidCertificateRef` with the answer, and stays out of the tables (and so out of its
/// port's SNI table), while the other listeners are served.
public typealias CertificateValidator = @Sendable (TLSMaterial) -> String?

/// Says what is wrong with the PEM text of a ConfigMap's `ca.crt` (nil: usable as CA certificates
/// for client certificate validation). A caCertificateRef it refuses is `InvalidCACertificateRef`.
public typealias CACertificateValidator = @Sendable ([UInt8]) -> String?

/// What the Gateway control plane needs to know beyond the snapshot.
public struct GatewayOptions: Sendable {
    /// The `spec.controllerName` of GatewayClasses whose Gateways Portway serves.
    public var controllerName: String
    /// Decides whether a Secret's certificate and key are usable. The default,
    /// `TLSMaterial.structuralProblem`, checks the PEM structure in pure Swift; the agent and the
    /// CLI inject one that parses them with the proxy's TLS library (and checks that the key belongs
    /// to the certificate), so status, `routes`, `explain` and the proxy agree on every Secret.
    public var certificateValidator: CertificateValidator
    /// Decides whether a ConfigMap's `ca.crt` is usable as client CA certificates: by default
    /// `FrontendValidation.structuralProblem` (PEM CERTIFICATE blocks); the agent and the CLI
    /// inject one that parses them with the proxy's TLS library.
    public var caCertificateValidator: CACertificateValidator

    public static let defaultControllerName = "portway.io/gateway-controller"

    public init(
        controllerName: String = GatewayOptions.defaultControllerName, certificateValidator: @escaping CertificateValidator = TLSMaterial.structuralProblem,
        caCertificateValidator: @escaping CACertificateValidator = FrontendValidation.structuralProblem
    ) {
        self.controllerName = controllerName
        self.certificateValidator = certificateValidator
        self.caCertificateValidator = caCertificateValidator
    }
}

/// A listener protocol Portway terminates.
public enum ListenerProtocol: String, Hashable, Codable, Sendable {
    case http = "HTTP"
    case https = "HTTPS"
}

/// The route table of one Gateway listener port: what the L7 proxy serves on that port's proxy port.
public struct PortRouteTable: Hashable, Codable, Sendable {
    public var gateway: NamespacedName
    public var port: Int
    /// Most specific hostname first: exact names, then wildcards (longest first), then no hostname.
    /// A request is served by the first listener whose hostname matches its Host (or SNI).
    public var listeners: [ListenerRouteTable]
    /// Client certificate validation of the port's HTTPS listeners (the Gateway's
    /// `spec.tls.frontend`); nil: no client certificate is asked for.
    public var clientValidation: FrontendValidation?

    public init(gateway: NamespacedName, port: Int, listeners: [ListenerRouteTable], clientValidation: FrontendValidation? = nil) {
        self.gateway = gateway
        self.port = port
        self.listeners = listeners
        self.clientValidation = clientValidation
    }
}

/// The client certificate validation of one Gateway port's HTTPS listeners: the Gateway's
/// `spec.tls.frontend` entry for the port (`perPort`, else `default`) with its CA certificates
/// resolved. One proxy port serves one Gateway port, so it is a property of the port's TLS.
public struct FrontendValidation: Hashable, Codable, Sendable {
    public enum Mode: String, Hashable, Codable, Sendable {
        /// A client certificate is required and must chain to one of the CA certificates.
        case allowValidOnly = "AllowValidOnly"
        /// Every client is served (none is asked for a certificate): the spec's insecure fallback.
        case allowInsecureFallback = "AllowInsecureFallback"
    }

    public var mode: Mode
    /// The ConfigMaps whose `ca.crt` resolved, in reference order.
    public var caCertificateRefs: [NamespacedName]
    /// Their `ca.crt` PEM text, concatenated in that order (CA certificates are public: they may
    /// be in the tables, unlike private keys).
    public var caCertificates: [UInt8]

    public init(mode: Mode, caCertificateRefs: [NamespacedName], caCertificates: [UInt8]) {
        self.mode = mode
        self.caCertificateRefs = caCertificateRefs
        self.caCertificates = caCertificates
    }

    /// The default CA check of the builder, in pure Swift: well-formed PEM with at least one
    /// `CERTIFICATE` block (text outside the blocks is ignored, as OpenSSL does).
    public static let structuralProblem: CACertificateValidator = { pem in
        switch PEM.blocks(pem) {
        case .failure(let problem): return problem.message
        case .success(let blocks):
            guard blocks.contains(where: { $0.label == "CERTIFICATE" }) else {
                let labels = blocks.map(\.label)
                return labels.isEmpty
                    ? "holds no PEM block (expected -----BEGIN CERTIFICATE-----)"
                    : "holds no CERTIFICATE block (found \(labels.joined(separator: ", ")))"
            }
            return nil
        }
    }
}

/// One programmed listener and the rules of every route attached to it, in precedence order.
public struct ListenerRouteTable: Hashable, Codable, Sendable {
    public var name: String
    /// nil: every host.
    public var hostname: String?
    public var `protocol`: ListenerProtocol
    /// The resolved certificate Secrets of an HTTPS listener (their bytes are in `GatewayState.certificates`).
    public var certificates: [NamespacedName]
    /// Every match of every rule of the attached routes, sorted by the Gateway API precedence
    /// (the request's hostname specificity is applied on top by `RouteMatcher`).
    public var rules: [RouteTableEntry]
    /// The ListenerSet the listener comes from (nil: the Gateway's own listener; absent from JSON then).
    public var listenerSet: NamespacedName?

    public init(name: String, hostname: String?, protocol: ListenerProtocol, certificates: [NamespacedName] = [], rules: [RouteTableEntry]) {
        self.name = name
        self.hostname = hostname
        self.protocol = `protocol`
        self.certificates = certificates
        self.rules = rules
    }
}

/// One match of one HTTPRoute rule, as attached to one listener.
public struct RouteTableEntry: Hashable, Codable, Sendable {
    public var route: NamespacedName
    /// Index of the rule in `spec.rules`.
    public var rule: Int
    /// Index of the match in the rule's `matches` (0 for the implicit match of a rule without matches).
    public var match: Int
    public var ruleName: String?
    /// The route's hostnames intersected with the listener's; empty means every host the listener takes.
    public var hostnames: [String]
    public var matchSpec: RouteMatchSpec
    /// The rule's filters, lowered (`RouteFilter.lower`), in the rule's order.
    public var filters: [RouteFilter]
    public var backends: [WeightedBackend]
    /// The rule's `timeouts`, validated (`RouteTimeouts.lower`).
    public var timeouts: RouteTimeouts
    /// The rule's `retry`, validated (`RouteRetry.lower`); nil: none.
    public var retry: RouteRetry?
    /// The route's `metadata.creationTimestamp` (older routes win ties), "" when unknown.
    public var routeCreated: String

    public init(
        route: NamespacedName, rule: Int, match: Int, ruleName: String? = nil, hostnames: [String], matchSpec: RouteMatchSpec,
        filters: [RouteFilter] = [], backends: [WeightedBackend], timeouts: RouteTimeouts = RouteTimeouts(), retry: RouteRetry? = nil,
        routeCreated: String = ""
    ) {
        self.route = route
        self.rule = rule
        self.match = match
        self.ruleName = ruleName
        self.hostnames = hostnames
        self.matchSpec = matchSpec
        self.filters = filters
        self.backends = backends
        self.timeouts = timeouts
        self.retry = retry
        self.routeCreated = routeCreated
    }

    /// Tells the rule's RequestRedirect the port of the listener it is attached to (a redirect
    /// without port and scheme keeps the listener's port).
    mutating func setListenerPort(_ port: Int) {
        for i in filters.indices {
            if case .requestRedirect(var redirect) = filters[i] {
                redirect.listenerPort = port
                filters[i] = .requestRedirect(redirect)
            }
        }
    }

    /// The rule's RequestMirror filters, in order.
    public var mirrors: [RequestMirror] {
        filters.compactMap { if case .requestMirror(let mirror) = $0 { mirror } else { nil } }
    }

    /// The RequestRedirect filter, if the rule has one: the request is answered by the proxy.
    public var redirect: RedirectDecision? {
        for filter in filters { if case .requestRedirect(let redirect) = filter { return redirect } }
        return nil
    }
}

/// How a path is matched.
public enum PathMatchKind: String, Hashable, Codable, Sendable {
    case exact = "Exact"
    /// By whole `/`-separated segments: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`.
    case pathPrefix = "PathPrefix"
    /// The whole path must match the pattern (RE2 syntax, `GatewayRegex`).
    case regularExpression = "RegularExpression"
}

/// How a header or query parameter value is matched.
public enum ValueMatchKind: String, Hashable, Codable, Sendable {
    case exact = "Exact"
    /// The whole value must match the pattern (RE2 syntax, `GatewayRegex`), as in Envoy.
    case regularExpression = "RegularExpression"
}

/// A header (name case-insensitive) or query parameter (name case-sensitive) condition.
public struct ValueMatch: Hashable, Codable, Sendable {
    public var kind: ValueMatchKind
    public var name: String
    public var value: String

    public init(kind: ValueMatchKind = .exact, name: String, value: String) {
        self.kind = kind
        self.name = name
        self.value = value
    }
}

/// One validated `HTTPRouteMatch`, defaults applied (`PathPrefix /` when no path is given).
public struct RouteMatchSpec: Hashable, Codable, Sendable {
    public var pathKind: PathMatchKind
    public var path: String
    public var headers: [ValueMatch]
    public var queryParams: [ValueMatch]
    public var method: String?

    public init(pathKind: PathMatchKind = .pathPrefix, path: String = "/", headers: [ValueMatch] = [], queryParams: [ValueMatch] = [], method: String? = nil) {
        self.pathKind = pathKind
        self.path = path
        self.headers = headers
        self.queryParams = queryParams
        self.method = method
    }
}

/// A backendRef of a rule with its weight and what it resolved to.
public struct WeightedBackend: Hashable, Codable, Sendable {
    public var weight: Int
    /// The referenced object as written: `namespace/name` (kind Service unless `kind` says otherwise).
    public var reference: NamespacedName
    public var port: Int?
    /// Set when the reference cannot be used: requests given to it get 500.
    public var failure: BackendFailure?
    /// The Service's ready endpoints (its terminating ones when none is ready). Empty with no
    /// failure: requests given to it get 503.
    public var endpoints: [BackendEndpoint]
    /// Filters of the backendRef itself, lowered (header modifiers only).
    public var filters: [RouteFilter]
    /// TLS to the backend: the BackendTLSPolicy of its Service port; nil: plain HTTP (absent from JSON).
    public var tls: BackendTLS?

    public init(
        weight: Int, reference: NamespacedName, port: Int?, failure: BackendFailure? = nil, endpoints: [BackendEndpoint] = [], filters: [RouteFilter] = [],
        tls: BackendTLS? = nil
    ) {
        self.weight = weight
        self.reference = reference
        self.port = port
        self.failure = failure
        self.endpoints = endpoints
        self.filters = filters
        self.tls = tls
    }

    /// The status a request given to this backend gets when it cannot be forwarded, nil when it can:
    /// 500 for a reference that failed or a BackendTLSPolicy without usable CA certificates (never
    /// sent in plain text instead), 503 without endpoints.
    public var failureCode: Int? {
        if failure != nil || tls?.problem != nil { return 500 }
        return endpoints.isEmpty ? 503 : nil
    }
}

/// Why a backendRef cannot be used (the HTTPRoute `ResolvedRefs` reasons).
public struct BackendFailure: Hashable, Codable, Sendable {
    /// BackendNotFound, RefNotPermitted, InvalidKind or UnsupportedValue.
    public var reason: String
    public var message: String

    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }
}

/// One endpoint of a backend Service.
public struct BackendEndpoint: Hashable, Codable, Sendable {
    public var address: String
    public var port: Int
    /// True when the endpoint is terminating (used only because no endpoint is ready).
    public var terminating: Bool

    public init(address: String, port: Int, terminating: Bool = false) {
        self.address = address
        self.port = port
        self.terminating = terminating
    }
}

/// The certificate chain and private key of a TLS Secret (PEM bytes, decoded from the Secret).
public struct TLSMaterial: Hashable, Sendable {
    public var certificateChain: [UInt8]
    public var privateKey: [UInt8]

    public init(certificateChain: [UInt8], privateKey: [UInt8]) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }
}

/// A listener of one of Portway's Gateways that the proxy does not serve, and why (what its status
/// conditions say, in short): conflicted, an unsupported protocol or route kinds, or a certificate
/// that did not resolve.
public struct UnservedListener: Hashable, Codable, Sendable, CustomStringConvertible {
    public var gateway: NamespacedName
    public var name: String
    public var port: Int
    /// nil: every host.
    public var hostname: String?
    /// As written in the Gateway (`HTTP`, `HTTPS`, or one Portway does not serve).
    public var `protocol`: String
    /// The condition that keeps it out, as in the listener's status: `Accepted` (False),
    /// `Conflicted` (True) or `ResolvedRefs` (False).
    public var condition: String
    /// The condition's reason: UnsupportedProtocol, HostnameConflict, ProtocolConflict,
    /// NoValidCACertificate (client certificate validation without a usable CA certificate),
    /// InvalidRouteKinds, InvalidCertificateRef or RefNotPermitted.
    public var reason: String
    public var message: String
    /// The ListenerSet the listener comes from (nil: the Gateway's own listener).
    public var listenerSet: NamespacedName?

    public init(gateway: NamespacedName, name: String, port: Int, hostname: String?, protocol: String, condition: String, reason: String, message: String) {
        self.gateway = gateway
        self.name = name
        self.port = port
        self.hostname = hostname
        self.protocol = `protocol`
        self.condition = condition
        self.reason = reason
        self.message = message
    }

    /// `Conflicted=True` or `ResolvedRefs=False`, as the status says it.
    public var conditionText: String { "\(condition)=\(condition == "Conflicted" ? "True" : "False")" }

    /// "listener NAME (port P, HOST) not served: CONDITION REASON: MESSAGE" (NAME is "NAME of
    /// ListenerSet ns/name" for a ListenerSet's listener).
    public var description: String {
        "listener \(name)\(listenerSet.map { " of ListenerSet \($0)" } ?? "") (port \(port), \(hostname ?? "any host")) not served: \(conditionText) \(reason): \(message)"
    }

    /// True when this listener's hostname takes `host` (normalized): it would serve the request if it were served.
    public func takes(host: String) -> Bool {
        hostname.map { Hostnames.matches(host: host, pattern: $0) } ?? true
    }
}

/// A problem with a Gateway API object that is not a status condition (e.g. a Gateway naming a
/// missing GatewayClass), for logs and `portway routes`.
public struct GatewayWarning: Hashable, Codable, Sendable, CustomStringConvertible {
    public var object: String
    public var message: String

    public init(object: String, message: String) {
        self.object = object
        self.message = message
    }

    public var description: String { "\(object): \(message)" }
}
