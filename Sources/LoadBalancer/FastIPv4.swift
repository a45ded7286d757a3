extension IPv4Address {
    /// Parses strict dotted-quad text exactly as `init?(_:)` does (no leading zeros, four parts of
    /// 0-255) but on UTF-8 bytes without allocating: the translator parses one address per
    /// endpoint, hundreds of thousands per translation in large clusters.
    public static func parse(_ text: String) -> IPv4Address? {
        var text = text
        return text.withUTF8 { parse(utf8: $0) }
    }

    static func parse(utf8 bytes: UnsafeBufferPointer<UInt8>) -> IPv4Address? {
        var value: UInt32 = 0
        var part: UInt32 = 0
        var digits = 0
        var parts = 0
        var leadingZero = false
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | part
                parts += 1
                part = 0
                digits = 0
                leadingZero = false
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                if leadingZero { return nil }  // "01": a second digit after a leading 0.
                if digits == 0 && byte == UInt8(ascii: "0") { leadingZero = true }
                part = part * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard part <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return IPv4Address(value << 8 | part)
    }
}

extension IPAddress {
    /// Like `init?(_:)`, with the IPv4 fast path first.
    static func parse(_ text: String) -> IPAddress? {
        if let v4 = IPv4Address.parse(text) { return .v4(v4) }
        return IPAddress(text)
    }
}
