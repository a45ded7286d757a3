import GatewayCore
import NIOHTTP1

/// How the proxy normalizes request paths before it matches routes and forwards them
/// (`--proxy-path-normalization`, `--proxy-escaped-slashes`; docs/L7PROXY.md "Request validation").
///
/// A rule that confines `/admin` must not be bypassed by `/./admin`, `//admin` or `/%61dmin`, which
/// a backend that normalizes would serve as `/admin`: so the proxy normalizes first (as Envoy
/// Gateway does by default), matches the normalized path and forwards it.
public struct PathNormalization: Sendable, Equatable {
    /// What to do with `%2F` and `%5C` (an escaped `/` or `\`), which no normalization can make safe:
    /// a backend may decode them into path separators after routing.
    public enum EscapedSlashes: String, Sendable, CaseIterable {
        /// 400 Bad Request (the default).
        case reject
        /// Leave them escaped: routed and forwarded as `%2F` (the backend decides).
        case keep
        /// Decode them into `/` and `\` before normalizing: routed and forwarded decoded.
        case unescape
    }

    /// Decode percent-encoded unreserved characters, remove `.`/`..` segments (RFC 3986 §5.2.4, §6.2.2)
    /// and merge repeated slashes. Off: the path is only validated (characters a URI may not hold are
    /// percent-encoded, NUL and control characters refused).
    public var normalize: Bool
    public var escapedSlashes: EscapedSlashes

    public init(normalize: Bool = true, escapedSlashes: EscapedSlashes = .reject) {
        self.normalize = normalize
        self.escapedSlashes = escapedSlashes
    }

    public static let standard = PathNormalization()
}

/// The request target split into what routing and forwarding need, validated once, when the head
/// arrives: what is refused here is answered with 400 and never forwarded, and what is forwarded
/// is exactly what was routed. Pure.
struct RequestTarget: Equatable {
    /// Lowercased host without port or trailing dot: what routing matches.
    var host: String
    /// The authority to forward, as the client sent it (`Host`, or the absolute-form's authority,
    /// which replaces `Host`: RFC 9112 §3.2.2); nil when the request had none (HTTP/1.0).
    var authority: String?
    /// The normalized path (starts with `/`, or is `*`).
    var path: String
    /// The query after `?`, with characters a URI may not hold percent-encoded; nil when absent.
    var query: String?

    init(host: String, authority: String? = nil, path: String, query: String? = nil) {
        self.host = host
        self.authority = authority
        self.path = path
        self.query = query
    }

    enum Problem: Error, Equatable {
        /// 400: a missing/duplicate/malformed Host, an unusable target, a path that cannot be normalized.
        case badRequest(String)
    }

    /// The origin-form target to forward: the path and the query.
    var originForm: String { query.map { path + "?" + $0 } ?? path }

    /// Reads and validates host, path and query from the head. An absolute-form target's authority
    /// wins over Host (RFC 9112 §3.2.2); origin-form needs exactly one Host header on HTTP/1.1.
    static func parse(_ head: HTTPRequestHead, paths: PathNormalization = .standard) throws(Problem) -> RequestTarget {
        var uri = Substring(head.uri)
        var authority: Substring?
        // Origin-form ("/...") is the common case: only a target not starting with "/" looks for a scheme.
        if uri.utf8.first != UInt8(ascii: "/") {
            if uri == "*" {
                // asterisk-form (OPTIONS *): no path to route by.
            } else if let afterScheme = Self.droppingScheme(uri) {
                let end = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterScheme.endIndex
                authority = afterScheme[..<end]
                uri = afterScheme[end...]
                if uri.isEmpty || uri.first == "?" || uri.first == "#" { uri = "/" + uri }
            } else {
                throw .badRequest("unsupported request target")
            }
        }
        // The Host fields, counted in one pass without collecting them in an array.
        var host: String?
        for (name, value) in head.headers where name.utf8.count == 4 && name.isASCIICaseInsensitiveEqual(to: "host") {
            if host != nil { throw .badRequest("more than one Host header") }
            host = value
        }
        if authority == nil {
            if let host {
                authority = Substring(host)
            } else if head.version.major == 1 && head.version.minor >= 1 {
                throw .badRequest("HTTP/1.1 request without Host")
            }
        }
        if let authority, !HostSyntax.isValidAuthority(authority.utf8) {
            throw .badRequest("malformed Host (uri-host [\":\" port])")
        }
        // A fragment is never sent by a conforming client; it is not part of what is routed.
        if let hash = uri.firstIndex(of: "#") { uri = uri[..<hash] }
        var rawPath = uri
        var rawQuery: Substring?
        if let q = uri.firstIndex(of: "?") {
            rawPath = uri[..<q]
            rawQuery = uri[uri.index(after: q)...]
        }
        let path = rawPath == "*" ? "*" : try PathNormalizer.normalize(rawPath, policy: paths)
        let query = try rawQuery.map { query throws(Problem) in try PathNormalizer.sanitizeQuery(query) }
        let authorityText = authority.map(String.init)
        return RequestTarget(host: Hostnames.normalize(host: authorityText ?? ""), authority: authorityText, path: path, query: query)
    }

    /// `http://` or `https://` (any case) removed, or nil.
    private static func droppingScheme(_ uri: Substring) -> Substring? {
        let bytes = uri.utf8
        func hasPrefix(_ prefix: StaticString) -> Bool {
            guard bytes.count >= prefix.utf8CodeUnitCount else { return false }
            return prefix.withUTF8Buffer { expected in
                zip(bytes, expected).allSatisfy { ($0 | 0x20) == $1 || $0 == $1 }
            }
        }
        if hasPrefix("http://") { return uri.dropFirst(7) }
        if hasPrefix("https://") { return uri.dropFirst(8) }
        return nil
    }

}

/// RFC 3986 host syntax, as HTTP requires of Host and of an absolute-form authority (RFC 9110 §7.2):
/// `uri-host [":" port]`.
enum HostSyntax {
    /// `uri-host [":" port]`: an IP-literal in brackets, or an IPv4 address / reg-name of
    /// unreserved characters and sub-delims (no userinfo, no percent-encoding, no spaces or quotes),
    /// then an optional port of at most five digits (≤ 65535). Empty is allowed (RFC 9112 §3.2: a
    /// target without authority sends an empty Host).
    static func isValidAuthority(_ bytes: Substring.UTF8View) -> Bool {
        guard let first = bytes.first else { return true }
        var index = bytes.startIndex
        if first == UInt8(ascii: "[") {
            // IP-literal: IPv6 (hex, ':' and '.' for an embedded IPv4); no zone identifiers, no IPvFuture.
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")), bytes.distance(from: index, to: close) > 2 else { return false }
            for byte in bytes[bytes.index(after: index)..<close] {
                guard isHex(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".") else { return false }
            }
            index = bytes.index(after: close)
        } else {
            while index < bytes.endIndex, bytes[index] != UInt8(ascii: ":") {
                guard isRegNameByte(bytes[index]) else { return false }
                index = bytes.index(after: index)
            }
            guard index != bytes.startIndex else { return false }
        }
        guard index < bytes.endIndex else { return true }
        guard bytes[index] == UInt8(ascii: ":") else { return false }
        let port = bytes[bytes.index(after: index)...]
        guard port.count <= 5 else { return false }
        var value = 0
        for byte in port {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return false }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value <= 65535
    }

    /// unreserved / sub-delims (RFC 3986 §3.2.2 reg-name, without pct-encoded).
    static func isRegNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }

    static func isHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f"))
    }
}

/// Path validation and normalization (RFC 3986 §6.2.2 and §5.2.4) and query sanitizing. Pure; the
/// common path (nothing to change) returns the input without allocating more than the result.
enum PathNormalizer {
    /// The path to route and forward, or `badRequest` for what cannot be made safe: NUL and other
    /// control characters (raw or percent-encoded), a `%` not followed by two hex digits, a raw `\`,
    /// and `%2F`/`%5C` unless the policy keeps or unescapes them. Characters a URI may not hold
    /// (`"`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}`, bytes over 0x7F) are percent-encoded.
    static func normalize(_ path: Substring, policy: PathNormalization) throws(RequestTarget.Problem) -> String {
        guard path.utf8.first == UInt8(ascii: "/") else { throw .badRequest("the path must start with /") }
        if isAlreadyNormal(path.utf8, normalize: policy.normalize) { return String(path) }
        // 1. Characters: percent-decoding of unreserved octets, encoding of what a URI may not hold.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(path.utf8.count + 8)
        var input = path.utf8[...]
        while let byte = input.popFirst() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = input.popFirst(), let low = input.popFirst(), HostSyntax.isHex(high), HostSyntax.isHex(low) else {
                    throw .badRequest("malformed percent-encoding in the path")
                }
                let value = hexValue(high) << 4 | hexValue(low)
                if value < 0x20 || value == 0x7F { throw .badRequest("an encoded control character in the path") }
                if value == UInt8(ascii: "/") || value == UInt8(ascii: "\\") {
                    switch policy.escapedSlashes {
                    case .reject: throw .badRequest("an escaped slash (%2F or %5C) in the path")
                    case .keep: appendEncoded(value, to: &bytes)
                    case .unescape:
                        if value == UInt8(ascii: "\\") { throw .badRequest("a backslash in the path") }
                        bytes.append(value)
                    }
                } else if policy.normalize && isUnreserved(value) {
                    bytes.append(value)
                } else {
                    appendEncoded(value, to: &bytes)
                }
            case UInt8(ascii: "\\"):
                // Some servers read it as a separator: routing cannot agree with them on the path.
                throw .badRequest("a backslash in the path")
            case 0..<0x20, 0x7F:
                throw .badRequest("a control character in the path")
            default:
                if isPathByte(byte) { bytes.append(byte) } else { appendEncoded(byte, to: &bytes) }
            }
        }
        guard policy.normalize else { return String(decoding: bytes, as: UTF8.self) }
        // 2. Segments: merged slashes, then dot segments removed.
        return String(decoding: removeDotSegments(mergingSlashes(bytes)), as: UTF8.self)
    }

    /// The query with characters a URI may not hold percent-encoded; control characters refused.
    /// Percent-escapes are left as they are (query values are compared as sent).
    static func sanitizeQuery(_ query: Substring) throws(RequestTarget.Problem) -> String {
        if query.utf8.allSatisfy({ isQueryByte($0) }) { return String(query) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(query.utf8.count + 8)
        for byte in query.utf8 {
            if byte < 0x20 || byte == 0x7F { throw .badRequest("a control character in the query") }
            if isQueryByte(byte) { bytes.append(byte) } else { appendEncoded(byte, to: &bytes) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// True when normalizing would change nothing: only pchar bytes and `/`, no `%`, and (when
    /// normalizing) no empty or dot segment.
    private static func isAlreadyNormal(_ path: Substring.UTF8View, normalize: Bool) -> Bool {
        // Per segment: its length and how many of its bytes are dots (`.` and `..` are segments of dots only).
        var length = 0
        var dots = 0
        for byte in path.dropFirst() {
            if byte == UInt8(ascii: "/") {
                if normalize && (length == 0 || (length == dots && length <= 2)) { return false }
                length = 0
                dots = 0
                continue
            }
            if byte == UInt8(ascii: "%") || !isPathByte(byte) { return false }
            length += 1
            if byte == UInt8(ascii: ".") { dots += 1 }
        }
        return !(normalize && length > 0 && length == dots && length <= 2)
    }

    /// `//` → `/` (what Envoy's merge_slashes does).
    private static func mergingSlashes(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for byte in bytes where !(byte == UInt8(ascii: "/") && out.last == UInt8(ascii: "/")) { out.append(byte) }
        return out
    }

    /// RFC 3986 §5.2.4 on an absolute path: `.` segments dropped, `..` removes the segment before
    /// it (never above the root); a trailing `.` or `..` leaves a trailing slash.
    static func removeDotSegments(_ bytes: [UInt8]) -> [UInt8] {
        var segments: [ArraySlice<UInt8>] = []
        var trailingSlash = false
        let parts = bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        for (offset, segment) in parts.enumerated() {
            let last = offset == parts.count - 1
            if segment.elementsEqual([UInt8(ascii: ".")]) {
                trailingSlash = last
            } else if segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                if !segments.isEmpty { segments.removeLast() }
                trailingSlash = last
            } else {
                segments.append(segment)
                trailingSlash = false
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for segment in segments {
            out.append(UInt8(ascii: "/"))
            out.append(contentsOf: segment)
        }
        if out.isEmpty || trailingSlash { out.append(UInt8(ascii: "/")) }
        return out
    }

    /// pchar (unreserved / sub-delims / ":" / "@") or "/": what may stand in a path unencoded.
    static func isPathByte(_ byte: UInt8) -> Bool {
        HostSyntax.isRegNameByte(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "@") || byte == UInt8(ascii: "/")
    }

    /// pchar / "/" / "?", and `%` (escapes are kept as sent).
    static func isQueryByte(_ byte: UInt8) -> Bool {
        isPathByte(byte) || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "%")
    }

    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8 {
        byte <= UInt8(ascii: "9") ? byte - UInt8(ascii: "0") : (byte | 0x20) - UInt8(ascii: "a") + 10
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// `%XX` with uppercase hex (RFC 3986 §6.2.2.1).
    private static func appendEncoded(_ byte: UInt8, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "%"))
        bytes.append(hexDigits[Int(byte >> 4)])
        bytes.append(hexDigits[Int(byte & 0x0F)])
    }
}
