/// An IPv4 address, stored in host byte order.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The address as a host-order integer (10.0.0.1 is 0x0A000001).
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses strict dotted-quad notation ("10.0.0.1"); leading zeros, missing or extra parts are rejected.
    public init?(_ text: some StringProtocol) {
        guard let parsed = IPv4Address.parse(String(text)) else { return nil }
        self = parsed
    }

    public static let any = IPv4Address(0)

    public var description: String {
        "\(value >> 24 & 0xFF).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}

/// An IPv6 address, 16 bytes in network order. The model carries it so IPv6 can follow; the
/// translator emits IPv4 frontends only for now.
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses RFC 4291 text forms, including "::" compression and a dotted-quad IPv4 tail in the
    /// last 32 bits ("::ffff:10.0.0.4").
    public init?(_ text: some StringProtocol) {
        var s = String(text)
        // An embedded IPv4 tail stands for the last two groups.
        if let lastColon = s.lastIndex(of: ":"), s[lastColon...].contains(".") {
            guard let v4 = IPv4Address(s[s.index(after: lastColon)...]) else { return nil }
            s = String(s[...lastColon]) + String(v4.value >> 16, radix: 16) + ":" + String(v4.value & 0xFFFF, radix: 16)
        }
        guard s.contains(":"), s.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return nil }
        // Split on the one allowed "::".
        var halves: [String] = []
        if let range = s.firstRange(of: "::") {
            halves = [String(s[..<range.lowerBound]), String(s[range.upperBound...])]
            if halves[1].contains("::") { return nil }
        } else {
            halves = [s]
        }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        high = all[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = all[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    public var description: String {
        let groups = (0..<8).map { i -> UInt16 in
            let word = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (UInt64(3 - i % 4) * 16))
        }
        // Compress the longest run of two or more zero groups, as RFC 5952 says.
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLength && j - i >= 2 { bestStart = i; bestLength = j - i }
                i = j
            } else { i += 1 }
        }
        let hex = groups.map { String($0, radix: 16) }
        if bestStart < 0 { return hex.joined(separator: ":") }
        let head = hex[0..<bestStart].joined(separator: ":")
        let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
        return head + "::" + tail
    }

    /// The IPv4 address of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 2.5.5.2); nil otherwise.
    public var ipv4Mapped: IPv4Address? {
        guard high == 0, low >> 32 == 0xFFFF else { return nil }
        return IPv4Address(UInt32(truncatingIfNeeded: low))
    }

    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

/// An IP address of either family. IPv4 sorts before IPv6.
public enum IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses an IPv4 or IPv6 address; nil for anything else. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.4`, `::ffff:a00:4`) is the IPv4 address it maps: that is what a socket
    /// using it reaches.
    public init?(_ text: some StringProtocol) {
        if let v4 = IPv4Address(text) {
            self = .v4(v4)
        } else if let v6 = IPv6Address(text) {
            self = v6.ipv4Mapped.map(IPAddress.v4) ?? .v6(v6)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .v4(let a): a.description
        case .v6(let a): a.description
        }
    }

    public var ipv4: IPv4Address? {
        if case .v4(let a) = self { return a }
        return nil
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case (.v4(let a), .v4(let b)): a < b
        case (.v6(let a), .v6(let b)): a < b
        case (.v4, .v6): true
        case (.v6, .v4): false
        }
    }
}
