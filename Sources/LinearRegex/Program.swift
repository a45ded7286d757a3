/// One instruction of a Thompson NFA program.
enum Instruction: Sendable, Hashable {
    /// Consumes one scalar equal to the value.
    case scalar(UInt32)
    /// Consumes one scalar in `Program.sets[index]`.
    case set(Int)
    /// Continues at both targets.
    case split(Int, Int)
    case jump(Int)
    /// Continues at the next instruction when the position satisfies the assertion.
    case assert(Assertion)
    case match
}

/// A compiled pattern: immutable, so sharing it between threads needs nothing.
struct Program: Sendable, Hashable {
    var instructions: [Instruction] = []
    var sets: [ScalarSet] = []
    /// The union of the assertions the program uses (0: no position context is computed).
    var assertions: UInt8 = 0
}

/// Node → program (Thompson's construction; counted repetitions are expanded into copies).
struct Compiler {
    private var program = Program()
    private var setIndex: [ScalarSet: Int] = [:]

    static func compile(_ node: Node) throws(LinearRegexError) -> Program {
        var compiler = Compiler()
        try compiler.emit(node)
        _ = try compiler.append(.match)
        return compiler.program
    }

    private var next: Int { program.instructions.count }

    private mutating func append(_ instruction: Instruction) throws(LinearRegexError) -> Int {
        guard program.instructions.count < LinearRegex.Limits.programSize else {
            throw LinearRegexError(
                .tooLarge, offset: 0,
                "the compiled pattern needs more than \(LinearRegex.Limits.programSize) instructions (counted repetitions are expanded: a{n} is n copies of a)")
        }
        program.instructions.append(instruction)
        return program.instructions.count - 1
    }

    private mutating func patch(_ at: Int, _ instruction: Instruction) {
        program.instructions[at] = instruction
    }

    private mutating func emit(_ node: Node) throws(LinearRegexError) {
        switch node {
        case .empty:
            break
        case .literal(let c):
            _ = try append(.scalar(c))
        case .set(let set):
            if let single = set.single {
                _ = try append(.scalar(single))
            } else {
                let index = setIndex[set] ?? program.sets.count
                if index == program.sets.count {
                    program.sets.append(set)
                    setIndex[set] = index
                }
                _ = try append(.set(index))
            }
        case .assertion(let a):
            program.assertions |= a.rawValue
            _ = try append(.assert(a))
        case .concat(let items):
            for item in items { try emit(item) }
        case .alternate(let branches):
            // split L1, L2; L1: a; jump end; L2: split …; last branch; end:
            var jumps: [Int] = []
            for (i, branch) in branches.enumerated() {
                if i == branches.count - 1 {
                    try emit(branch)
                } else {
                    let split = try append(.split(0, 0))
                    try emit(branch)
                    jumps.append(try append(.jump(0)))
                    patch(split, .split(split + 1, next))
                }
            }
            for jump in jumps { patch(jump, .jump(next)) }
        case .repetition(let inner, let min, let max, _):
            if let max {
                for _ in 0..<min { try emit(inner) }
                // x{min,max}: (max - min) nested optional copies, every split leaving to the end.
                var exits: [Int] = []
                for _ in 0..<(max - min) {
                    exits.append(try append(.split(0, 0)))
                    try emit(inner)
                }
                for split in exits { patch(split, .split(split + 1, next)) }
            } else if min == 0 {
                // L: split L+1, end; x; jump L; end:
                let loop = try append(.split(0, 0))
                try emit(inner)
                _ = try append(.jump(loop))
                patch(loop, .split(loop + 1, next))
            } else {
                // x{min,}: min - 1 copies, then L: x; split L, end.
                for _ in 0..<(min - 1) { try emit(inner) }
                let loop = next
                try emit(inner)
                _ = try append(.split(loop, next + 1))
            }
        }
    }
}
