import KubeModels

/// A compiled regular expression shared by every event loop of the proxy.
///
/// `Regex<AnyRegexOutput>` is not `Sendable` only because of the `Any` in its match output; the
/// regex itself is an immutable value whose compiled program is initialized atomically, so sharing
/// it across threads is safe. Only Bool answers leave this type, never a match output.
struct CompiledPattern: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>

    /// True when the whole of `text` matches.
    func wholeMatches(_ text: String) -> Bool { (try? regex.wholeMatch(in: text)) != nil }
    /// True when some part of `text` matches.
    func containsMatch(in text: String) -> Bool { (try? regex.firstMatch(in: text)) != nil }
}

/// A rule match's conditions with their regular expressions compiled once, when the route table
/// is built, so matching a request never compiles a pattern.
public struct CompiledMatch: Sendable {
    public let spec: RouteMatchSpec
    /// The compiled RegularExpression path (nil for Exact and PathPrefix).
    let pathRegex: CompiledPattern?
    /// Parallel to `spec.headers` / `spec.queryParams`: the compiled pattern of a RegularExpression
    /// condition, nil for an Exact one.
    let headerRegexes: [CompiledPattern?]
    let queryRegexes: [CompiledPattern?]
    /// Patterns that did not compile. The builder rejects such matches (the route gets a condition),
    /// so only a table made by hand has them; such a match never applies.
    public let invalidPatterns: [String]

    public init(_ spec: RouteMatchSpec) {
        var invalid: [String] = []
        func compile(_ pattern: String) -> CompiledPattern? {
            do { return CompiledPattern(regex: try Regex(pattern)) } catch {
                invalid.append(pattern)
                return nil
            }
        }
        self.spec = spec
        pathRegex = spec.pathKind == .regularExpression ? compile(spec.path) : nil
        headerRegexes = spec.headers.map { $0.kind == .regularExpression ? compile($0.value) : nil }
        queryRegexes = spec.queryParams.map { $0.kind == .regularExpression ? compile($0.value) : nil }
        invalidPatterns = invalid
    }

    /// True when `path` (without query) satisfies the path condition.
    public func pathMatches(_ path: String) -> Bool {
        switch spec.pathKind {
        case .exact, .pathPrefix:
            return PathMatching.literalMatches(path: path, spec: spec)
        case .regularExpression:
            guard let pathRegex else { return false }
            return pathRegex.wholeMatches(path)
        }
    }

    /// True when some header (names lowercased) satisfies header condition `index`.
    func headerMatches(_ index: Int, in headers: [HTTPHeader]) -> Bool {
        let condition = spec.headers[index]
        return headers.contains { $0.name == condition.name && Self.valueMatches($0.value, condition, headerRegexes[index]) }
    }

    /// True when the first query parameter named like condition `index` satisfies it.
    func queryMatches(_ index: Int, in query: [HTTPHeader]) -> Bool {
        let condition = spec.queryParams[index]
        guard let value = query.first(where: { $0.name == condition.name })?.value else { return false }
        return Self.valueMatches(value, condition, queryRegexes[index])
    }

    private static func valueMatches(_ value: String, _ condition: ValueMatch, _ regex: CompiledPattern?) -> Bool {
        switch condition.kind {
        case .exact: return value == condition.value
        case .regularExpression:
            guard let regex else { return false }
            return regex.containsMatch(in: value)
        }
    }
}

/// A port's route table with every rule match compiled: what the proxy matches requests against.
/// Build it once per table (the proxy's router does so when the control plane hands it tables).
public struct CompiledRouteTable: Sendable {
    public let table: PortRouteTable
    /// `matches[listener][position]` compiles `table.listeners[listener].rules[position].matchSpec`.
    let matches: [[CompiledMatch]]

    public init(_ table: PortRouteTable) {
        self.table = table
        matches = table.listeners.map { $0.rules.map { CompiledMatch($0.matchSpec) } }
    }

    /// One warning per rule match whose regular expression does not compile (it never matches).
    public var problems: [GatewayWarning] {
        var out: [GatewayWarning] = []
        for (l, listener) in table.listeners.enumerated() {
            for (position, entry) in listener.rules.enumerated() {
                for pattern in matches[l][position].invalidPatterns {
                    out.append(GatewayWarning(
                        object: "HTTPRoute \(entry.route)",
                        message: "rule \(entry.rule) match \(entry.match): regular expression \"\(pattern)\" is invalid; the match never applies"))
                }
            }
        }
        return out
    }
}
