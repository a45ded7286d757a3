import GatewayCore
import NIOHTTP1

extension String {
    /// ASCII case-insensitive equality with a lowercase ASCII literal, without allocating.
    func isASCIICaseInsensitiveEqual(to lowercase: StaticString) -> Bool {
        guard utf8.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            var index = 0
            for byte in utf8 {
                let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
                if folded != expected[index] { return false }
                index += 1
            }
            return true
        }
    }

    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return String(s)
    }
}

/// Builds the heads the proxy sends on. Pure functions, unit-tested.
///
/// What is sent unchecked: the proxy runs without NIO's outbound header validators (each scanned
/// every name and value of every message it sent), because what it sends is valid by construction:
/// - Names, values, trailers and methods from clients and backends come from NIO's HTTP decoder,
///   llhttp with no lenient flag set (NIOHTTP1 HTTPDecoder.swift sets none). A name holds only
///   token characters ("Invalid header field char"); a value ends at CR or LF, a CR must be followed
///   by LF ("Missing expected LF after header value"), a bare LF ("Missing expected CR after header
///   value") and obs-fold ("Unexpected whitespace after header value") are refused, and so is every
///   other control character but HTAB ("Invalid header value char"): no decoded value holds CR, LF
///   or NUL, so forwarding one cannot add a header or end the head.
/// - The request target is the one `RequestTarget` validated and normalized (pchar, `/`, `?`, `%XX`).
/// - Values from configuration (header modifiers, CORS lists, URLRewrite and RequestRedirect
///   hostnames and paths) are checked once, when the route tables are built (GatewayCore's
///   `FieldSyntax`, in `RouteFilter.lower`): a route holding an invalid one is not served.
/// - A backend's reason phrase, where llhttp takes any byte but CR and LF, is never passed on: NIO's
///   decoder keeps only the status code (HTTPDecoder.swift ignores `on_status`'s text), and the
///   encoder writes the code's standard phrase or none.
enum HeaderRewriting {
    /// Hop-by-hop headers (RFC 9110 §7.6.1) that never cross the proxy, plus those named in Connection.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    ]

    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        // One pass to see whether there is anything to remove: usually at most a Connection header,
        // whose value is usually `keep-alive` (what nginx backends send) or `close`.
        var connectionSeen = false
        var onlyCommonOptions = true
        var hopByHopSeen = false
        var closeFieldSeen = false
        for (name, value) in headers {
            if name.utf8.count == 10, name.isASCIICaseInsensitiveEqual(to: "connection") {
                connectionSeen = true
                if !(value.isASCIICaseInsensitiveEqual(to: "keep-alive") || value.isASCIICaseInsensitiveEqual(to: "close")) {
                    onlyCommonOptions = false
                }
            } else if isHopByHop(name) {
                hopByHopSeen = true
            } else if name.utf8.count == 5, name.isASCIICaseInsensitiveEqual(to: "close") {
                closeFieldSeen = true
            }
        }
        guard connectionSeen || hopByHopSeen else { return }
        if onlyCommonOptions && !closeFieldSeen {
            // `Connection: keep-alive` / `close` names no field outside the hop-by-hop set (Keep-Alive
            // is in it; a `Close` field, which RFC 9110 §18.4 reserves, takes the general path):
            // no split, no array, no lowercased copies.
            if connectionSeen { headers.remove(name: "connection") }
            if hopByHopSeen {
                for name in hopByHop where name != "connection" { headers.remove(name: name) }
            }
            return
        }
        var named: [String] = []
        if connectionSeen {
            named = headers["connection"].flatMap { $0.split(separator: ",") }.map {
                String($0).trimmingSpaces().lowercased()
            }
            headers.remove(name: "connection")
        }
        if hopByHopSeen {
            for name in hopByHop where name != "connection" { headers.remove(name: name) }
        }
        for name in named where !name.isEmpty && headers.contains(name: name) { headers.remove(name: name) }
    }

    /// Whether `name` is one of `hopByHop`, without allocating a lowercased copy.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return name.isASCIICaseInsensitiveEqual(to: "te")
        case 7: return name.isASCIICaseInsensitiveEqual(to: "trailer") || name.isASCIICaseInsensitiveEqual(to: "upgrade")
        case 10: return name.isASCIICaseInsensitiveEqual(to: "connection") || name.isASCIICaseInsensitiveEqual(to: "keep-alive")
        case 16: return name.isASCIICaseInsensitiveEqual(to: "proxy-connection")
        case 17: return name.isASCIICaseInsensitiveEqual(to: "transfer-encoding")
        default: return false
        }
    }

    /// A Forwarded parameter value as an RFC 7230 quoted-string: `"` and `\` escaped, so no value
    /// can end the quotes and add parameters or elements of its own.
    static func quoted(_ value: String) -> String {
        var out = ""
        appendQuoted(value, to: &out)
        return out
    }

    /// `quoted(value)` appended to `out` (no string of its own).
    static func appendQuoted(_ value: String, to out: inout String) {
        out += "\""
        if value.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" { out.unicodeScalars.append("\\") }
                out.unicodeScalars.append(character)
            }
        } else {
            out += value
        }
        out += "\""
    }

    /// The Forwarded element the proxy adds: `for=<client>;host="<authority>";proto=<http|https>`
    /// (RFC 7239 §6: an IPv6 node quoted in brackets),
    /// built in one string (its capacity reserved once) rather than from interpolated pieces.
    static func forwardedElement(clientAddress: String?, authority: String, proto: String) -> String {
        var element = ""
        element.reserveCapacity(32 + (clientAddress?.utf8.count ?? 0) + authority.utf8.count)
        if let clientAddress {
            element += "for="
            if clientAddress.utf8.contains(UInt8(ascii: ":")) {
                element += "\"["
                element += clientAddress
                element += "]\""
            } else {
                element += clientAddress
            }
            element += ";"
        }
        element += "host="
        appendQuoted(authority, to: &element)
        element += ";proto="
        element += proto
        return element
    }

    /// Why a request's Transfer-Encoding cannot be forwarded, or nil when it can (none, or exactly
    /// `chunked`). Chunked not last: the body length is unknowable, 400 (RFC 9112 §6.3); in an
    /// HTTP/1.0 request: 400 (§6.1); other codings before chunked: 501, as Envoy does — refused,
    /// never dropped or forwarded with a body the proxy framed differently.
    static func transferEncodingProblem(_ head: HTTPRequestHead) -> HTTPResponseStatus? {
        let values = head.headers["transfer-encoding"]
        guard !values.isEmpty else { return nil }
        if head.version.major == 1 && head.version.minor == 0 { return .badRequest }
        let codings = values.flatMap { $0.split(separator: ",") }.map { String($0).trimmingSpaces().lowercased() }.filter { !$0.isEmpty }
        guard codings.last == "chunked" else { return .badRequest }
        return codings.count == 1 ? nil : .notImplemented
    }

    /// The request head sent to the backend: hop-by-hop headers removed, X-Forwarded-For/-Proto and
    /// Forwarded added (appending to what the client sent), the route's header edits and URL rewrite
    /// applied, body framing kept as the client sent it. The target is the validated, normalized
    /// one that was routed, and the authority that was routed is the Host sent on (an absolute-form
    /// target's authority replaces the client's Host).
    static func upstreamRequestHead(
        _ head: HTTPRequestHead, target: RequestTarget, clientAddress: String?, isTLS: Bool,
        modifier: HeaderModifier, rewrite: URLRewrite?
    ) -> HTTPRequestHead {
        var headers = head.headers
        // The copy the edits below make, made once with room for the forwarding headers (instead of
        // a copy of the client's headers grown two or three times as they are appended).
        headers.reserveCapacity(headers.count + 6)
        let chunked = !headers["transfer-encoding"].isEmpty
        let hasLength = headers.contains(name: "content-length")
        let upgrade = isUpgrade(head) ? headers.first(name: "upgrade") : nil
        removeHopByHop(&headers)
        if let upgrade {
            // Upgrade is hop-by-hop, but passing it on is how a proxy lets the protocol switch through.
            headers.add(name: "connection", value: "upgrade")
            headers.add(name: "upgrade", value: upgrade)
        }
        if chunked {
            // Exactly `chunked` (transferEncodingProblem refused anything else): re-framed the same way.
            headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        } else if !hasLength && head.method.hasBodyByDefault {
            // No framing header means no body (RFC 9112 §6.3); say so, or the encoder would chunk.
            headers.replaceOrAdd(name: "content-length", value: "0")
        }
        let routedAuthority = target.authority ?? target.host
        if let authority = target.authority, headers.first(name: "host") != authority {
            headers.replaceOrAdd(name: "host", value: authority)
        }
        let proto = isTLS ? "https" : "http"
        if let clientAddress {
            if let previous = headers.first(name: "x-forwarded-for") {
                headers.replaceOrAdd(name: "x-forwarded-for", value: "\(previous), \(clientAddress)")
            } else {
                headers.add(name: "x-forwarded-for", value: clientAddress)
            }
        }
        headers.replaceOrAdd(name: "x-forwarded-proto", value: proto)
        if !headers.contains(name: "x-forwarded-host") { headers.add(name: "x-forwarded-host", value: routedAuthority) }
        let element = forwardedElement(clientAddress: clientAddress, authority: routedAuthority, proto: proto)
        if let previous = headers.first(name: "forwarded") {
            headers.replaceOrAdd(name: "forwarded", value: "\(previous), \(element)")
        } else {
            headers.add(name: "forwarded", value: element)
        }
        modifier.apply(to: &headers)
        var uri = target.originForm
        if let rewrite {
            if let hostname = rewrite.hostname { headers.replaceOrAdd(name: "host", value: hostname) }
            if let pathModifier = rewrite.path {
                uri = pathModifier.apply(to: target.path) + (target.query.map { "?\($0)" } ?? "")
            }
        }
        if !headers.contains(name: "host") { headers.add(name: "host", value: target.host) }
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: uri, headers: headers)
    }

    /// A request asking to switch protocols: `Connection: upgrade` and an `Upgrade` header.
    static func isUpgrade(_ head: HTTPRequestHead) -> Bool {
        head.headers.contains(name: "upgrade")
            && head.headers["connection"].contains { $0.lowercased().split(separator: ",").contains { String($0).trimmingSpaces() == "upgrade" } }
    }

    /// The 101 sent to the client: the backend's, with its Upgrade and Connection headers kept.
    static func switchingProtocolsHead(_ head: HTTPResponseHead, requestVersion: HTTPVersion) -> HTTPResponseHead {
        HTTPResponseHead(version: requestVersion, status: head.status, headers: head.headers)
    }

    /// The response head sent to the client: hop-by-hop headers removed, the route's response header
    /// edits applied, the client's HTTP version, and `Connection: close` when the connection ends.
    static func downstreamResponseHead(
        _ head: HTTPResponseHead, requestVersion: HTTPVersion, keepAlive: Bool, modifier: HeaderModifier
    ) -> HTTPResponseHead {
        var headers = head.headers
        removeHopByHop(&headers)
        modifier.apply(to: &headers)
        var out = HTTPResponseHead(version: requestVersion, status: head.status, headers: headers)
        // removeHopByHop took Connection out; only the route's edits can have put one back.
        if !modifier.isEmpty { out.headers.remove(name: "connection") }
        if !keepAlive {
            out.headers.add(name: "connection", value: "close")
        } else if requestVersion == .http1_0 {
            out.headers.add(name: "connection", value: "keep-alive")
        }
        return out
    }

    /// Whether the client connection can stay open after this response: the client asked for it and
    /// the response is framed (an HTTP/1.0 client cannot take chunked encoding).
    static func responseAllowsKeepAlive(_ head: HTTPResponseHead, requestVersion: HTTPVersion) -> Bool {
        if requestVersion == .http1_0 && !head.headers.contains(name: "content-length") && head.status.mayHaveResponseBody {
            return false
        }
        return true
    }
}

extension HTTPMethod {
    /// Methods whose requests carry a body by convention (the encoder would frame them as chunked).
    var hasBodyByDefault: Bool {
        switch self {
        case .POST, .PUT, .PATCH: return true
        default: return false
        }
    }

    /// Safe to send twice (RFC 9110 §9.2.2): only these are replayed on a stale pooled connection.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }
}

extension HTTPResponseStatus {
    var mayHaveResponseBody: Bool {
        !(code < 200 || code == 204 || code == 304)
    }
}
