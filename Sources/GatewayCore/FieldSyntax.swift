// The grammar of what the proxy writes on the wire from configuration (header names and values,
// hostnames and paths of the HTTPRoute filters), checked once when the route tables are built
// (`RouteFilter.lower`). The proxy sends these values without checking them per message: a value
// that fails here refuses its route (`Accepted=False/UnsupportedValue`), so no configured value can
// end a header line or a request line early (header injection, response splitting).

/// RFC 9110 / RFC 3986 syntax checks of configured values. Pure.
public enum FieldSyntax {
    /// A field name: `token` (RFC 9110 §5.1, §5.6.2), one or more tchar.
    public static func isToken(_ name: String) -> Bool {
        !name.utf8.isEmpty && name.utf8.allSatisfy(isTokenByte)
    }

    /// A field value (RFC 9110 §5.5): no control character but HTAB, so no CR, LF or NUL (the
    /// rule NIO's outbound header validators applied per message). obs-text (bytes ≥ 0x80) is allowed.
    public static func isFieldValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    /// A hostname as the Gateway API's PreciseHostname (RFC 1123 labels of letters, digits and
    /// `-`, not starting or ending with `-`, at most 63 bytes each, 253 in all); letters of any case.
    public static func isPreciseHostname(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        for label in bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard (1...63).contains(label.count), label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else { return false }
            for byte in label {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                    continue
                default:
                    return false
                }
            }
        }
        return true
    }

    /// Path characters (RFC 3986 §3.3): `/`, pchar (unreserved, sub-delims, `:`, `@`) and `%`
    /// followed by two hex digits; no `?` or `#`, which would start a query or fragment.
    public static func isPathCharacters(_ path: String) -> Bool {
        var bytes = path.utf8[...]
        while let byte = bytes.popFirst() {
            if byte == UInt8(ascii: "%") {
                guard let high = bytes.popFirst(), let low = bytes.popFirst(), isHex(high), isHex(low) else { return false }
                continue
            }
            guard isPathByte(byte) else { return false }
        }
        return true
    }

    /// tchar: `!#$%&'*+-.^_`|~`, digits and letters.
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// pchar without pct-encoded, or `/`.
    static func isPathByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="),
            UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }

    static func isHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f"))
    }
}
