import LoadBalancer
import KubeModels

/// One HTTP request as the route matcher sees it.
public struct RouteRequest: Hashable, Sendable {
    /// The Host header (or SNI); a port and letter case do not matter.
    public var host: String
    /// The request target's path; a query string after `?` is split off into `query` when `query` is nil.
    public var path: String
    public var method: String
    /// Header fields in order; names compare case-insensitively.
    public var headers: [HTTPHeader]
    /// Query parameters in order (names case-sensitive); nil: parsed from `path`.
    public var query: [HTTPHeader]?

    public init(host: String, path: String, method: String = "GET", headers: [HTTPHeader] = [], query: [HTTPHeader]? = nil) {
        self.host = host
        self.path = path
        self.method = method
        self.headers = headers
        self.query = query
    }
}

/// A request's headers as the matcher reads them: the proxy hands its parsed headers over as they
/// are (no copy per request), `explain` a list.
public protocol RouteRequestHeaders {
    /// True when some header named `name` (given lowercase; header names compare case-insensitively)
    /// has a value satisfying `predicate`.
    func contains(name: String, where predicate: (String) -> Bool) -> Bool
}

extension Array: RouteRequestHeaders where Element == HTTPHeader {
    public func contains(name: String, where predicate: (String) -> Bool) -> Bool {
        contains { $0.name.lowercased() == name && predicate($0.value) }
    }
}

/// Where a request goes, by position: the listener serving its host (`table.listeners[listener]`)
/// and the winning rule match (`listeners[listener].rules[rule]`), nil → 404.
public struct RouteMatch: Hashable, Sendable {
    public var listener: Int?
    public var rule: Int?
}

/// How one rule match fared for a request.
public enum CandidateResult: String, Hashable, Codable, Sendable {
    case won
    case lost
    /// The rule belongs to another listener on the port than the one serving the request's host.
    case notAttached = "not-attached"
}

/// One rule match considered for a request, and why it won or lost.
public struct RouteCandidate: Hashable, Codable, Sendable {
    public var route: NamespacedName
    public var rule: Int
    public var match: Int
    public var listener: String
    public var result: CandidateResult
    public var reason: String

    public init(route: NamespacedName, rule: Int, match: Int, listener: String, result: CandidateResult, reason: String) {
        self.route = route
        self.rule = rule
        self.match = match
        self.listener = listener
        self.result = result
        self.reason = reason
    }
}

/// What the proxy does with a request: the rule chosen (with its filters and backends), or the
/// status code when nothing can serve it.
public struct RouteDecision: Hashable, Codable, Sendable {
    /// The listener serving the request's host; nil when no listener on the port takes it.
    public var listener: String?
    public var listenerHostname: String?
    /// The ListenerSet the serving listener comes from; nil for the Gateway's own listeners.
    public var listenerSet: NamespacedName?
    /// The winning rule match; nil → 404.
    public var entry: RouteTableEntry?
    public var candidates: [RouteCandidate]
    /// 200 when at least part of the weight goes to a backend with endpoints; the redirect's code
    /// (302 by default) for a RequestRedirect rule; 503 when the weight goes only to Services
    /// without endpoints; 500 when it goes only to references that failed (or no weight at all);
    /// 404 without a winning rule.
    public var code: Int

    public init(listener: String?, listenerHostname: String?, entry: RouteTableEntry?, candidates: [RouteCandidate], code: Int) {
        self.listener = listener
        self.listenerHostname = listenerHostname
        self.entry = entry
        self.candidates = candidates
        self.code = code
    }

    public var backends: [WeightedBackend] { entry?.backends ?? [] }
}

/// The one request matcher: the L7 proxy and `portway explain` both decide with it.
public enum RouteMatcher {
    /// Decides where `request`, arriving on `table`'s port, goes. Compiles the table's regular
    /// expressions for this one call; callers that match many requests keep a `CompiledRouteTable`.
    public static func decide(_ table: PortRouteTable, request: RouteRequest) -> RouteDecision {
        decide(CompiledRouteTable(table), request: request)
    }

    /// Decides where `request`, arriving on the compiled table's port, goes.
    public static func decide(_ compiled: CompiledRouteTable, request: RouteRequest) -> RouteDecision {
        let table = compiled.table
        let normalized = input(request)
        let host = normalized.host
        let listenerIndex = servingListener(table, host: host)

        var candidates: [RouteCandidate] = []
        var matching: [(position: Int, specificity: HostSpecificity)] = []
        var winner: Int?
        if let listenerIndex {
            let listener = table.listeners[listenerIndex]
            for (position, entry) in listener.rules.enumerated() {
                switch evaluate(entry, compiled.matches[listenerIndex][position], normalized) {
                case .success(let specificity):
                    matching.append((position, specificity))
                case .failure(let mismatch):
                    candidates.append(RouteCandidate(route: entry.route, rule: entry.rule, match: entry.match, listener: listener.name, result: .lost, reason: mismatch.description))
                }
            }
            // Hostname specificity first, then the table's precedence order.
            winner = matching.max { a, b in a.specificity < b.specificity || (a.specificity == b.specificity && a.position > b.position) }?.position
            for (position, specificity) in matching {
                let entry = listener.rules[position]
                if position == winner {
                    candidates.append(RouteCandidate(route: entry.route, rule: entry.rule, match: entry.match, listener: listener.name, result: .won, reason: "matches; highest precedence"))
                } else if let winner {
                    let best = listener.rules[winner]
                    let winnerSpecificity = matching.first { $0.position == winner }!.specificity
                    let reason = winnerSpecificity != specificity
                        ? "matches, but \(best.route)'s hostname is more specific for \(host)"
                        : "matches, but loses to \(best.route) rule \(best.rule): \(RoutePrecedence.reason(winner: best, loser: entry))"
                    candidates.append(RouteCandidate(route: entry.route, rule: entry.rule, match: entry.match, listener: listener.name, result: .lost, reason: reason))
                }
            }
            // Keep the table's order in the output.
            let order = Dictionary(listener.rules.enumerated().map { ("\($1.route)#\($1.rule)#\($1.match)", $0) }, uniquingKeysWith: { first, _ in first })
            candidates.sort { (order["\($0.route)#\($0.rule)#\($0.match)"] ?? 0) < (order["\($1.route)#\($1.rule)#\($1.match)"] ?? 0) }
        }
        for (i, listener) in table.listeners.enumerated() where i != listenerIndex {
            let why: String
            if listener.hostname.map({ Hostnames.matches(host: host, pattern: $0) }) ?? true {
                why = "attached to listener \(listener.name) (\(listener.hostname ?? "any host")), but listener \(table.listeners[listenerIndex!].name) is more specific for \(host)"
            } else {
                why = "attached to listener \(listener.name), whose hostname \(listener.hostname ?? "") does not match \(host)"
            }
            for entry in listener.rules {
                candidates.append(RouteCandidate(route: entry.route, rule: entry.rule, match: entry.match, listener: listener.name, result: .notAttached, reason: why))
            }
        }
        let listener = listenerIndex.map { table.listeners[$0] }
        let entry = winner.flatMap { listener?.rules[$0] }
        var decision = RouteDecision(listener: listener?.name, listenerHostname: listener?.hostname, entry: entry, candidates: candidates, code: entry.map(code(of:)) ?? 404)
        decision.listenerSet = listener?.listenerSet
        return decision
    }

    /// The status a request matched to `entry` gets when nothing goes wrong upstream.
    public static func code(of entry: RouteTableEntry) -> Int {
        if let redirect = entry.redirect { return redirect.statusCode }
        let weighted = entry.backends.filter { $0.weight > 0 }
        if weighted.contains(where: { $0.failureCode == nil }) { return 200 }
        if weighted.contains(where: { $0.failureCode == 503 }) { return 503 }
        return 500
    }

    /// Why a rule match does not apply to a request (described only when someone asks).
    enum Mismatch: Error, CustomStringConvertible {
        case hostname([String], String)
        case path(String, RouteMatchSpec)
        case method(String, String)
        case header(ValueMatch)
        case query(ValueMatch)

        var description: String {
            switch self {
            case .hostname(let names, let host): "hostnames \(names.joined(separator: ", ")) do not match \(host)"
            case .path(let path, let spec): "path \(path) does not match \(spec.pathKind.rawValue) \(spec.path)"
            case .method(let method, let wanted): "method \(method) is not \(wanted)"
            case .header(let c): "header \(c.name) does not match \(c.kind.rawValue) \(c.value)"
            case .query(let c): "query parameter \(c.name) does not match \(c.kind.rawValue) \(c.value)"
            }
        }
    }

    /// The host specificity when `entry` matches, else why not.
    /// `compiled` is `entry.matchSpec` with its regular expressions compiled.
    static func evaluate<H: RouteRequestHeaders>(_ entry: RouteTableEntry, _ compiled: CompiledMatch, _ request: MatchInput<H>) -> Result<HostSpecificity, Mismatch> {
        guard let specificity = Hostnames.specificity(host: request.host, patterns: entry.hostnames) else {
            return .failure(.hostname(entry.hostnames, request.host))
        }
        if let mismatch = conditionMismatch(compiled, request) { return .failure(mismatch) }
        return .success(specificity)
    }

    /// Why the match's path, method, header and query conditions do not hold for `request`
    /// (its hostnames aside); nil when they all hold.
    static func conditionMismatch<H: RouteRequestHeaders>(_ compiled: CompiledMatch, _ request: MatchInput<H>) -> Mismatch? {
        let spec = compiled.spec
        guard compiled.pathMatches(request.path) else { return .path(request.path, spec) }
        if let wanted = spec.method, wanted != request.method { return .method(request.method, wanted) }
        for index in spec.headers.indices where !compiled.headerMatches(index, in: request.headers) {
            return .header(spec.headers[index])
        }
        for index in spec.queryParams.indices where !compiled.queryMatches(index, in: request.query) {
            return .query(spec.queryParams[index])
        }
        return nil
    }

    /// A request as the rules see it: the host normalized, the path without query, the query
    /// parameters decoded once (only when some rule of the table looks at them).
    struct MatchInput<H: RouteRequestHeaders> {
        var host: String
        var path: String
        var method: String
        var headers: H
        var query: [HTTPHeader]

        init(host: String, path: String, query: String?, method: String, headers: H, parseQuery: Bool) {
            self.host = host
            self.path = path.isEmpty ? "/" : path
            self.method = method
            self.headers = headers
            self.query = parseQuery ? query.map(RouteMatcher.parseQuery) ?? [] : []
        }
    }

    /// `request` split as the matcher wants it (explain and tests give a path that may carry `?query`).
    static func input(_ request: RouteRequest, parseQuery: Bool = true) -> MatchInput<[HTTPHeader]> {
        var path = request.path
        var rawQuery: String?
        if let q = path.firstIndex(of: "?") {
            rawQuery = String(path[path.index(after: q)...])
            path = String(path[..<q])
        }
        var input = MatchInput(
            host: Hostnames.normalize(host: request.host), path: path, query: rawQuery, method: request.method, headers: request.headers,
            parseQuery: parseQuery && request.query == nil)
        if let query = request.query { input.query = query }
        return input
    }

    /// The listener serving `host` on `table`'s port: the first (most specific) whose hostname matches.
    static func servingListener(_ table: PortRouteTable, host: String) -> Int? {
        table.listeners.firstIndex { $0.hostname.map { Hostnames.matches(host: host, pattern: $0) } ?? true }
    }

    /// The listener that serves `host` (a Host header or a TLS SNI name) on `table`'s port: the
    /// proxy picks an HTTPS listener's certificates with it. nil when no listener takes the host.
    public static func listener(for host: String, in table: PortRouteTable) -> ListenerRouteTable? {
        servingListener(table, host: Hostnames.normalize(host: host)).map { table.listeners[$0] }
    }

    /// GatewayHTTPSListenerDetectMisdirectedRequests: true when a request for the normalized `host`
    /// came on a TLS connection whose SNI, `serverName`, chose another listener of the port (or a
    /// listener when the host has none, or none when the host has one): such a request gets 421
    /// Misdirected Request (RFC 9110 §15.5.20), never another listener's routes. The SNI chose the
    /// certificate the same way (exact hostname, longest wildcard, then no hostname).
    public static func isMisdirected(_ compiled: CompiledRouteTable, normalizedHost host: String, serverName: String) -> Bool {
        let index = compiled.index
        return index.servingListener(host: Hostnames.normalize(host: serverName)) != index.servingListener(host: host)
    }

    /// `match` for a table used once (its regular expressions compiled for this call).
    public static func match(_ table: PortRouteTable, request: RouteRequest) -> (listener: Int?, entry: RouteTableEntry?, code: Int) {
        match(CompiledRouteTable(table), request: request)
    }

    /// The same choice as `decide`, without explaining it: the listener's index, the winning rule
    /// match (nil → 404) and the code.
    public static func match(_ compiled: CompiledRouteTable, request: RouteRequest) -> (listener: Int?, entry: RouteTableEntry?, code: Int) {
        let found = match(compiled, input(request, parseQuery: compiled.matchesQuery))
        let entry = found.listener.flatMap { l in found.rule.map { compiled.table.listeners[l].rules[$0] } }
        return (found.listener, entry, entry.map(code(of:)) ?? 404)
    }

    /// The proxy's path: the same choice as `decide`, by position, for a request whose host is
    /// already normalized (`Hostnames.normalize`), with its path and raw query apart and its headers
    /// as the proxy holds them. Compiles nothing, copies no header, parses the query at most once.
    public static func match<H: RouteRequestHeaders>(
        _ compiled: CompiledRouteTable, normalizedHost: String, path: String, query: String?, method: String, headers: H
    ) -> RouteMatch {
        match(compiled, MatchInput(host: normalizedHost, path: path, query: query, method: method, headers: headers, parseQuery: compiled.matchesQuery))
    }

    /// The choice through the table's index (`RouteIndex`): the listener by hostname hash, then
    /// the rule groups serving the host, most specific hostname first; within a level of
    /// specificity the lowest position (the table's precedence order) among the candidates the
    /// path index yields whose conditions hold. Chooses exactly what `linearMatch` chooses.
    private static func match<H: RouteRequestHeaders>(_ compiled: CompiledRouteTable, _ request: MatchInput<H>) -> RouteMatch {
        let index = compiled.index
        guard let listener = index.servingListener(host: request.host) else { return RouteMatch(listener: nil, rule: nil) }
        let rules = index.rules[listener]
        var serving: [(group: Int, specificity: HostSpecificity)] = []
        rules.hosts.forEachMatch(host: request.host) { serving.append(($0, $1)) }
        if serving.count > 1 { serving.sort { $0.specificity > $1.specificity } }
        let matches = compiled.matches[listener]
        var i = 0
        while i < serving.count {
            // A more specific hostname wins over any position; at equal specificity the first position.
            let level = serving[i].specificity
            var best = Int.max
            while i < serving.count, serving[i].specificity == level {
                best = firstMatch(in: rules.groups[serving[i].group], matches, request, before: best)
                i += 1
            }
            if best != Int.max { return RouteMatch(listener: listener, rule: best) }
        }
        return RouteMatch(listener: listener, rule: nil)
    }

    /// The lowest position below `bound` in `group` whose conditions hold for `request` (`bound` if none).
    private static func firstMatch<H: RouteRequestHeaders>(in group: PathIndex, _ matches: [CompiledMatch], _ request: MatchInput<H>, before bound: Int) -> Int {
        var best = bound
        // Each list is in position order: its first match is its best, and nothing past `best` can win.
        group.forEachCandidateList(path: request.path) { positions in
            for position in positions {
                if position >= best { return }
                if conditionMismatch(matches[position], request) == nil {
                    best = position
                    return
                }
            }
        }
        let path = request.path.utf8
        for (position, literal) in group.patterns {
            if position >= best { break }
            if path.starts(with: literal.utf8), conditionMismatch(matches[position], request) == nil {
                best = position
                break
            }
        }
        return best
    }

    /// The linear scan the index replaced, kept as the model test's oracle: every rule match of
    /// the serving listener evaluated in order, the most specific hostname first.
    static func linearMatch<H: RouteRequestHeaders>(_ compiled: CompiledRouteTable, _ request: MatchInput<H>) -> RouteMatch {
        let table = compiled.table
        guard let listener = servingListener(table, host: request.host) else { return RouteMatch(listener: nil, rule: nil) }
        var best: (position: Int, specificity: HostSpecificity)?
        for (position, entry) in table.listeners[listener].rules.enumerated() {
            // Rules are in precedence order: only a more specific hostname beats an earlier match.
            if case .success(let specificity) = evaluate(entry, compiled.matches[listener][position], request),
                best.map({ $0.specificity < specificity }) ?? true
            {
                best = (position, specificity)
            }
        }
        return RouteMatch(listener: listener, rule: best?.position)
    }

    /// `linearMatch` for a `RouteRequest` (tests).
    static func linearMatch(_ compiled: CompiledRouteTable, request: RouteRequest) -> RouteMatch {
        linearMatch(compiled, input(request, parseQuery: compiled.matchesQuery))
    }

    /// `a=1&b=x%20y` → [(a, 1), (b, "x y")].
    static func parseQuery(_ text: String) -> [HTTPHeader] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return HTTPHeader(name: percentDecode(String(parts[0])), value: parts.count > 1 ? percentDecode(String(parts[1])) : "")
        }
    }

    private static func percentDecode(_ text: String) -> String {
        guard text.contains("%") || text.contains("+") else { return text }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let c = utf8.popFirst() {
            if c == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if c == UInt8(ascii: "%"), utf8.count >= 2, let v = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
