/// Gateway API hostname rules: exact names, `*.` wildcards (one or more leading labels), and
/// intersection of a listener's hostname with a route's hostnames.
public enum Hostnames {
    /// True when `pattern` is a wildcard (`*.example.com`).
    public static func isWildcard(_ pattern: String) -> Bool { pattern.hasPrefix("*.") }

    /// Lowercases a request's Host and drops a port and a trailing dot: `Foo.Example.com:8080` → `foo.example.com`.
    public static func normalize(host: String) -> String {
        // Fast path: already a plain lowercase name or IPv4 address without port (what clients send).
        let bytes = host.utf8
        if bytes.allSatisfy({ ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }),
            bytes.last != UInt8(ascii: ".")
        {
            return host
        }
        var host = host.lowercased()
        if host.hasPrefix("[") {
            // IPv6 literal: keep the brackets' content only.
            if let end = host.firstIndex(of: "]") { host = String(host[host.index(after: host.startIndex)..<end]) }
        } else if let colon = host.lastIndex(of: ":"), host[host.index(after: colon)...].allSatisfy(\.isNumber) {
            host = String(host[..<colon])
        }
        if host.hasSuffix(".") { host.removeLast() }
        return host
    }

    /// True when the (normalized) `host` matches `pattern`: equal, or for `*.example.com` any
    /// name with at least one more label (`a.example.com`, `a.b.example.com`, not `example.com`).
    public static func matches(host: String, pattern: String) -> Bool {
        let pattern = pattern.lowercased()
        if isWildcard(pattern) {
            let suffix = pattern.dropFirst()  // ".example.com"
            return host.count > suffix.count && host.hasSuffix(suffix)
        }
        return host == pattern
    }

    /// The hostnames a route serves on a listener: nil when they do not intersect.
    ///
    /// - No listener hostname: the route's hostnames (empty: every host).
    /// - No route hostnames: the listener's hostname.
    /// - Both: each route hostname that matches the listener's, or is a wildcard covering it
    ///   (then the narrower of the two is kept), deduplicated in the route's order.
    public static func intersect(listener: String?, route: [String]) -> [String]? {
        let route = route.map { $0.lowercased() }
        guard let listener = listener?.lowercased(), !listener.isEmpty else { return route }
        if route.isEmpty { return [listener] }
        var out: [String] = []
        for name in route {
            let kept: String?
            if name == listener {
                kept = name
            } else if matches(host: isWildcard(name) ? String(name.dropFirst(2)) : name, pattern: listener), !isWildcard(name) || isWildcard(listener) {
                // A route name inside the listener's wildcard (exact, or a narrower wildcard).
                kept = name
            } else if isWildcard(name), matches(host: isWildcard(listener) ? String(listener.dropFirst(2)) : listener, pattern: name) {
                // A route wildcard covering the listener's name or narrower wildcard.
                kept = listener
            } else {
                kept = nil
            }
            if let kept, !out.contains(kept) { out.append(kept) }
        }
        return out.isEmpty ? nil : out
    }

    /// How specifically `pattern` matches `host`, for precedence: exact names beat wildcards,
    /// longer beats shorter; nil when it does not match. An empty pattern list matches any host
    /// with the lowest specificity.
    static func specificity(host: String, patterns: [String]) -> HostSpecificity? {
        if patterns.isEmpty { return HostSpecificity(exactCharacters: 0, wildcardCharacters: 0) }
        var best: HostSpecificity?
        for pattern in patterns where matches(host: host, pattern: pattern) {
            let s = isWildcard(pattern)
                ? HostSpecificity(exactCharacters: 0, wildcardCharacters: pattern.count)
                : HostSpecificity(exactCharacters: pattern.count, wildcardCharacters: 0)
            if best.map({ $0 < s }) ?? true { best = s }
        }
        return best
    }
}

/// The Gateway API's hostname precedence: characters of a matching exact name, then of a matching wildcard.
struct HostSpecificity: Comparable, Hashable {
    var exactCharacters: Int
    var wildcardCharacters: Int

    static func < (lhs: HostSpecificity, rhs: HostSpecificity) -> Bool {
        (lhs.exactCharacters, lhs.wildcardCharacters) < (rhs.exactCharacters, rhs.wildcardCharacters)
    }
}
