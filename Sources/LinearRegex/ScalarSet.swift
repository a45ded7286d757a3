/// A set of Unicode scalar values as sorted, disjoint, non-adjacent closed ranges, with a bitmap for
/// ASCII so the common case is one test.
struct ScalarSet: Sendable, Hashable {
    static let maxScalar: UInt32 = 0x10FFFF

    private(set) var ranges: [ClosedRange<UInt32>] = []
    private var asciiLow: UInt64 = 0
    private var asciiHigh: UInt64 = 0

    init() {}

    init(_ ranges: [ClosedRange<UInt32>]) {
        self.ranges = Self.normalized(ranges)
        rebuildBitmap()
    }

    func contains(_ c: UInt32) -> Bool {
        if c < 64 { return asciiLow & (1 << UInt64(c)) != 0 }
        if c < 128 { return asciiHigh & (1 << UInt64(c - 64)) != 0 }
        // Binary search for the last range starting at or before c.
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].lowerBound <= c { lo = mid + 1 } else { hi = mid }
        }
        return lo > 0 && ranges[lo - 1].upperBound >= c
    }

    var isEmpty: Bool { ranges.isEmpty }

    /// The only member, when there is exactly one.
    var single: UInt32? {
        ranges.count == 1 && ranges[0].lowerBound == ranges[0].upperBound ? ranges[0].lowerBound : nil
    }

    mutating func insert(_ range: ClosedRange<UInt32>) {
        ranges = Self.normalized(ranges + [range])
        rebuildBitmap()
    }

    mutating func formUnion(_ other: ScalarSet) {
        ranges = Self.normalized(ranges + other.ranges)
        rebuildBitmap()
    }

    /// Every scalar value (0...0x10FFFF) not in the set.
    func inverted() -> ScalarSet {
        var out: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for r in ranges {
            if r.lowerBound > next { out.append(next...(r.lowerBound - 1)) }
            if r.upperBound == Self.maxScalar { return ScalarSet(out) }
            next = r.upperBound + 1
        }
        out.append(next...Self.maxScalar)
        return ScalarSet(out)
    }

    /// The set with every member's simple case-folding orbit added (what `(?i)` matches).
    func caseFolded() -> ScalarSet {
        var extra: [ClosedRange<UInt32>] = []
        for (scalar, orbit) in CaseFolding.table where contains(scalar) {
            for member in orbit { extra.append(member...member) }
        }
        return extra.isEmpty ? self : ScalarSet(ranges + extra)
    }

    private mutating func rebuildBitmap() {
        asciiLow = 0
        asciiHigh = 0
        for r in ranges where r.lowerBound < 128 {
            for c in r.lowerBound...min(r.upperBound, 127) {
                if c < 64 { asciiLow |= 1 << UInt64(c) } else { asciiHigh |= 1 << UInt64(c - 64) }
            }
        }
    }

    private static func normalized(_ input: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        let sorted = input.sorted { $0.lowerBound < $1.lowerBound }
        var out: [ClosedRange<UInt32>] = []
        for r in sorted {
            // Overlapping or adjacent ranges merge (an upper bound is at most 0x10FFFF: no overflow).
            if let last = out.last, r.lowerBound <= last.upperBound + 1 {
                out[out.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }
}

/// Named sets: the Perl classes (`\d \w \s`, ASCII as in RE2) and the POSIX classes (`[:alpha:]`).
enum NamedSets {
    static func ascii(_ ranges: [ClosedRange<Character>]) -> ScalarSet {
        ScalarSet(ranges.map { $0.lowerBound.unicodeScalars.first!.value...$0.upperBound.unicodeScalars.first!.value })
    }

    static let digit = ascii(["0"..."9"])
    static let word = ascii(["0"..."9", "A"..."Z", "_"..."_", "a"..."z"])
    /// RE2's `\s`: tab, newline, form feed, carriage return and space (not vertical tab).
    static let space = ScalarSet([9...10, 12...13, 32...32])

    /// The POSIX classes RE2 accepts inside brackets.
    static let posix: [String: ScalarSet] = [
        "alnum": ascii(["0"..."9", "A"..."Z", "a"..."z"]),
        "alpha": ascii(["A"..."Z", "a"..."z"]),
        "ascii": ScalarSet([0...0x7F]),
        "blank": ScalarSet([9...9, 32...32]),
        "cntrl": ScalarSet([0...0x1F, 0x7F...0x7F]),
        "digit": digit,
        "graph": ScalarSet([0x21...0x7E]),
        "lower": ascii(["a"..."z"]),
        "print": ScalarSet([0x20...0x7E]),
        "punct": ScalarSet([0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E]),
        "space": ScalarSet([9...13, 32...32]),
        "upper": ascii(["A"..."Z"]),
        "word": word,
        "xdigit": ascii(["0"..."9", "A"..."F", "a"..."f"]),
    ]

    static func isWord(_ c: UInt32) -> Bool { word.contains(c) }
}

/// Unicode simple case folding, as orbits: every scalar that has a one-scalar lower-, upper- or
/// titlecase mapping, with every scalar it is case-equivalent to (`k` → `K`, U+212A KELVIN SIGN).
/// Built once, on the first `(?i)` pattern (a scan of the planes that have cased letters).
enum CaseFolding {
    static let table: [(UInt32, [UInt32])] = build()

    static func orbit(_ c: UInt32) -> [UInt32] {
        var lo = 0, hi = table.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if table[mid].0 < c { lo = mid + 1 } else { hi = mid }
        }
        return lo < table.count && table[lo].0 == c ? table[lo].1 : [c]
    }

    private static func build() -> [(UInt32, [UInt32])] {
        // Union-find over the scalars that change under a case mapping and their mappings.
        var parent: [UInt32: UInt32] = [:]
        func find(_ x: UInt32) -> UInt32 {
            var x = x
            while let p = parent[x], p != x { x = p }
            return x
        }
        func union(_ a: UInt32, _ b: UInt32) {
            if parent[a] == nil { parent[a] = a }
            if parent[b] == nil { parent[b] = b }
            let ra = find(a), rb = find(b)
            if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
        }
        func single(_ s: String) -> UInt32? {
            var it = s.unicodeScalars.makeIterator()
            guard let first = it.next(), it.next() == nil else { return nil }
            return first.value
        }
        // Cased scripts end below U+1F000 (Adlam, U+1E900–U+1E95F, is the last).
        for v in UInt32(0)..<0x1F000 {
            guard let scalar = Unicode.Scalar(v) else { continue }
            let p = scalar.properties
            guard p.changesWhenCaseMapped else { continue }
            for mapped in [p.lowercaseMapping, p.uppercaseMapping, p.titlecaseMapping] {
                if let m = single(mapped), m != v { union(v, m) }
            }
        }
        var members: [UInt32: [UInt32]] = [:]
        for x in parent.keys { members[find(x), default: []].append(x) }
        var out: [(UInt32, [UInt32])] = []
        for group in members.values where group.count > 1 {
            let sorted = group.sorted()
            for x in sorted { out.append((x, sorted)) }
        }
        return out.sorted { $0.0 < $1.0 }
    }
}
