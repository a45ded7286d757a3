/// A regular expression with RE2 semantics, matched in time linear in the input.
///
/// The pattern is parsed (RE2 syntax), compiled to a Thompson NFA program and matched by a Pike VM
/// simulation: every thread of the NFA advances in lockstep over the input, at most one thread per
/// instruction, so a match costs at most O(program size × input length) steps, whatever the pattern
/// and the input. There is no backtracking: `/(a+)+b` on a long run of `a`s costs what `/a+b` does.
///
/// Matching works on Unicode scalars (decoded from the string's UTF-8): `.` and a character class
/// match one scalar, literals compare scalars, and nothing is normalized (a precomposed `é` does not
/// match `e` + U+0301). `\d`, `\w`, `\s`, `\b` and the POSIX classes are ASCII, as in RE2. `(?i)`
/// uses Unicode simple case folding (`k` matches `K` and the Kelvin sign U+212A, `ß` does not match `SS`).
///
/// Only boolean answers are computed: captures and greediness do not change whether a string
/// matches, so groups are plain groups and lazy quantifiers are accepted and act like greedy ones.
///
/// Constructs RE2 cannot express in linear time (backreferences, lookaround, atomic groups,
/// possessive quantifiers, recursion, conditionals, `\G`) are refused by `init` with a
/// `LinearRegexError` that names the construct and where it starts; so are patterns over the limits
/// (`LinearRegex.Limits`).
public struct LinearRegex: Sendable, Hashable, CustomStringConvertible {
    /// The limits `init` enforces on a pattern.
    public enum Limits {
        /// The longest pattern accepted, in UTF-8 bytes (the Gateway API's own limit for a path or
        /// query parameter value; a header value may be longer there, not here).
        public static let patternBytes = 1024
        /// The most instructions a compiled program may hold, counted after counted repetitions are
        /// expanded (`a{3}` is three copies of `a`, `a{1000}` is over the limit). A match costs at
        /// most about this many steps per scalar of input, so this bounds what the worst pattern
        /// costs on the longest input. (Envoy refuses RE2 programs over 100 by default.)
        public static let programSize = 1000
        /// The largest count in `{n}`, `{n,}`, `{n,m}` (RE2's limit); nested counted repetitions
        /// may not multiply past it either (RE2 refuses `(a{100}){100}` too).
        public static let repeatCount = 1000
        /// The deepest nesting of groups.
        public static let nestingDepth = 100
    }

    /// The pattern as given.
    public let pattern: String
    let program: Program

    /// Parses and compiles `pattern`; throws when it is not valid RE2 syntax, uses a construct RE2
    /// does not support, or exceeds a limit.
    public init(_ pattern: String) throws(LinearRegexError) {
        guard pattern.utf8.count <= Limits.patternBytes else {
            throw LinearRegexError(
                .tooLarge, offset: 0,
                "the pattern is \(pattern.utf8.count) bytes long; at most \(Limits.patternBytes) are accepted")
        }
        var parser = Parser(pattern)
        let node = try parser.parse()
        self.pattern = pattern
        program = try Compiler.compile(node)
    }

    /// True when the whole of `text` matches (as if the pattern were `\A(?:pattern)\z`).
    public func wholeMatch(_ text: String) -> Bool {
        PikeVM.run(program, text, anchored: true)
    }

    /// True when some part of `text` (possibly empty) matches: an unanchored search.
    public func containsMatch(_ text: String) -> Bool {
        PikeVM.run(program, text, anchored: false)
    }

    /// The number of instructions of the compiled program (what `Limits.programSize` bounds).
    public var programSize: Int { program.instructions.count }

    public var description: String { pattern }

    public static func == (a: LinearRegex, b: LinearRegex) -> Bool { a.pattern == b.pattern }
    public func hash(into hasher: inout Hasher) { hasher.combine(pattern) }
}

/// Why a pattern was refused: what, and where it starts.
public struct LinearRegexError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// Well-formed in some regular-expression dialect, but not something RE2 (and so this
        /// engine) supports: backreferences, lookaround, atomic groups, possessive quantifiers,
        /// recursion, conditionals, `\G`, `\Z`, Unicode property classes.
        case unsupported
        /// Not a valid pattern: an unclosed group or class, a quantifier with nothing to repeat, a
        /// bad escape or range.
        case syntax
        /// Over a limit of `LinearRegex.Limits`.
        case tooLarge
    }

    public var kind: Kind
    /// Where the offending construct starts, in Unicode scalars from the start of the pattern.
    public var offset: Int
    /// What is wrong, naming the construct (e.g. "lookahead (?= is not supported").
    public var message: String

    public init(_ kind: Kind, offset: Int, _ message: String) {
        self.kind = kind
        self.offset = offset
        self.message = message
    }

    public var description: String { "\(message) (at offset \(offset))" }
}
