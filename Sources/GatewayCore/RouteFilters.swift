import KubeModels

// The HTTPRoute filters Portway applies, lowered once from the Gateway API objects when the route
// tables are built (`RouteFilter.lower`, the one place that names the supported types): status,
// `routes`, `explain` and the proxy all read the lowered form, so a filter accepted in status is a
// filter the proxy applies.

/// Names the route rule a request matched, for metrics and logs (e.g. `default/web/rule0`).
public struct RouteLabel: Hashable, Codable, Sendable, CustomStringConvertible {
    public var name: String
    public init(_ name: String) { self.name = name }
    /// Requests that matched no route.
    public static let none = RouteLabel("none")
    public var description: String { name }
}

/// A header name and value.
public struct HeaderField: Hashable, Codable, Sendable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// Header edits of a RequestHeaderModifier or ResponseHeaderModifier filter, applied in the order
/// set, add, remove (names compare case-insensitively).
public struct HeaderModifier: Hashable, Codable, Sendable {
    public var set: [HeaderField]
    public var add: [HeaderField]
    public var remove: [String]

    public init(set: [HeaderField] = [], add: [HeaderField] = [], remove: [String] = []) {
        self.set = set
        self.add = add
        self.remove = remove
    }

    /// A RequestHeaderModifier or ResponseHeaderModifier filter's edits.
    public init(_ filter: HTTPHeaderFilter) {
        self.init(
            set: (filter.set ?? []).map { HeaderField($0.name, $0.value) },
            add: (filter.add ?? []).map { HeaderField($0.name, $0.value) },
            remove: filter.remove ?? [])
    }

    public var isEmpty: Bool { self.set.isEmpty && self.add.isEmpty && self.remove.isEmpty }

    /// Why these edits cannot be sent, or nil: a name that is not an RFC 9110 token, a value with a
    /// control character (CR, LF, NUL or another but HTAB). Checked when the route tables are built;
    /// the proxy sends the edits without checking them again (docs/L7PROXY.md "Request validation").
    public var syntaxProblem: String? {
        for field in self.set + add {
            if !FieldSyntax.isToken(field.name) { return "header name \(String(reflecting: field.name)) is not a token (RFC 9110)" }
            if !FieldSyntax.isFieldValue(field.value) {
                return "the value of header \(field.name) holds a control character (CR, LF, NUL or another but HTAB): \(String(reflecting: field.value))"
            }
        }
        for name in remove where !FieldSyntax.isToken(name) { return "header name \(String(reflecting: name)) is not a token (RFC 9110)" }
        return nil
    }

    /// Both modifiers in order (the later one's edits applied after the earlier one's).
    public func followed(by next: HeaderModifier) -> HeaderModifier {
        HeaderModifier(set: set + next.set, add: add + next.add, remove: remove + next.remove)
    }
}

/// How a path is rewritten by URLRewrite or RequestRedirect.
public enum PathModifier: Hashable, Codable, Sendable {
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

    /// The Gateway API `type` of the modifier.
    public var typeName: String {
        switch self {
        case .replaceFullPath: "ReplaceFullPath"
        case .replacePrefixMatch: "ReplacePrefixMatch"
        }
    }
}

/// The URLRewrite filter: a new Host and/or path for the upstream request.
public struct URLRewrite: Hashable, Codable, Sendable {
    public var hostname: String?
    public var path: PathModifier?

    public init(hostname: String? = nil, path: PathModifier? = nil) {
        self.hostname = hostname
        self.path = path
    }
}

/// The RequestRedirect filter: answer with a redirect built from the request.
public struct RedirectDecision: Hashable, Codable, Sendable {
    /// The redirect codes the Gateway API allows (302 is the default).
    public static let statusCodes: Set<Int> = [301, 302, 303, 307, 308]

    public var scheme: String?
    public var hostname: String?
    public var port: Int?
    public var path: PathModifier?
    /// One of `statusCodes`.
    public var statusCode: Int
    public var route: RouteLabel
    /// The port of the Gateway listener the request came through (set when the route tables are
    /// built, per listener port): a redirect without port and scheme keeps it. Never the port the
    /// connection arrived on, which is a NodePort or the proxy port.
    public var listenerPort: Int?

    public init(
        scheme: String? = nil, hostname: String? = nil, port: Int? = nil, path: PathModifier? = nil,
        statusCode: Int = 302, route: RouteLabel = .none, listenerPort: Int? = nil
    ) {
        self.scheme = scheme
        self.hostname = hostname
        self.port = port
        self.path = path
        self.statusCode = statusCode
        self.route = route
        self.listenerPort = listenerPort
    }

    /// The Location header for a request, following the Gateway API rules: the scheme and host default
    /// to the request's; the port is the explicit one, else the scheme's well-known port when the scheme
    /// is set, else the Gateway listener's port (`listenerPort`; the request scheme's well-known port
    /// when unknown); well-known ports (80 for http, 443 for https) are omitted.
    public func location(requestScheme: String, requestHost: String, path: String, query: String?) -> String {
        let scheme = self.scheme ?? requestScheme
        let host = hostname ?? requestHost
        let port: Int
        if let explicit = self.port {
            port = explicit
        } else if self.scheme != nil {
            port = scheme == "https" ? 443 : 80
        } else {
            port = listenerPort ?? (scheme == "https" ? 443 : 80)
        }
        let wellKnown = (scheme == "http" && port == 80) || (scheme == "https" && port == 443)
        let authorityHost = host.contains(":") ? "[\(host)]" : host
        let authority = wellKnown ? authorityHost : "\(authorityHost):\(port)"
        let newPath = self.path.map { $0.apply(to: path) } ?? path
        let suffix = query.map { "?\($0)" } ?? ""
        return "\(scheme)://\(authority)\(newPath)\(suffix)"
    }
}

/// The RequestMirror filter: a copy of `numerator / denominator` of the requests goes to `backend`
/// (one of its endpoints), its answer ignored.
public struct RequestMirror: Hashable, Codable, Sendable {
    /// The mirror's backendRef; the builder resolves it (a `failure` means it is not configured).
    public var backend: WeightedBackend
    public var numerator: Int
    public var denominator: Int

    public init(backend: WeightedBackend, numerator: Int = 100, denominator: Int = 100) {
        self.backend = backend
        self.numerator = numerator
        self.denominator = denominator
    }
}

/// The CORS filter: a preflight (OPTIONS with Origin and Access-Control-Request-Method) is
/// answered by the proxy; a request from an allowed Origin gets the CORS headers on its response.
public struct CORSPolicy: Hashable, Codable, Sendable {
    /// Origins as written (`https://www.example.com`, `https://*.example.com`, `*`).
    public var allowOrigins: [String]
    public var allowCredentials: Bool
    public var allowMethods: [String]
    public var allowHeaders: [String]
    public var exposeHeaders: [String]
    /// Seconds a browser may cache the preflight answer (5 when unset, as the spec says).
    public var maxAge: Int

    public init(
        allowOrigins: [String] = [], allowCredentials: Bool = false, allowMethods: [String] = [], allowHeaders: [String] = [],
        exposeHeaders: [String] = [], maxAge: Int = 5
    ) {
        self.allowOrigins = allowOrigins
        self.allowCredentials = allowCredentials
        self.allowMethods = allowMethods
        self.allowHeaders = allowHeaders
        self.exposeHeaders = exposeHeaders
        self.maxAge = maxAge
    }

    /// Whether `origin` (the request's Origin header) is allowed: `*`, an exact origin (ASCII case
    /// ignored), or a pattern whose `*` stands for one or more characters (`https://*.bar.com`
    /// takes `https://www.bar.com` and `https://a.www.bar.com`).
    public func allows(origin: String) -> Bool {
        let origin = origin.lowercased()
        for allowed in allowOrigins {
            let pattern = allowed.lowercased()
            if pattern == "*" || pattern == origin { return true }
            guard let star = pattern.firstIndex(of: "*") else { continue }
            let prefix = pattern[..<star], suffix = pattern[pattern.index(after: star)...]
            if origin.count > prefix.count + suffix.count && origin.hasPrefix(prefix) && origin.hasSuffix(suffix) { return true }
        }
        return false
    }

    /// The headers of the proxy's answer to a preflight from an allowed `origin` asking for
    /// `method` and `headers` (the Access-Control-Request-* values). A wildcard method or header
    /// list answers with what was asked (a literal `*` means nothing to a browser sending
    /// credentials); the origin is always echoed.
    public func preflightHeaders(origin: String, method: String, headers: String?) -> [HeaderField] {
        var out = [HeaderField("access-control-allow-origin", origin)]
        if allowCredentials { out.append(HeaderField("access-control-allow-credentials", "true")) }
        let methods = allowMethods.contains("*") ? method : allowMethods.joined(separator: ", ")
        if !methods.isEmpty { out.append(HeaderField("access-control-allow-methods", methods)) }
        let allowed = allowHeaders.contains("*") ? (headers ?? "") : allowHeaders.joined(separator: ", ")
        if !allowed.isEmpty { out.append(HeaderField("access-control-allow-headers", allowed)) }
        if !exposeHeaders.isEmpty { out.append(HeaderField("access-control-expose-headers", exposeHeaders.joined(separator: ", "))) }
        out.append(HeaderField("access-control-max-age", String(maxAge)))
        out.append(HeaderField("vary", "Origin"))
        return out
    }

    /// The headers added to the response of a request from an allowed `origin`.
    public func responseHeaders(origin: String) -> [HeaderField] {
        var out = [HeaderField("access-control-allow-origin", origin)]
        if allowCredentials { out.append(HeaderField("access-control-allow-credentials", "true")) }
        if !exposeHeaders.isEmpty { out.append(HeaderField("access-control-expose-headers", exposeHeaders.joined(separator: ", "))) }
        out.append(HeaderField("vary", "Origin"))
        return out
    }
}

/// One filter of a rule (or of a backendRef), as Portway applies it.
public enum RouteFilter: Hashable, Codable, Sendable {
    case requestHeaderModifier(HeaderModifier)
    case responseHeaderModifier(HeaderModifier)
    /// Answered by the proxy (the route label is set when the rule's decision is made).
    case requestRedirect(RedirectDecision)
    case urlRewrite(URLRewrite)
    /// A copy of the request to another backend (several per rule allowed).
    case requestMirror(RequestMirror)
    /// Preflights answered by the proxy, CORS headers on allowed origins' responses.
    case cors(CORSPolicy)

    /// Where a filter stands: a backendRef takes only the header modifiers.
    public enum Place: Sendable {
        case rule
        case backendRef
    }

    /// Why a filter cannot be applied: its route is `Accepted=False/UnsupportedValue` with the message.
    public struct Unsupported: Error, Hashable, Sendable {
        public var message: String
    }

    /// The Gateway API `type` of the filter.
    public var typeName: String {
        switch self {
        case .requestHeaderModifier: "RequestHeaderModifier"
        case .responseHeaderModifier: "ResponseHeaderModifier"
        case .requestRedirect: "RequestRedirect"
        case .urlRewrite: "URLRewrite"
        case .requestMirror: "RequestMirror"
        case .cors: "CORS"
        }
    }

    /// Lowers one Gateway API filter for a match whose PathPrefix is `matchedPrefix` (nil: the match
    /// is not a PathPrefix match). The only place that decides what Portway supports: a type not
    /// handled here, a filter without its settings, or a ReplacePrefixMatch on a match without a
    /// path prefix is refused (never skipped: what status accepts, the proxy applies).
    public static func lower(_ filter: HTTPRouteFilter, at place: Place, matchedPrefix: String?) -> Result<RouteFilter, Unsupported> {
        func missing() -> Result<RouteFilter, Unsupported> {
            .failure(Unsupported(message: "filter type \(filter.type) has no \(filter.type.prefix(1).lowercased() + filter.type.dropFirst()) settings"))
        }
        switch (filter.type, place) {
        case ("RequestHeaderModifier", _):
            guard let modifier = filter.requestHeaderModifier.map(HeaderModifier.init) else { return missing() }
            if let problem = modifier.syntaxProblem { return .failure(Unsupported(message: "RequestHeaderModifier: \(problem)")) }
            return .success(.requestHeaderModifier(modifier))
        case ("ResponseHeaderModifier", _):
            guard let modifier = filter.responseHeaderModifier.map(HeaderModifier.init) else { return missing() }
            if let problem = modifier.syntaxProblem { return .failure(Unsupported(message: "ResponseHeaderModifier: \(problem)")) }
            return .success(.responseHeaderModifier(modifier))
        case ("URLRewrite", .rule):
            guard let rewrite = filter.urlRewrite else { return missing() }
            if let problem = hostnameProblem(rewrite.hostname) { return .failure(Unsupported(message: "URLRewrite \(problem)")) }
            return path(rewrite.path, matchedPrefix: matchedPrefix).map { .urlRewrite(URLRewrite(hostname: rewrite.hostname, path: $0)) }
        case ("RequestRedirect", .rule):
            guard let redirect = filter.requestRedirect else { return missing() }
            let statusCode = redirect.statusCode ?? 302
            guard RedirectDecision.statusCodes.contains(statusCode) else {
                return .failure(Unsupported(message: "RequestRedirect statusCode \(statusCode) is not supported (301, 302, 303, 307, 308 are)"))
            }
            if let scheme = redirect.scheme, scheme != "http" && scheme != "https" {
                return .failure(Unsupported(message: "RequestRedirect scheme \(scheme) is not supported (http and https are)"))
            }
            if let port = redirect.port, !(1...65535).contains(port) {
                return .failure(Unsupported(message: "RequestRedirect port \(port) is out of range"))
            }
            if let problem = hostnameProblem(redirect.hostname) { return .failure(Unsupported(message: "RequestRedirect \(problem)")) }
            return path(redirect.path, matchedPrefix: matchedPrefix).map {
                .requestRedirect(RedirectDecision(
                    scheme: redirect.scheme, hostname: redirect.hostname, port: redirect.port, path: $0, statusCode: statusCode))
            }
        case ("RequestMirror", .rule):
            guard let mirror = filter.requestMirror else { return missing() }
            var numerator = 100
            var denominator = 100
            switch (mirror.percent, mirror.fraction) {
            case (.some, .some):
                return .failure(Unsupported(message: "RequestMirror sets both percent and fraction"))
            case (.some(let percent), nil):
                guard (0...100).contains(percent) else { return .failure(Unsupported(message: "RequestMirror percent \(percent) is not within 0-100")) }
                numerator = percent
            case (nil, .some(let fraction)):
                let over = fraction.denominator ?? 100
                guard over > 0, (0...over).contains(fraction.numerator) else {
                    return .failure(Unsupported(message: "RequestMirror fraction \(fraction.numerator)/\(over) is not within 0-1"))
                }
                (numerator, denominator) = (fraction.numerator, over)
            case (nil, nil):
                break
            }
            // The builder resolves the reference (`GatewayState.build`).
            let ref = mirror.backendRef
            let backend = WeightedBackend(weight: 1, reference: NamespacedName(namespace: ref.namespace ?? "", name: ref.name), port: ref.port)
            return .success(.requestMirror(RequestMirror(backend: backend, numerator: numerator, denominator: denominator)))
        case ("CORS", .rule):
            guard let cors = filter.cors else { return .failure(Unsupported(message: "filter type CORS has no cors settings")) }
            let maxAge = cors.maxAge ?? 5
            guard maxAge >= 1 else { return .failure(Unsupported(message: "CORS maxAge \(maxAge) is below 1")) }
            // Sent joined in Access-Control-Allow-Methods/-Headers and -Expose-Headers: each must be a token.
            for (field, values) in [("allowMethods", cors.allowMethods), ("allowHeaders", cors.allowHeaders), ("exposeHeaders", cors.exposeHeaders)] {
                if let bad = (values ?? []).first(where: { !FieldSyntax.isToken($0) }) {
                    return .failure(Unsupported(message: "CORS \(field) \(String(reflecting: bad)) is not a token (RFC 9110)"))
                }
            }
            return .success(.cors(CORSPolicy(
                allowOrigins: cors.allowOrigins ?? [], allowCredentials: cors.allowCredentials ?? false, allowMethods: cors.allowMethods ?? [],
                allowHeaders: cors.allowHeaders ?? [], exposeHeaders: cors.exposeHeaders ?? [], maxAge: maxAge)))
        case (_, .rule):
            return .failure(Unsupported(message: "filter type \(filter.type) is not supported"))
        case (_, .backendRef):
            return .failure(Unsupported(message: "filter type \(filter.type) is not supported on a backendRef"))
        }
    }

    /// Why a URLRewrite or RequestRedirect hostname cannot be sent (in Host or Location), or nil.
    private static func hostnameProblem(_ hostname: String?) -> String? {
        guard let hostname, !FieldSyntax.isPreciseHostname(hostname) else { return nil }
        return "hostname \(String(reflecting: hostname)) is not a hostname (RFC 1123 labels)"
    }

    private static func path(_ modifier: HTTPPathModifier?, matchedPrefix: String?) -> Result<PathModifier?, Unsupported> {
        guard let modifier else { return .success(nil) }
        // Sent in the request line or in Location: characters a path may hold, no query or fragment.
        func pathProblem(_ field: String, _ value: String) -> Unsupported? {
            FieldSyntax.isPathCharacters(value) ? nil
                : Unsupported(message: "\(field) \(String(reflecting: value)) holds characters a path may not (RFC 3986: pchar, \"/\", %XX)")
        }
        switch modifier.type {
        case "ReplaceFullPath":
            guard let full = modifier.replaceFullPath else { return .failure(Unsupported(message: "ReplaceFullPath without replaceFullPath")) }
            if let problem = pathProblem("replaceFullPath", full) { return .failure(problem) }
            guard full.utf8.first == UInt8(ascii: "/") else {
                return .failure(Unsupported(message: "replaceFullPath \(String(reflecting: full)) does not start with /"))
            }
            return .success(.replaceFullPath(full))
        case "ReplacePrefixMatch":
            guard let replacement = modifier.replacePrefixMatch else {
                return .failure(Unsupported(message: "ReplacePrefixMatch without replacePrefixMatch"))
            }
            if let problem = pathProblem("replacePrefixMatch", replacement) { return .failure(problem) }
            guard let matchedPrefix else {
                return .failure(Unsupported(message: "ReplacePrefixMatch needs a PathPrefix match"))
            }
            return .success(.replacePrefixMatch(matchedPrefix: matchedPrefix, replacement: replacement))
        default:
            return .failure(Unsupported(message: "path modifier type \(modifier.type) is not supported"))
        }
    }
}
