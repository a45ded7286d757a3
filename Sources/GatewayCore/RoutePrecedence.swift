/// The Gateway API's order among the matches of all routes on one listener (hostname specificity
/// comes first and depends on the request, so `RouteMatcher` applies it on top of this order).
public enum RoutePrecedence {
    /// True when `a` takes precedence over `b`: an Exact path, then a RegularExpression path
    /// (longer pattern first; regular expressions are implementation-specific in the spec, and
    /// Portway ranks them between Exact and PathPrefix, as Envoy-based gateways do), then the
    /// longest PathPrefix; then a method match; then more header matches; then more query
    /// parameter matches; then the oldest route (creationTimestamp); then the route's
    /// namespace/name; then rule order and match order.
    public static func before(_ a: RouteTableEntry, _ b: RouteTableEntry) -> Bool {
        let (x, y) = (a.matchSpec, b.matchSpec)
        if rank(x.pathKind) != rank(y.pathKind) { return rank(x.pathKind) < rank(y.pathKind) }
        if x.pathKind != .exact, pathLength(x) != pathLength(y) { return pathLength(x) > pathLength(y) }
        if (x.method != nil) != (y.method != nil) { return x.method != nil }
        if x.headers.count != y.headers.count { return x.headers.count > y.headers.count }
        if x.queryParams.count != y.queryParams.count { return x.queryParams.count > y.queryParams.count }
        if a.routeCreated != b.routeCreated {
            // An unknown creation time sorts after every known one.
            if a.routeCreated.isEmpty || b.routeCreated.isEmpty { return b.routeCreated.isEmpty }
            return a.routeCreated < b.routeCreated
        }
        if a.route != b.route { return a.route < b.route }
        return (a.rule, a.match) < (b.rule, b.match)
    }

    /// Why `winner` beat `loser`, as `portway explain` says it (nil when they are the same entry).
    public static func reason(winner: RouteTableEntry, loser: RouteTableEntry) -> String {
        let (x, y) = (winner.matchSpec, loser.matchSpec)
        if rank(x.pathKind) != rank(y.pathKind) {
            return "\(x.pathKind.rawValue) path match beats \(y.pathKind.rawValue)"
        }
        if x.pathKind != .exact, pathLength(x) != pathLength(y) {
            return "longer path \(x.pathKind == .pathPrefix ? "prefix" : "pattern") \"\(x.path)\" beats \"\(y.path)\""
        }
        if (x.method != nil) != (y.method != nil) { return "a method match beats none" }
        if x.headers.count != y.headers.count { return "\(x.headers.count) header matches beat \(y.headers.count)" }
        if x.queryParams.count != y.queryParams.count { return "\(x.queryParams.count) query parameter matches beat \(y.queryParams.count)" }
        if winner.routeCreated != loser.routeCreated {
            return "route \(winner.route) is older (created \(winner.routeCreated.isEmpty ? "?" : winner.routeCreated), the other \(loser.routeCreated.isEmpty ? "?" : loser.routeCreated))"
        }
        if winner.route != loser.route { return "same age: \(winner.route) comes first by namespace/name" }
        return "same route: rule \(winner.rule) match \(winner.match) comes first"
    }

    /// Listener order on one port: exact hostnames, then wildcards (longer first), then none.
    public static func listenerBefore(_ a: String?, _ b: String?) -> Bool {
        func key(_ h: String?) -> (Int, Int, String) {
            guard let h else { return (2, 0, "") }
            return (Hostnames.isWildcard(h) ? 1 : 0, -h.count, h)
        }
        return key(a) < key(b)
    }

    private static func rank(_ kind: PathMatchKind) -> Int {
        switch kind {
        case .exact: 0
        case .regularExpression: 1
        case .pathPrefix: 2
        }
    }

    /// A prefix's length without its insignificant trailing slash.
    private static func pathLength(_ spec: RouteMatchSpec) -> Int {
        spec.pathKind == .pathPrefix ? PathMatching.normalizedPrefix(spec.path).count : spec.path.count
    }
}

/// Path matching rules.
public enum PathMatching {
    /// A prefix with its trailing slash dropped ("/" stays "/").
    public static func normalizedPrefix(_ prefix: String) -> String {
        var p = prefix
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    /// True when `path` (without query) matches `spec`'s path condition. A RegularExpression is
    /// compiled for this call: matchers keep a `CompiledMatch` instead.
    public static func matches(path: String, spec: RouteMatchSpec) -> Bool {
        CompiledMatch(spec).pathMatches(path)
    }

    /// Exact and PathPrefix conditions (false for a RegularExpression, which `CompiledMatch` handles).
    static func literalMatches(path: String, spec: RouteMatchSpec) -> Bool {
        switch spec.pathKind {
        case .exact:
            return path == spec.path
        case .pathPrefix:
            let prefix = normalizedPrefix(spec.path)
            if prefix == "/" { return path.hasPrefix("/") }
            return path == prefix || path.hasPrefix(prefix + "/")
        case .regularExpression:
            return false
        }
    }
}
