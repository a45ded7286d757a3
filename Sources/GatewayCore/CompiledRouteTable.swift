import LoadBalancer
import KubeModels
import LinearRegex

/// A regular expression of a rule match that the engine refused, and why.
public struct RejectedPattern: Hashable, Sendable {
    public var pattern: String
    /// What the engine said (`LinearRegexError.description`: the construct and its offset).
    public var reason: String
}

/// The Gateway API's RegularExpression matches: one engine, one syntax, one meaning for the
/// builder's validation, the proxy and `portway explain`.
///
/// Patterns are RE2 syntax matched by `LinearRegex` (linear time in the request, no backtracking),
/// as Envoy (and so Envoy Gateway, Istio, Cilium, Contour) matches them. The whole value must
/// match, for a path as for a header or query parameter value — Envoy's `safe_regex` semantics
/// ("the rule will not match if only a subsequence of the value matches"); the spec leaves the
/// dialect and this choice to the implementation.
public enum GatewayRegex {
    /// Compiles `pattern`, or says why it is refused (unsupported construct, syntax, limits).
    public static func compile(_ pattern: String) -> Result<LinearRegex, LinearRegexError> {
        Result { () throws(LinearRegexError) in try LinearRegex(pattern) }
    }
}

/// A rule match's conditions with their regular expressions compiled once, when the route table
/// is built, so matching a request never compiles a pattern.
public struct CompiledMatch: Sendable {
    public let spec: RouteMatchSpec
    /// The compiled RegularExpression path (nil for Exact and PathPrefix).
    let pathRegex: LinearRegex?
    /// Parallel to `spec.headers` / `spec.queryParams`: the compiled pattern of a RegularExpression
    /// condition, nil for an Exact one.
    let headerRegexes: [LinearRegex?]
    let queryRegexes: [LinearRegex?]
    /// Parallel to `spec.headers`: the names lowercased once (header names compare case-insensitively).
    let headerNames: [String]
    /// Patterns the engine refused. The builder rejects such matches (the route gets a condition),
    /// so only a table made by hand has them; such a match never applies.
    public let invalidPatterns: [RejectedPattern]

    public init(_ spec: RouteMatchSpec) {
        var invalid: [RejectedPattern] = []
        func compile(_ pattern: String) -> LinearRegex? {
            switch GatewayRegex.compile(pattern) {
            case .success(let regex): return regex
            case .failure(let error):
                invalid.append(RejectedPattern(pattern: pattern, reason: error.description))
                return nil
            }
        }
        self.spec = spec
        pathRegex = spec.pathKind == .regularExpression ? compile(spec.path) : nil
        headerRegexes = spec.headers.map { $0.kind == .regularExpression ? compile($0.value) : nil }
        queryRegexes = spec.queryParams.map { $0.kind == .regularExpression ? compile($0.value) : nil }
        headerNames = spec.headers.map { $0.name.lowercased() }
        invalidPatterns = invalid
    }

    /// True when `path` (without query) satisfies the path condition.
    public func pathMatches(_ path: String) -> Bool {
        switch spec.pathKind {
        case .exact, .pathPrefix:
            return PathMatching.literalMatches(path: path, spec: spec)
        case .regularExpression:
            guard let pathRegex else { return false }
            return pathRegex.wholeMatch(path)
        }
    }

    /// True when some header satisfies header condition `index`.
    func headerMatches<H: RouteRequestHeaders>(_ index: Int, in headers: H) -> Bool {
        let condition = spec.headers[index]
        let regex = headerRegexes[index]
        return headers.contains(name: headerNames[index]) { Self.valueMatches($0, condition, regex) }
    }

    /// True when the first query parameter named like condition `index` satisfies it.
    func queryMatches(_ index: Int, in query: [HTTPHeader]) -> Bool {
        let condition = spec.queryParams[index]
        guard let value = query.first(where: { $0.name == condition.name })?.value else { return false }
        return Self.valueMatches(value, condition, queryRegexes[index])
    }

    private static func valueMatches(_ value: String, _ condition: ValueMatch, _ regex: LinearRegex?) -> Bool {
        switch condition.kind {
        case .exact: return value == condition.value
        case .regularExpression:
            // The whole value, as Envoy's safe_regex (see `GatewayRegex`).
            guard let regex else { return false }
            return regex.wholeMatch(value)
        }
    }
}

/// A port's route table with every rule match compiled: what the proxy matches requests against.
/// Build it once per table (the proxy's router does so when the control plane hands it tables).
public struct CompiledRouteTable: Sendable {
    public let table: PortRouteTable
    /// `matches[listener][position]` compiles `table.listeners[listener].rules[position].matchSpec`.
    let matches: [[CompiledMatch]]
    /// Whether any rule looks at query parameters (if none does, a request's query is not parsed).
    let matchesQuery: Bool
    /// Which listener and rule matches a request can match, by its host and path (`RouteIndex`).
    let index: RouteIndex

    public init(_ table: PortRouteTable) {
        self.table = table
        matches = table.listeners.map { $0.rules.map { CompiledMatch($0.matchSpec) } }
        matchesQuery = table.listeners.contains { $0.rules.contains { !$0.matchSpec.queryParams.isEmpty } }
        index = RouteIndex(table)
    }

    /// One warning per regular expression the engine refused (its match never applies).
    public var problems: [GatewayWarning] {
        var out: [GatewayWarning] = []
        for (l, listener) in table.listeners.enumerated() {
            for (position, entry) in listener.rules.enumerated() {
                for rejected in matches[l][position].invalidPatterns {
                    out.append(GatewayWarning(
                        object: "HTTPRoute \(entry.route)",
                        message: "rule \(entry.rule) match \(entry.match): regular expression \"\(rejected.pattern)\" is rejected (\(rejected.reason)); the match never applies"))
                }
            }
        }
        return out
    }
}
