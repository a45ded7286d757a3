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

    public init(
        proxyPort: UInt16, host: String, path: String, query: String? = nil, method: String,
        headers: HTTPHeaders = [:], clientAddress: String? = nil, isTLS: Bool = false
    ) {
        self.proxyPort = proxyPort
        self.host = host
        self.path = path
        self.query = query
        self.method = method
        self.headers = headers
        self.clientAddress = clientAddress
        self.isTLS = isTLS
    }

    /// The query's `name=value` pairs in order (values not percent-decoded, as Gateway API compares them).
    public var queryParameters: [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            if let eq = pair.firstIndex(of: "=") {
                return (String(pair[..<eq]), String(pair[pair.index(after: eq)...]))
            }
            return (String(pair), "")
        }
    }
}

/// One upstream address the proxy can connect to.
public struct UpstreamEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// An IP address literal (IPv4 or IPv6) or a host name resolvable by the system.
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
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

/// Header edits of a RequestHeaderModifier or ResponseHeaderModifier filter, applied in the order set, add, remove.
public struct HeaderModifier: Sendable, Equatable {
    public var set: [HeaderField]
    public var add: [HeaderField]
    public var remove: [String]

    public init(set: [HeaderField] = [], add: [HeaderField] = [], remove: [String] = []) {
        self.set = set
        self.add = add
        self.remove = remove
    }

    public var isEmpty: Bool { self.set.isEmpty && self.add.isEmpty && self.remove.isEmpty }

    /// Applies the edits to `headers` (names compare case-insensitively).
    public func apply(to headers: inout HTTPHeaders) {
        for field in self.set { headers.replaceOrAdd(name: field.name, value: field.value) }
        for field in add { headers.add(name: field.name, value: field.value) }
        for name in remove { headers.remove(name: name) }
    }
}

/// A header name and value.
public struct HeaderField: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// How a path is rewritten by URLRewrite or RequestRedirect.
public enum PathModifier: Sendable, Equatable {
    /// Replace the whole path.
    case replaceFullPath(String)
    /// Replace the prefix the rule matched (a PathPrefix match) by `replacement`, keeping the rest.
    case replacePrefixMatch(matchedPrefix: String, replacement: String)

    /// The new path for `path`, as the Gateway API specifies (segment-wise prefix replacement).
    public func apply(to path: String) -> String {
        switch self {
        case .replaceFullPath(let full):
            return full
        case .replacePrefixMatch(let prefix, let replacement):
            // Compare without trailing slashes: "/" becomes "", so the rest keeps its leading "/".
            let matched = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
            guard path.hasPrefix(matched) else { return path }
            let rest = path.dropFirst(matched.count)
            let base = replacement.hasSuffix("/") ? String(replacement.dropLast()) : replacement
            let result = base + rest
            if result.isEmpty { return "/" }
            return result.hasPrefix("/") ? result : "/" + result
        }
    }
}

/// The URLRewrite filter: a new Host and/or path for the upstream request.
public struct URLRewrite: Sendable, Equatable {
    public var hostname: String?
    public var path: PathModifier?

    public init(hostname: String? = nil, path: PathModifier? = nil) {
        self.hostname = hostname
        self.path = path
    }
}

/// Names the route rule a request matched, for metrics and logs (e.g. `default/web/rule0`).
public struct RouteLabel: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public init(_ name: String) { self.name = name }
    /// Requests that matched no route.
    public static let none = RouteLabel("none")
    public var description: String { name }
}

/// Forward the request to one of the weighted backends.
public struct ForwardDecision: Sendable {
    public var backends: [WeightedUpstream]
    public var requestHeaders: HeaderModifier
    public var responseHeaders: HeaderModifier
    public var rewrite: URLRewrite?
    /// The Gateway API `timeouts.request` of the rule: from the request head to the end of the response.
    public var requestTimeoutSeconds: Double?
    public var route: RouteLabel

    public init(
        backends: [WeightedUpstream], requestHeaders: HeaderModifier = .init(),
        responseHeaders: HeaderModifier = .init(), rewrite: URLRewrite? = nil,
        requestTimeoutSeconds: Double? = nil, route: RouteLabel = .none
    ) {
        self.backends = backends
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
        self.rewrite = rewrite
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.route = route
    }
}

/// The RequestRedirect filter: answer with a redirect built from the request.
public struct RedirectDecision: Sendable, Equatable {
    public var scheme: String?
    public var hostname: String?
    public var port: Int?
    public var path: PathModifier?
    /// 301 or 302 (the Gateway API default).
    public var statusCode: Int
    public var route: RouteLabel

    public init(
        scheme: String? = nil, hostname: String? = nil, port: Int? = nil, path: PathModifier? = nil,
        statusCode: Int = 302, route: RouteLabel = .none
    ) {
        self.scheme = scheme
        self.hostname = hostname
        self.port = port
        self.path = path
        self.statusCode = statusCode
        self.route = route
    }

    /// The Location header for a request, following the Gateway API rules: the scheme and host default
    /// to the request's; the port is the explicit one, else the scheme's well-known port when the scheme
    /// is set, else the listener port; well-known ports (80 for http, 443 for https) are omitted.
    public func location(requestScheme: String, requestHost: String, listenerPort: Int, path: String, query: String?) -> String {
        let scheme = self.scheme ?? requestScheme
        let host = hostname ?? requestHost
        let port: Int
        if let explicit = self.port {
            port = explicit
        } else if self.scheme != nil {
            port = scheme == "https" ? 443 : 80
        } else {
            port = listenerPort
        }
        let wellKnown = (scheme == "http" && port == 80) || (scheme == "https" && port == 443)
        let authorityHost = host.contains(":") ? "[\(host)]" : host
        let authority = wellKnown ? authorityHost : "\(authorityHost):\(port)"
        let newPath = self.path.map { $0.apply(to: path) } ?? path
        let suffix = query.map { "?\($0)" } ?? ""
        return "\(scheme)://\(authority)\(newPath)\(suffix)"
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
