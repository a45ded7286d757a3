/// A zero-width condition on the position between two scalars.
enum Assertion: UInt8, Sendable, Hashable {
    case beginText = 1  // \A, and ^ without (?m)
    case endText = 2  // \z, and $ without (?m)
    case beginLine = 4  // ^ with (?m): at the start, or after \n
    case endLine = 8  // $ with (?m): at the end, or before \n
    case wordBoundary = 16  // \b (ASCII word characters)
    case notWordBoundary = 32  // \B
}

/// The parsed pattern. Groups are gone (only boolean answers are computed) and so is greediness;
/// case-insensitivity is already applied (a literal becomes the set of its case variants).
indirect enum Node: Sendable {
    case empty
    case literal(UInt32)
    case set(ScalarSet)
    case assertion(Assertion)
    case concat([Node])
    case alternate([Node])
    /// `max == nil`: unbounded. `factor`: the count RE2 multiplies along nested counted
    /// repetitions (the largest count of `{n,m}`, 1 for `*`, `+`, `?`).
    case repetition(Node, min: Int, max: Int?, factor: Int)
}

/// A recursive-descent parser of RE2 syntax (https://github.com/google/re2/wiki/Syntax) over the
/// pattern's Unicode scalars. Refuses what RE2 refuses, naming the construct and its offset.
struct Parser {
    private let scalars: [UInt32]
    private var index = 0
    private var caseInsensitive = false  // (?i)
    private var multiLine = false  // (?m)
    private var dotAll = false  // (?s)
    private var groupNames: Set<String> = []

    init(_ pattern: String) {
        scalars = pattern.unicodeScalars.map(\.value)
    }

    mutating func parse() throws(LinearRegexError) -> Node {
        let node = try parseAlternation(depth: 0)
        if index < scalars.count {
            // parseAlternation stops only at the end or at a ")" with no group open.
            throw LinearRegexError(.syntax, offset: index, "unexpected ) with no group open")
        }
        return node
    }

    // MARK: Structure

    private mutating func parseAlternation(depth: Int) throws(LinearRegexError) -> Node {
        var branches = [try parseConcatenation(depth: depth)]
        while peek == ascii("|") {
            index += 1
            branches.append(try parseConcatenation(depth: depth))
        }
        return branches.count == 1 ? branches[0] : .alternate(branches)
    }

    private mutating func parseConcatenation(depth: Int) throws(LinearRegexError) -> Node {
        var items: [Node] = []
        while let c = peek, c != ascii("|"), c != ascii(")") {
            var atoms = try parseAtom(depth: depth)
            // A quantifier applies to the last atom (in \Q…\E, to the last scalar).
            if let last = atoms.popLast() {
                items += atoms
                items.append(try parseQuantifiers(last))
            }
        }
        switch items.count {
        case 0: return .empty
        case 1: return items[0]
        default: return .concat(items)
        }
    }

    /// The atoms at `index`: usually one; none for a flag group `(?i)` or an empty `\Q\E`.
    private mutating func parseAtom(depth: Int) throws(LinearRegexError) -> [Node] {
        let start = index
        let c = scalars[index]
        index += 1
        switch c {
        case ascii("("):
            return try parseGroup(start: start, depth: depth)
        case ascii("["):
            return [.set(try parseClass(start: start))]
        case ascii("."):
            return [.set(dotAll ? ScalarSet([0...ScalarSet.maxScalar]) : ScalarSet([0...9, 11...ScalarSet.maxScalar]))]
        case ascii("^"):
            return [.assertion(multiLine ? .beginLine : .beginText)]
        case ascii("$"):
            return [.assertion(multiLine ? .endLine : .endText)]
        case ascii("\\"):
            switch try parseEscape(start: start, inClass: false) {
            case .scalar(let s): return [literal(s)]
            case .set(let set): return [.set(set)]
            case .assertion(let a): return [.assertion(a)]
            case .quoted(let quoted): return quoted.map(literal)
            }
        case ascii("*"), ascii("+"), ascii("?"):
            throw LinearRegexError(.syntax, offset: start, "missing argument to repetition operator \(text(start, index))")
        case ascii("{"):
            if let repeatEnd = countedRepeat(at: start) {
                throw LinearRegexError(.syntax, offset: start, "missing argument to repetition operator \(text(start, repeatEnd.end))")
            }
            return [literal(c)]  // not a counted repetition: a literal {, as in RE2
        default:
            return [literal(c)]
        }
    }

    private func literal(_ c: UInt32) -> Node {
        guard caseInsensitive else { return .literal(c) }
        let orbit = CaseFolding.orbit(c)
        return orbit.count == 1 ? .literal(c) : .set(ScalarSet(orbit.map { $0...$0 }))
    }

    // MARK: Quantifiers

    private mutating func parseQuantifiers(_ atom: Node) throws(LinearRegexError) -> Node {
        var node = atom
        var previous: String?
        while let c = peek {
            let start = index
            var min = 0, max: Int?
            switch c {
            case ascii("*"): (min, max) = (0, nil)
            case ascii("+"): (min, max) = (1, nil)
            case ascii("?"): (min, max) = (0, 1)
            case ascii("{"):
                guard let counted = countedRepeat(at: index) else { return node }
                (min, max) = (counted.min, counted.max)
                index = counted.end - 1
            default:
                return node
            }
            index += 1
            if peek == ascii("?") {
                index += 1  // lazy: the same boolean answer
            } else if peek == ascii("+") {
                throw LinearRegexError(
                    .unsupported, offset: start,
                    "possessive quantifier \(text(start, index + 1)) is not supported (RE2 has no possessive quantifiers)")
            }
            let operatorText = text(start, index)
            if let previous {
                throw LinearRegexError(
                    .syntax, offset: start,
                    "bad repetition operator \(previous)\(operatorText): a quantifier cannot follow another (write (?:…)\(previous) and quantify the group)")
            }
            if c == ascii("{") {
                let largest = max ?? min
                guard largest <= LinearRegex.Limits.repeatCount else {
                    throw LinearRegexError(
                        .tooLarge, offset: start,
                        "repetition count in \(operatorText) is over \(LinearRegex.Limits.repeatCount)")
                }
                if let max, max < min {
                    throw LinearRegexError(.syntax, offset: start, "invalid repetition range \(operatorText): the maximum is below the minimum")
                }
                // RE2 also refuses nested counted repetitions whose counts multiply past the limit.
                let product = Swift.max(largest, 1) * Self.repeatProduct(node)
                guard product <= LinearRegex.Limits.repeatCount else {
                    throw LinearRegexError(
                        .tooLarge, offset: start,
                        "nested repetition counts multiply to \(product), over \(LinearRegex.Limits.repeatCount)")
                }
                node = .repetition(node, min: min, max: max, factor: Swift.max(largest, 1))
            } else {
                node = .repetition(node, min: min, max: max, factor: 1)
            }
            previous = operatorText
        }
        return node
    }

    /// `{n}`, `{n,}` or `{n,m}` starting at `i`: the counts and the index after `}`; nil when the
    /// text is not a counted repetition (RE2 then reads `{` as a literal).
    private func countedRepeat(at i: Int) -> (min: Int, max: Int?, end: Int)? {
        var j = i + 1
        func number() -> Int? {
            var value = 0, digits = 0
            while j < scalars.count, scalars[j] >= ascii("0"), scalars[j] <= ascii("9") {
                // Saturate: a count this large is refused as too large, not read as a literal.
                value = Swift.min(value * 10 + Int(scalars[j] - ascii("0")), 1_000_000)
                digits += 1
                j += 1
            }
            return digits > 0 ? value : nil
        }
        guard let min = number() else { return nil }
        var max: Int? = min
        if j < scalars.count, scalars[j] == ascii(",") {
            j += 1
            max = number()
        }
        guard j < scalars.count, scalars[j] == ascii("}") else { return nil }
        return (min, max, j + 1)
    }

    /// The product of the counted repetitions nested in `node` (along the worst path).
    private static func repeatProduct(_ node: Node) -> Int {
        switch node {
        case .empty, .literal, .set, .assertion: return 1
        case .concat(let items), .alternate(let items): return items.map(repeatProduct).max() ?? 1
        case .repetition(let inner, _, _, let factor): return factor * repeatProduct(inner)
        }
    }

    // MARK: Groups

    /// After `(`: a group, a flag setting, or a construct RE2 does not support.
    private mutating func parseGroup(start: Int, depth: Int) throws(LinearRegexError) -> [Node] {
        guard depth < LinearRegex.Limits.nestingDepth else {
            throw LinearRegexError(.tooLarge, offset: start, "groups are nested more than \(LinearRegex.Limits.nestingDepth) deep")
        }
        if peek == ascii("*") {
            // (*VERB) in PCRE; for RE2 a repetition with nothing to repeat.
            throw LinearRegexError(.unsupported, offset: start, "(* is not supported (PCRE verbs do not exist in RE2; a quantifier needs something to repeat)")
        }
        guard peek == ascii("?") else { return [try groupBody(start: start, depth: depth)] }
        index += 1
        func unsupported(_ what: String, _ length: Int) -> LinearRegexError {
            LinearRegexError(.unsupported, offset: start, "\(what) \(text(start, Swift.min(start + length, scalars.count))) is not supported (RE2 syntax has no \(Self.family(what)))")
        }
        let c = peek ?? 0, d = peek(1) ?? 0
        switch c {
        case ascii(":"):
            index += 1
            return [try groupBody(start: start, depth: depth)]
        case ascii("="): throw unsupported("lookahead", 3)
        case ascii("!"): throw unsupported("negative lookahead", 3)
        case ascii(">"): throw unsupported("atomic group", 3)
        case ascii("#"): throw unsupported("comment", 3)
        case ascii("|"): throw unsupported("branch reset group", 3)
        case ascii("("): throw unsupported("conditional", 3)
        case ascii("&"): throw unsupported("subroutine call", 3)
        case ascii("'"): throw unsupported("quoted group name", 3)
        case ascii("R"): throw unsupported("recursion", 3)
        case ascii("^"): throw unsupported("flag reset", 3)
        case ascii("+"): throw unsupported("subroutine call", 3)
        case ascii("<") where d == ascii("="): throw unsupported("lookbehind", 4)
        case ascii("<") where d == ascii("!"): throw unsupported("negative lookbehind", 4)
        case ascii("<"):
            index += 1
            try parseGroupName(start: start)
            return [try groupBody(start: start, depth: depth)]
        case ascii("P") where d == ascii("<"):
            index += 2
            try parseGroupName(start: start)
            return [try groupBody(start: start, depth: depth)]
        case ascii("P") where d == ascii("="): throw unsupported("named backreference", 4)
        case ascii("P") where d == ascii(">"): throw unsupported("recursion", 4)
        case ascii("-") where Self.isDigit(d): throw unsupported("recursion", 4)
        case let c where Self.isDigit(c): throw unsupported("recursion", 3)
        default:
            break
        }
        // Flags: (?flags) for the rest of the enclosing group, (?flags:re) for re.
        var negated = false, sawFlag = false
        var flags = (caseInsensitive, multiLine, dotAll)
        while true {
            guard let f = peek else {
                throw LinearRegexError(.syntax, offset: start, "missing ) after the flags \(text(start, index))")
            }
            index += 1
            switch f {
            case ascii("i"): flags.0 = !negated; sawFlag = true
            case ascii("m"): flags.1 = !negated; sawFlag = true
            case ascii("s"): flags.2 = !negated; sawFlag = true
            case ascii("U"): sawFlag = true  // ungreedy: no effect on a boolean match
            case ascii("-") where !negated:
                negated = true
                sawFlag = false  // a flag must follow the -
            case ascii(")"), ascii(":"):
                guard sawFlag else {
                    throw LinearRegexError(.syntax, offset: start, "invalid or empty flags \(text(start, index))")
                }
                if f == ascii(")") {
                    (caseInsensitive, multiLine, dotAll) = flags
                    return []
                }
                let saved = (caseInsensitive, multiLine, dotAll)
                (caseInsensitive, multiLine, dotAll) = flags
                let body = try groupBody(start: start, depth: depth)
                (caseInsensitive, multiLine, dotAll) = saved
                return [body]
            default:
                throw LinearRegexError(.syntax, offset: start, "unknown group flag \(text(index - 1, index)) in \(text(start, index))")
            }
        }
    }

    private static func family(_ what: String) -> String {
        switch what {
        case "lookahead", "negative lookahead", "lookbehind", "negative lookbehind": "lookaround"
        case "named backreference": "backreferences"
        case "recursion", "subroutine call": "recursion"
        case "conditional": "conditionals"
        case "atomic group": "atomic groups"
        case "comment": "comment groups"
        default: "such group"
        }
    }

    /// `name>` of `(?P<name>` or `(?<name>`: word characters, not empty, not used before.
    private mutating func parseGroupName(start: Int) throws(LinearRegexError) {
        let nameStart = index
        while let c = peek, c != ascii(">") {
            guard let scalar = Unicode.Scalar(c), scalar.properties.isAlphabetic || Self.isDigit(c) || c == ascii("_") else {
                throw LinearRegexError(.syntax, offset: start, "invalid group name in \(text(start, index + 1))")
            }
            index += 1
        }
        guard peek == ascii(">"), index > nameStart else {
            throw LinearRegexError(.syntax, offset: start, "invalid group name in \(text(start, index))")
        }
        let name = String(String.UnicodeScalarView(scalars[nameStart..<index].compactMap(Unicode.Scalar.init)))
        guard groupNames.insert(name).inserted else {
            throw LinearRegexError(.syntax, offset: start, "duplicate group name \(name)")
        }
        index += 1
    }

    /// The group's alternation up to its `)`; flags set inside end with it.
    private mutating func groupBody(start: Int, depth: Int) throws(LinearRegexError) -> Node {
        let saved = (caseInsensitive, multiLine, dotAll)
        let body = try parseAlternation(depth: depth + 1)
        guard peek == ascii(")") else {
            throw LinearRegexError(.syntax, offset: start, "missing ) for the group opened here")
        }
        index += 1
        (caseInsensitive, multiLine, dotAll) = saved
        return body
    }

    // MARK: Classes

    /// After `[`: a bracketed class, with `(?i)` folding and `^` negation applied.
    private mutating func parseClass(start: Int) throws(LinearRegexError) -> ScalarSet {
        var negated = false
        if peek == ascii("^") {
            negated = true
            index += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        var first = true
        while true {
            guard let c = peek else {
                throw LinearRegexError(.syntax, offset: start, "missing ] for the character class opened here")
            }
            if c == ascii("]") && !first {
                index += 1
                break
            }
            first = false
            if c == ascii("["), peek(1) == ascii(":"), let posix = try parsePosixClass() {
                ranges += posix.ranges
                continue
            }
            let itemStart = index
            switch try classAtom() {
            case .set(let set):
                ranges += set.ranges
            case .scalar(let lo):
                if peek == ascii("-"), let after = peek(1), after != ascii("]") {
                    index += 1
                    guard case .scalar(let hi) = try classAtom() else {
                        throw LinearRegexError(.syntax, offset: itemStart, "bad character class range \(text(itemStart, index))")
                    }
                    guard lo <= hi else {
                        throw LinearRegexError(.syntax, offset: itemStart, "bad character class range \(text(itemStart, index)): the end is below the start")
                    }
                    ranges.append(lo...hi)
                } else {
                    ranges.append(lo...lo)
                }
            }
        }
        var set = ScalarSet(ranges)
        if caseInsensitive { set = set.caseFolded() }
        return negated ? set.inverted() : set
    }

    private enum ClassAtom { case scalar(UInt32), set(ScalarSet) }

    private mutating func classAtom() throws(LinearRegexError) -> ClassAtom {
        let start = index
        let c = scalars[index]
        index += 1
        guard c == ascii("\\") else { return .scalar(c) }
        switch try parseEscape(start: start, inClass: true) {
        case .scalar(let s): return .scalar(s)
        case .set(let set): return .set(set)
        case .assertion, .quoted:
            throw LinearRegexError(.syntax, offset: start, "invalid escape \(text(start, index)) in a character class")
        }
    }

    /// `[:name:]` or `[:^name:]` at `index`; nil (nothing consumed) when no `:]` closes it, so
    /// the `[` is a literal.
    private mutating func parsePosixClass() throws(LinearRegexError) -> ScalarSet? {
        let start = index
        var j = index + 2
        while j + 1 < scalars.count, !(scalars[j] == ascii(":") && scalars[j + 1] == ascii("]")) { j += 1 }
        guard j + 1 < scalars.count else { return nil }
        var name = text(start + 2, j)
        let negated = name.hasPrefix("^")
        if negated { name.removeFirst() }
        guard var set = NamedSets.posix[name] else {
            throw LinearRegexError(.syntax, offset: start, "invalid POSIX character class \(text(start, j + 2))")
        }
        index = j + 2
        // Folded before negation, as RE2 does: (?i)[[:^lower:]] matches no letter.
        if caseInsensitive { set = set.caseFolded() }
        return negated ? set.inverted() : set
    }

    // MARK: Escapes

    private enum Escape {
        case scalar(UInt32)
        case set(ScalarSet)
        case assertion(Assertion)
        case quoted([UInt32])
    }

    /// After `\` (at `start`).
    private mutating func parseEscape(start: Int, inClass: Bool) throws(LinearRegexError) -> Escape {
        guard let c = peek else {
            throw LinearRegexError(.syntax, offset: start, "trailing \\ at the end of the pattern")
        }
        index += 1
        func unsupported(_ message: String) -> LinearRegexError {
            LinearRegexError(.unsupported, offset: start, message)
        }
        func perlClass(_ set: ScalarSet, negated: Bool) -> Escape {
            // Folded before negation, as RE2 does: (?i)\W does not match k, K or the Kelvin sign.
            let folded = caseInsensitive ? set.caseFolded() : set
            return .set(negated ? folded.inverted() : folded)
        }
        switch c {
        case ascii("1")...ascii("7") where peek.map(Self.isOctal) ?? false:
            return .scalar(octal(first: c))
        case ascii("0"):
            return .scalar(octal(first: c))
        case ascii("1")...ascii("9"):
            throw unsupported("backreference \(text(start, index)) is not supported (RE2 has no backreferences)")
        case ascii("x"):
            return .scalar(try hexEscape(start: start))
        case ascii("a"): return .scalar(7)
        case ascii("f"): return .scalar(12)
        case ascii("t"): return .scalar(9)
        case ascii("n"): return .scalar(10)
        case ascii("r"): return .scalar(13)
        case ascii("v"): return .scalar(11)
        case ascii("d"): return perlClass(NamedSets.digit, negated: false)
        case ascii("D"): return perlClass(NamedSets.digit, negated: true)
        case ascii("w"): return perlClass(NamedSets.word, negated: false)
        case ascii("W"): return perlClass(NamedSets.word, negated: true)
        case ascii("s"): return perlClass(NamedSets.space, negated: false)
        case ascii("S"): return perlClass(NamedSets.space, negated: true)
        case ascii("A") where !inClass: return .assertion(.beginText)
        case ascii("z") where !inClass: return .assertion(.endText)
        case ascii("b") where !inClass: return .assertion(.wordBoundary)
        case ascii("B") where !inClass: return .assertion(.notWordBoundary)
        case ascii("Q") where !inClass:
            var quoted: [UInt32] = []
            while index < scalars.count {
                if scalars[index] == ascii("\\"), peek(1) == ascii("E") {
                    index += 2
                    break
                }
                quoted.append(scalars[index])
                index += 1
            }
            return .quoted(quoted)
        case ascii("p"), ascii("P"):
            throw unsupported("Unicode character class \(text(start, Swift.min(index + 1, scalars.count))) is not supported by this engine (use an explicit range such as [\\x{370}-\\x{3FF}])")
        case ascii("Z"):
            throw unsupported("\\Z is not supported (not RE2 syntax): use \\z or $")
        case ascii("G"):
            throw unsupported("\\G (the end of the previous match) is not supported (not RE2 syntax)")
        case ascii("k"):
            throw unsupported("named backreference \\k is not supported (RE2 has no backreferences)")
        case ascii("g"):
            throw unsupported("backreference or subroutine call \\g is not supported (RE2 has neither)")
        case ascii("K"):
            throw unsupported("\\K (reset of the match start) is not supported (not RE2 syntax)")
        case ascii("C"):
            throw unsupported("\\C (any byte) is not supported")
        case let c where c < 0x80 && !NamedSets.isWord(c):
            return .scalar(c)  // escaped punctuation (or space): itself
        case let c where c < 0x80:
            throw unsupported("escape \(text(start, index)) is not supported (not RE2 syntax)")
        default:
            throw LinearRegexError(.syntax, offset: start, "invalid escape \(text(start, index))")
        }
    }

    /// An octal escape: `\0`, `\0nn`, `\nn`, `\nnn` (at most three digits; the first already read).
    private mutating func octal(first: UInt32) -> UInt32 {
        var value = first - ascii("0")
        var digits = 1
        while digits < 3, let c = peek, Self.isOctal(c) {
            value = value * 8 + (c - ascii("0"))
            index += 1
            digits += 1
        }
        return value
    }

    /// `\xHH` or `\x{H…}` (after the `x`).
    private mutating func hexEscape(start: Int) throws(LinearRegexError) -> UInt32 {
        func hexValue(_ c: UInt32) -> UInt32? {
            switch c {
            case ascii("0")...ascii("9"): c - ascii("0")
            case ascii("a")...ascii("f"): c - ascii("a") + 10
            case ascii("A")...ascii("F"): c - ascii("A") + 10
            default: nil
            }
        }
        func bad(_ end: Int) -> LinearRegexError {
            LinearRegexError(.syntax, offset: start, "invalid escape \(text(start, Swift.min(end, scalars.count)))")
        }
        if peek == ascii("{") {
            index += 1
            var value: UInt32 = 0, digits = 0
            while let c = peek, let v = hexValue(c) {
                value = Swift.min(value * 16 + v, 0x11_0000)
                digits += 1
                index += 1
            }
            guard peek == ascii("}"), digits > 0 else { throw bad(index + 1) }
            index += 1
            guard value <= ScalarSet.maxScalar else { throw bad(index) }
            return value
        }
        guard let h = peek.flatMap(hexValue), let l = peek(1).flatMap(hexValue) else { throw bad(index + 2) }
        index += 2
        return h * 16 + l
    }

    // MARK: Helpers

    private var peek: UInt32? { index < scalars.count ? scalars[index] : nil }
    private func peek(_ ahead: Int) -> UInt32? { index + ahead < scalars.count ? scalars[index + ahead] : nil }

    /// The pattern's text from scalar `from` to `to` (for messages).
    private func text(_ from: Int, _ to: Int) -> String {
        String(String.UnicodeScalarView(scalars[from..<Swift.max(from, to)].compactMap(Unicode.Scalar.init)))
    }

    private static func isDigit(_ c: UInt32) -> Bool { c >= 0x30 && c <= 0x39 }
    private static func isOctal(_ c: UInt32) -> Bool { c >= 0x30 && c <= 0x37 }
}

@inline(__always) private func ascii(_ c: Unicode.Scalar) -> UInt32 { c.value }
