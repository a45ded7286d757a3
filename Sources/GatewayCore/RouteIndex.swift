/// Where a request can go on one port, found without visiting what cannot match it: built once
/// per `CompiledRouteTable`, so a lookup costs what the request's host and path can match, not
/// what the table holds for other hosts and paths.
///
/// - Hostname → listener: a hash of exact listener hostnames, a hash of wildcard suffixes
///   (`*.example.com` under `.example.com`, looked up once per dot of the host) and the
///   listeners without hostname; the first in the table's order wins, as `servingListener` says.
/// - Within the listener, its rule matches grouped by their hostnames list (every match of one
///   route on one listener shares it), the groups found the same way; a group's hostname
///   specificity for the host is the one `Hostnames.specificity` gives.
/// - Within a group, Exact paths by hash, PathPrefix matches by hash of the normalized prefix
///   (looked up once per `/` of the path), `/` prefixes and RegularExpression paths in a list
///   (a pattern's literal leading text, when it has one, skips it for paths that do not start so).
///
/// Every candidate the index yields is checked in full (`RouteMatcher.conditions`), so the index
/// may only over-approximate; the model test checks it against the linear scan.
struct RouteIndex: Sendable {
    /// Listener positions by hostname.
    let listeners: HostIndex<Int>
    /// Parallel to `table.listeners`.
    let rules: [ListenerRuleIndex]

    init(_ table: PortRouteTable) {
        var listeners = HostIndex<Int>()
        for (position, listener) in table.listeners.enumerated() {
            listeners.insert(pattern: listener.hostname, position)
        }
        self.listeners = listeners
        rules = table.listeners.map { ListenerRuleIndex($0.rules) }
    }

    /// The first listener (in the table's order) whose hostname matches the normalized `host`.
    func servingListener(host: String) -> Int? {
        var first: Int?
        listeners.forEachMatch(host: host) { position, _ in
            if first.map({ position < $0 }) ?? true { first = position }
        }
        return first
    }
}

/// Values filed under hostname patterns: exact names, `*.` wildcards and "any host" (nil or an
/// empty list), found for a host in O(dots in the host) hash lookups.
struct HostIndex<Value: Sendable>: Sendable {
    /// Under the lowercased name (`Hostnames.matches` compares the host with the lowercased pattern).
    private var exact: [String: [(Value, HostSpecificity)]] = [:]
    /// Under the lowercased suffix from the dot (`*.Example.com` → `.example.com`).
    private var wildcard: [Substring: WildcardBucket] = [:]
    private var any: [Value] = []

    private struct WildcardBucket: Sendable {
        /// The lowercased suffix from the dot, as `Hostnames.matches` compares it.
        var suffix: String
        var values: [(Value, HostSpecificity)]
    }

    /// Files `value` under `pattern` (nil: every host, with the lowest specificity).
    mutating func insert(pattern: String?, _ value: Value) {
        guard let pattern else {
            any.append(value)
            return
        }
        let lowered = pattern.lowercased()
        if Hostnames.isWildcard(lowered) {
            let suffix = lowered.dropFirst()
            wildcard[suffix, default: WildcardBucket(suffix: String(suffix), values: [])].values
                .append((value, HostSpecificity(exactCharacters: 0, wildcardCharacters: pattern.count)))
        } else {
            exact[lowered, default: []].append((value, HostSpecificity(exactCharacters: pattern.count, wildcardCharacters: 0)))
        }
    }

    /// Calls `body` with each value whose pattern matches the normalized `host`, and the
    /// specificity of that pattern (values for every host: zero).
    func forEachMatch(host: String, _ body: (Value, HostSpecificity) -> Void) {
        if let found = exact[host] {
            for (value, specificity) in found { body(value, specificity) }
        }
        if !wildcard.isEmpty {
            // A wildcard's suffix starts at a dot that has at least one character before it.
            let utf8 = host.utf8
            var i = utf8.startIndex
            while i != utf8.endIndex {
                if utf8[i] == UInt8(ascii: "."), i != utf8.startIndex, let found = wildcard[host[i...]] {
                    // The key is the suffix (equal as strings); the byte walk may over-approximate
                    // only for exotic Unicode, so check as `Hostnames.matches` does.
                    let suffix = found.suffix
                    if host.count > suffix.count, host.hasSuffix(suffix) {
                        for (value, specificity) in found.values { body(value, specificity) }
                    }
                }
                utf8.formIndex(after: &i)
            }
        }
        for value in any { body(value, HostSpecificity(exactCharacters: 0, wildcardCharacters: 0)) }
    }
}

/// One listener's rule matches: grouped by hostnames list, each group with its path index.
struct ListenerRuleIndex: Sendable {
    let hosts: HostIndex<Int>
    let groups: [PathIndex]

    init(_ rules: [RouteTableEntry]) {
        var groupOf: [HostnamesKey: Int] = [:]
        var positions: [[Int]] = []
        var hosts = HostIndex<Int>()
        for (position, entry) in rules.enumerated() {
            let key = HostnamesKey(names: entry.hostnames)
            if let group = groupOf[key] {
                positions[group].append(position)
                continue
            }
            let group = positions.count
            groupOf[key] = group
            positions.append([position])
            // No hostnames: every host the listener takes (`Hostnames.specificity` gives it zero).
            if entry.hostnames.isEmpty { hosts.insert(pattern: nil, group) }
            for name in entry.hostnames { hosts.insert(pattern: name, group) }
        }
        self.hosts = hosts
        groups = positions.map { PathIndex(rules, positions: $0) }
    }

    /// A hostnames list as a dictionary key: hashed by its count and ends (the lists of one
    /// route's matches share one buffer, so equality is usually an identity check).
    private struct HostnamesKey: Hashable {
        let names: [String]
        func hash(into hasher: inout Hasher) {
            hasher.combine(names.count)
            hasher.combine(names.first)
            hasher.combine(names.last)
        }
    }
}

/// The rule matches of one hostnames group by path condition, each list in table (precedence) order.
struct PathIndex: Sendable {
    /// Exact paths.
    private(set) var exact: [String: [Int]] = [:]
    /// PathPrefix matches under their normalized prefix (not `/`).
    private(set) var prefixes: [Substring: [Int]] = [:]
    /// PathPrefix `/` (or the empty prefix): every path starting with `/`.
    private(set) var root: [Int] = []
    /// RegularExpression paths, with the literal text every matching path starts with ("" if unknown).
    private(set) var patterns: [(position: Int, literal: String)] = []

    init(_ rules: [RouteTableEntry], positions: [Int]) {
        for position in positions {
            let spec = rules[position].matchSpec
            switch spec.pathKind {
            case .exact:
                exact[spec.path, default: []].append(position)
            case .pathPrefix:
                let prefix = PathMatching.normalizedPrefix(spec.path)
                if prefix == "/" || prefix.isEmpty {
                    root.append(position)
                } else {
                    prefixes[prefix[...], default: []].append(position)
                }
            case .regularExpression:
                patterns.append((position, Self.literalPrefix(spec.path)))
            }
        }
    }

    /// Calls `body` with each list of positions (ascending) whose path condition may hold for
    /// `path`: its Exact list, the `/` prefixes, and the prefixes equal to the path up to one of
    /// its slashes or to the whole path. RegularExpression paths are in `patterns`.
    func forEachCandidateList(path: String, _ body: ([Int]) -> Void) {
        if let found = exact[path] { body(found) }
        if !root.isEmpty { body(root) }
        guard !prefixes.isEmpty else { return }
        let utf8 = path.utf8
        var i = utf8.startIndex
        while i != utf8.endIndex {
            if utf8[i] == UInt8(ascii: "/"), i != utf8.startIndex, let found = prefixes[path[..<i]] { body(found) }
            utf8.formIndex(after: &i)
        }
        if let found = prefixes[path[...]] { body(found) }
    }

    /// ASCII characters that stand for themselves in RE2 outside a class (no metacharacter).
    private static let plainPunctuation: Set<Character> = ["/", "-", "_", "~", "%", "=", ",", ";", ":", "@", "&", "!", "'", "\"", "<", ">", "#", " "]

    /// The literal text at the start of a RE2 pattern: every whole match starts with it. Only
    /// plain characters count, and none followed by a quantifier that could drop it; a pattern
    /// with an alternation anywhere has none (conservative: "" visits the pattern for every path).
    static func literalPrefix(_ pattern: String) -> String {
        guard !pattern.contains("|") else { return "" }
        var literal = ""
        for c in pattern {
            if c.isASCII, c.isLetter || c.isNumber || Self.plainPunctuation.contains(c) {
                literal.append(c)
                continue
            }
            // A quantifier may repeat the last character zero times.
            if c == "*" || c == "?" || c == "{", !literal.isEmpty { literal.removeLast() }
            break
        }
        return literal
    }
}
