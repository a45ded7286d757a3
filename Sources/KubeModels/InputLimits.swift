/// Limits on one YAML file, checked on the raw text BEFORE it is parsed: the YAML composer and the
/// decoder recurse once per nesting level, so a file nested a few thousand levels deep would
/// overflow the stack. Over a limit, the file is refused with an error naming it (the directory
/// source keeps that file's last good content), never a crash. docs/OPERATING.md lists them.
public struct YAMLLimits: Hashable, Sendable {
    /// Bytes in one file.
    public var maxFileBytes: Int
    /// Nesting depth: block collections (by indentation and `- ` / `? ` indicators) plus flow
    /// collections (`[` `{`). Kubernetes objects nest about 10 levels; CRD schemas about 40.
    public var maxDepth: Int
    /// Documents (`---`) in one file.
    public var maxDocuments: Int
    /// An estimate of the nodes (collection entries and flow items) in one file.
    public var maxNodes: Int

    public init(maxFileBytes: Int = 32 << 20, maxDepth: Int = 100, maxDocuments: Int = 100_000, maxNodes: Int = 2_000_000) {
        self.maxFileBytes = maxFileBytes
        self.maxDepth = maxDepth
        self.maxDocuments = maxDocuments
        self.maxNodes = maxNodes
    }

    public static let `default` = YAMLLimits()
}

/// Why a file was refused before parsing.
public struct YAMLLimitExceeded: Error, Hashable, Sendable, CustomStringConvertible {
    /// The line (from 1) where the limit was crossed; nil for the file size.
    public var line: Int?
    public var problem: String

    public init(line: Int?, problem: String) {
        self.line = line
        self.problem = problem
    }

    public var description: String { (line.map { "line \($0): " } ?? "") + problem }
}

/// A single pass over the YAML text that over-approximates its nesting depth, without recursion
/// and without building anything. It tracks what a YAML scanner needs for structure only: the
/// stack of block indentation levels, flow brackets, quoted scalars (which may span lines),
/// block scalars (`|`, `>`: their lines are skipped), comments and document markers. Each nested
/// block collection sits at a deeper indentation or behind a `- ` / `? ` indicator, and each flow
/// collection behind a bracket, so the estimate is never below the real depth; for ordinary files
/// it is the real depth give or take one.
public struct YAMLPreScan: Sendable {
    public let limits: YAMLLimits

    private enum Quote { case none, single, double }

    public init(limits: YAMLLimits = .default) {
        self.limits = limits
    }

    /// Throws when `text` is over a limit.
    public func check(_ text: String) throws(YAMLLimitExceeded) {
        let size = text.utf8.count
        if size > limits.maxFileBytes {
            throw YAMLLimitExceeded(line: nil, problem: "file is \(size) bytes, more than the limit of \(limits.maxFileBytes)")
        }
        let violation: YAMLLimitExceeded?
        if text.utf8.contains(where: { $0 == 0x0D || $0 == 0xC2 || $0 == 0xE2 }) {
            // libyaml also breaks lines at CR, NEL, LS and PS: the scan must see the same lines.
            violation = Self.normalizedLineBreaks(text).withUnsafeBufferPointer { firstViolation($0) }
        } else {
            violation = text.utf8.withContiguousStorageIfAvailable { firstViolation($0) }
                ?? Array(text.utf8).withUnsafeBufferPointer { firstViolation($0) }
        }
        if let violation { throw violation }
    }

    /// The text's bytes with every line break libyaml knows (CR LF, CR, NEL, LS, PS) as one LF.
    static func normalizedLineBreaks(_ text: String) -> [UInt8] {
        let b = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            switch b[i] {
            case 0x0D:
                out.append(0x0A)
                i += i + 1 < b.count && b[i + 1] == 0x0A ? 2 : 1
            case 0xC2 where i + 1 < b.count && b[i + 1] == 0x85:
                out.append(0x0A)
                i += 2
            case 0xE2 where i + 2 < b.count && b[i + 1] == 0x80 && (b[i + 2] == 0xA8 || b[i + 2] == 0xA9):
                out.append(0x0A)
                i += 3
            default:
                out.append(b[i])
                i += 1
            }
        }
        return out
    }

    private func firstViolation(_ bytes: UnsafeBufferPointer<UInt8>) -> YAMLLimitExceeded? {
        do {
            try scan(bytes)
            return nil
        } catch {
            return error
        }
    }

    // Byte constants.
    private static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), newline = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
    private static let dash = UInt8(ascii: "-"), question = UInt8(ascii: "?"), colon = UInt8(ascii: ":"), comma = UInt8(ascii: ",")
    private static let hash = UInt8(ascii: "#"), singleQuote = UInt8(ascii: "'"), doubleQuote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
    private static let openSquare = UInt8(ascii: "["), closeSquare = UInt8(ascii: "]"), openCurly = UInt8(ascii: "{"), closeCurly = UInt8(ascii: "}")
    private static let pipe = UInt8(ascii: "|"), greater = UInt8(ascii: ">"), dot = UInt8(ascii: "."), percent = UInt8(ascii: "%")
    private static let ampersand = UInt8(ascii: "&"), bang = UInt8(ascii: "!")

    /// A block scalar being skipped: its parent's column, and its content indentation once seen.
    private struct BlockScalar {
        var parentColumn: Int
        var contentColumn: Int?
    }

    private func scan(_ b: UnsafeBufferPointer<UInt8>) throws(YAMLLimitExceeded) {
        let n = b.count
        var i = 0
        var line = 1
        var indents: [Int] = []          // Columns of the open block levels.
        var flowDepth = 0
        var quote = Quote.none
        var blockScalar: BlockScalar?
        var documents = 1
        var nodes = 0

        func isBlank(_ c: UInt8) -> Bool { c == Self.space || c == Self.tab || c == Self.newline || c == Self.cr }
        func at(_ k: Int) -> UInt8 { k < n ? b[k] : Self.newline }
        func skipRestOfLine() {
            while i < n, b[i] != Self.newline { i += 1 }
            i += 1
            line += 1
        }
        func depthCheck() throws(YAMLLimitExceeded) {
            if indents.count + flowDepth > limits.maxDepth {
                throw YAMLLimitExceeded(line: line, problem: "nested more than \(limits.maxDepth) levels deep (the limit)")
            }
        }
        func countNode() throws(YAMLLimitExceeded) {
            nodes += 1
            if nodes > limits.maxNodes {
                throw YAMLLimitExceeded(line: line, problem: "more than \(limits.maxNodes) nodes (the limit)")
            }
        }

        while i < n {
            // At the start of a line.
            let lineStart = i
            var column = 0
            while i < n, b[i] == Self.space { i += 1; column += 1 }
            let first = at(i)
            let blankLine = first == Self.newline || first == Self.cr
            let marker = i == lineStart && i + 2 < n && isBlank(at(i + 3))
                && ((b[i] == Self.dash && b[i + 1] == Self.dash && b[i + 2] == Self.dash) || (b[i] == Self.dot && b[i + 1] == Self.dot && b[i + 2] == Self.dot))
            if var scalar = blockScalar, !marker {
                // Lines of a block scalar (`|`, `>`): blank ones, and those indented at least as
                // much as its first line, which must be indented more than its parent.
                if blankLine { skipRestOfLine(); continue }
                if scalar.contentColumn == nil, column > scalar.parentColumn { scalar.contentColumn = column }
                if let content = scalar.contentColumn, column >= content {
                    blockScalar = scalar
                    skipRestOfLine()
                    continue
                }
            }
            blockScalar = nil
            if quote == .none, flowDepth == 0 {
                if blankLine || first == Self.hash || first == Self.tab || (i == lineStart && first == Self.percent) {
                    // A blank or comment line, a directive (or a tab-indented line, which libyaml rejects).
                    skipRestOfLine()
                    continue
                }
                if marker {
                    // `---` / `...` end the document's block structure.
                    if b[i] == Self.dash {
                        documents += 1
                        if documents > limits.maxDocuments {
                            throw YAMLLimitExceeded(line: line, problem: "more than \(limits.maxDocuments) documents (the limit)")
                        }
                    }
                    indents.removeAll(keepingCapacity: true)
                    i += 3
                    column += 3
                } else {
                    while let top = indents.last, top > column { indents.removeLast() }
                    if indents.last != column {
                        indents.append(column)
                        try depthCheck()
                    }
                }
            }
            // The rest of the line. `nodeStart`: the next non-blank character begins a node, so a
            // bracket, quote, indicator or block-scalar header there means what it says.
            var nodeStart = quote == .none
            // Where the innermost entry or key of this line starts: a block scalar's parent.
            var parentColumn = marker ? -1 : column
            while i < n, b[i] != Self.newline {
                let c = b[i]
                switch quote {
                case .single:
                    if c == Self.singleQuote {
                        if at(i + 1) == Self.singleQuote { i += 2; continue }  // '' is a quote inside.
                        quote = .none
                    }
                    i += 1
                    continue
                case .double:
                    if c == Self.backslash { i += 2; continue }
                    if c == Self.doubleQuote { quote = .none }
                    i += 1
                    continue
                case .none:
                    break
                }
                if c == Self.space || c == Self.tab || c == Self.cr { i += 1; column += 1; continue }
                if c == Self.hash, i == lineStart || isBlank(b[i - 1]) { break }  // A comment.
                if nodeStart {
                    if (c == Self.dash || c == Self.question), flowDepth == 0, isBlank(at(i + 1)) {
                        // `- ` / `? `: an entry whose content nests one level deeper.
                        try countNode()
                        parentColumn = column
                        i += 1
                        column += 1
                        indents.append(column)
                        try depthCheck()
                        continue
                    }
                    if c == Self.openSquare || c == Self.openCurly {
                        flowDepth += 1
                        try countNode()
                        try depthCheck()
                        i += 1
                        column += 1
                        continue
                    }
                    if (c == Self.pipe || c == Self.greater), flowDepth == 0 {
                        blockScalar = BlockScalar(parentColumn: parentColumn, contentColumn: nil)
                        break  // The rest of the line is the header (and maybe a comment).
                    }
                    if c == Self.ampersand || c == Self.bang {
                        // An anchor or a tag: the node itself follows.
                        while i < n, !isBlank(b[i]) { i += 1; column += 1 }
                        continue
                    }
                    nodeStart = false
                    if flowDepth == 0 { parentColumn = column }
                    if c == Self.singleQuote || c == Self.doubleQuote {
                        quote = c == Self.singleQuote ? .single : .double
                        i += 1
                        continue
                    }
                }
                if flowDepth > 0 {
                    switch c {
                    case Self.openSquare, Self.openCurly:
                        flowDepth += 1
                        try countNode()
                        try depthCheck()
                        nodeStart = true
                    case Self.closeSquare, Self.closeCurly:
                        flowDepth -= 1
                    case Self.comma, Self.colon:
                        if c == Self.comma { try countNode() }
                        nodeStart = true
                    default:
                        break
                    }
                } else if c == Self.colon, isBlank(at(i + 1)) {
                    // `key: value`: the value starts a node.
                    try countNode()
                    nodeStart = true
                }
                i += 1
                column += 1
            }
            skipRestOfLine()
        }
    }
}

/// Limits on a JSON document from the API server (a list body, one watch event), checked on the
/// bytes before decoding, like `YAMLLimits`.
public struct JSONLimits: Hashable, Sendable {
    /// Bytes in one document.
    public var maxBytes: Int
    /// Nesting of arrays and objects. Kubernetes objects nest about 15 levels (managedFields).
    public var maxDepth: Int

    public init(maxBytes: Int = 256 << 20, maxDepth: Int = 200) {
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
    }

    public static let `default` = JSONLimits()

    /// Throws when `bytes` are over a limit: one pass counting brackets outside strings.
    public func check(_ bytes: some Collection<UInt8>) throws(JSONLimitExceeded) {
        if bytes.count > maxBytes {
            throw JSONLimitExceeded(problem: "\(bytes.count) bytes, more than the limit of \(maxBytes)")
        }
        var depth = 0
        var inString = false
        var escaped = false
        for c in bytes {
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch c {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxDepth { throw JSONLimitExceeded(problem: "nested more than \(maxDepth) levels deep (the limit)") }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
    }
}

/// Why a JSON document was refused before decoding.
public struct JSONLimitExceeded: Error, Hashable, Sendable, CustomStringConvertible {
    public var problem: String
    public init(problem: String) { self.problem = problem }
    public var description: String { "refused before decoding: \(problem)" }
}

extension Duration {
    /// For log lines: `250ms`, `1.9s`, `42s`, `3m20s` (not `1.9167055764385474 seconds`).
    public var shortDescription: String {
        let (seconds, attoseconds) = components
        let total = Double(seconds) + Double(attoseconds) / 1e18
        if total < 0 { return "-" + (Duration.zero - self).shortDescription }
        if total < 0.001 { return "\(Int((total * 1e6).rounded()))µs" }
        if total < 1 { return "\(Int((total * 1e3).rounded()))ms" }
        if total < 10 { return "\((total * 10).rounded() / 10)s" }
        if total < 120 { return "\(Int(total.rounded()))s" }
        let whole = Int(total.rounded())
        return "\(whole / 60)m\(whole % 60)s"
    }
}
