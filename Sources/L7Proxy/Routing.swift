import GatewayCore
import NIOHTTP1

/// What the proxy knows about one request when it asks the route table where it goes.
///
/// Built once per request from the request head, before any header is added or rewritten.
public struct RoutingRequest: Sendable {
    /// The proxy port whose listener accepted the connection: one per (Gateway, listener port).
    public var proxyPort: UInt16
    /// The Host header (or the request target's authority), lowercased, without a port.
    public var host: String
    /// The path of the request target, without the query (always starts with `/`, or is `*`).
    public var path: String
    /// The raw query string after `?`, or nil when the target has none.
    public var query: String?
    /// The request method, e.g. `GET`.
    public var method: String
    /// The request headers as the client sent them.
    public var headers: HTTPHeaders
    /// The client's address as the proxy sees it (the real client under the transparent redirect).
    public var clientAddress: String?
    /// True when the request came over TLS terminated by the proxy.
    public var isTLS: Bool
    /// The server name (SNI) of the TLS connection's ClientHello, when it had one.
    public var serverName: String?

    public init(
        proxyPort: UInt16, host: String, path: String, query: String? = nil, method: String,
        headers: HTTPHeaders = [:], clientAddress: String? = nil, isTLS: Bool = false, serverName: String? = nil
    ) {
        self.serverName = serverName
        self.proxyPort = proxyPort
        self.host = host
        self.path = path
        self.query = query
        self.method = method
        self.headers = headers
        self.clientAddress = clientAddress
        self.isTLS = isTLS
    }
}

/// One upstream address the proxy can connect to.
public struct UpstreamEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// An IP address literal (IPv4 or IPv6) or a host name resolvable by the system.
    public var host: String
    public var port: Int
    /// TLS to the endpoint (its backend's BackendTLSPolicy); nil: plain HTTP. Part of the pool's
    /// key, so a connection is reused only with the TLS it was opened with.
    public var tls: UpstreamTLS?

    public init(host: String, port: Int, tls: UpstreamTLS? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One weighted choice of a forwarding rule: a backendRef's endpoints, or a fixed answer for its share.
public struct WeightedUpstream: Sendable {
    public enum Target: Sendable {
        /// Ready endpoints of the backend (terminating ones only when none is ready); empty means 503.
        case endpoints([UpstreamEndpoint])
        /// A backendRef that does not resolve or is not permitted: its share of the traffic gets this status (500).
        case status(Int)
    }

    public var weight: UInt32
    public var target: Target
    /// The backendRef's own RequestHeaderModifier, applied after the rule's when this backend is chosen.
    public var requestHeaders: HeaderModifier
    /// The backendRef's own ResponseHeaderModifier, applied after the rule's when this backend is chosen.
    public var responseHeaders: HeaderModifier

    public init(weight: UInt32, target: Target, requestHeaders: HeaderModifier = .init(), responseHeaders: HeaderModifier = .init()) {
        self.weight = weight
        self.target = target
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
    }

    public static func endpoints(_ endpoints: [UpstreamEndpoint], weight: UInt32 = 1) -> WeightedUpstream {
        WeightedUpstream(weight: weight, target: .endpoints(endpoints))
    }
}

extension HeaderModifier {
    /// Applies the edits to `headers` (names compare case-insensitively).
    public func apply(to headers: inout HTTPHeaders) {
        for field in self.set { headers.replaceOrAdd(name: field.name, value: field.value) }
        for field in add { headers.add(name: field.name, value: field.value) }
        for name in remove { headers.remove(name: name) }
    }
}

/// A RequestMirror of a forwarding rule: `numerator / denominator` of its requests are copied to
/// one endpoint of `upstream` (the answer ignored).
public struct MirrorTarget: Sendable {
    public var upstream: WeightedUpstream
    public var numerator: UInt64
    public var denominator: UInt64

    public init(upstream: WeightedUpstream, numerator: UInt64 = 100, denominator: UInt64 = 100) {
        self.upstream = upstream
        self.numerator = numerator
        self.denominator = denominator
    }

    /// Whether this request is mirrored: one draw from the proxy's random source, none at 0 or 100%.
    public func fires(random: (UInt64) -> UInt64) -> Bool {
        if numerator == 0 || denominator == 0 { return false }
        if numerator >= denominator { return true }
        return random(denominator) < numerator
    }
}

/// Forward the request to one of the weighted backends.
public struct ForwardDecision: Sendable {
    public var backends: [WeightedUpstream]
    public var requestHeaders: HeaderModifier
    public var responseHeaders: HeaderModifier
    public var rewrite: URLRewrite?
    /// The Gateway API `timeouts.request` of the rule: from the request head to the end of the
    /// response (504 before a response head, else the connection is closed). nil: the proxy's
    /// `requestTimeout`; 0: none at all ("0s" disables it).
    public var requestTimeoutSeconds: Double?
    /// The Gateway API `timeouts.backendRequest` of the rule: each upstream attempt, from its
    /// connect to the end of the backend's response (504 before a response head). nil or 0: none.
    public var backendRequestTimeoutSeconds: Double?
    /// The rule's RequestMirror filters (the unresolved ones left out).
    public var mirrors: [MirrorTarget] = []
    /// The rule's `retry`; nil: the proxy's own single retry of a failed connect.
    public var retry: RouteRetry?
    /// The rule's CORS filter: preflights answered by the proxy, headers on allowed origins' responses.
    public var cors: CORSPolicy?
    public var route: RouteLabel

    public init(
        backends: [WeightedUpstream], requestHeaders: HeaderModifier = .init(),
        responseHeaders: HeaderModifier = .init(), rewrite: URLRewrite? = nil,
        requestTimeoutSeconds: Double? = nil, backendRequestTimeoutSeconds: Double? = nil, route: RouteLabel = .none
    ) {
        self.backends = backends
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
        self.rewrite = rewrite
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.backendRequestTimeoutSeconds = backendRequestTimeoutSeconds
        self.route = route
    }
}

/// What the route table says to do with one request.
public enum RoutingDecision: Sendable {
    case forward(ForwardDecision)
    case redirect(RedirectDecision)
    /// Answer directly with this status: 404 when no route matches, 500/503 as the table says.
    case respond(status: Int, route: RouteLabel)

    /// The route label for metrics.
    public var route: RouteLabel {
        switch self {
        case .forward(let f): return f.route
        case .redirect(let r): return r.route
        case .respond(_, let route): return route
        }
    }
}

/// The route table the proxy consults once per request. Implementations must be pure and fast: the
/// proxy calls `route` on its event loop for every request head.
public protocol RequestRouter: Sendable {
    func route(_ request: RoutingRequest) -> RoutingDecision
}

/// A router that answers every request the same way (useful as the empty table: 404 for everything).
public struct FixedRouter: RequestRouter {
    public var decision: RoutingDecision
    public init(_ decision: RoutingDecision) { self.decision = decision }
    public func route(_ request: RoutingRequest) -> RoutingDecision { decision }
    /// The table before the control plane has said anything: every request gets 404.
    public static let notFound = FixedRouter(.respond(status: 404, route: .none))
}
