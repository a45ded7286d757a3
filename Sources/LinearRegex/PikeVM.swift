/// Thompson/Pike simulation of a `Program` that only answers "does it match": every NFA thread
/// advances over the input in lockstep, each instruction is visited at most once per position
/// (a generation mark), so one scalar costs at most one step per instruction. No backtracking, no
/// recursion: memory is O(program size), time O(program size × input length).
enum PikeVM {
    static func run(_ program: Program, _ text: String, anchored: Bool) -> Bool {
        var text = text
        return text.withUTF8 { run(program, $0, anchored: anchored) }
    }

    static func run(_ program: Program, _ utf8: UnsafeBufferPointer<UInt8>, anchored: Bool) -> Bool {
        let n = program.instructions.count
        return program.instructions.withUnsafeBufferPointer { instructions in
            // Two thread lists of at most n each, and the closure's stack: a pc is pushed only
            // when an unvisited pc is visited, at most two at a time, so 2n + 1 suffice.
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: 4 * n + 1) { lists in
                withUnsafeTemporaryAllocation(of: UInt32.self, capacity: n) { mark in
                    mark.initialize(repeating: 0)
                    var machine = Machine(
                        instructions: instructions, sets: program.sets, assertions: program.assertions,
                        current: lists.baseAddress!, following: lists.baseAddress! + n, stack: lists.baseAddress! + 2 * n,
                        mark: mark.baseAddress!)
                    return machine.run(utf8, anchored: anchored)
                }
            }
        }
    }

    /// The scalar at byte `i` of valid UTF-8 (a Swift string's) and its length in bytes.
    @inline(__always)
    static func decode(_ b: UnsafeBufferPointer<UInt8>, at i: Int) -> (scalar: UInt32, length: Int) {
        let b0 = UInt32(b[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(b[i + 1]) & 0x3F, 2) }
        if b0 < 0xF0 { return ((b0 & 0x0F) << 12 | (UInt32(b[i + 1]) & 0x3F) << 6 | UInt32(b[i + 2]) & 0x3F, 3) }
        return ((b0 & 0x07) << 18 | (UInt32(b[i + 1]) & 0x3F) << 12 | (UInt32(b[i + 2]) & 0x3F) << 6 | UInt32(b[i + 3]) & 0x3F, 4)
    }

    /// One run's state, in buffers that live for the run (`withUnsafeTemporaryAllocation`).
    private struct Machine {
        let instructions: UnsafeBufferPointer<Instruction>
        let sets: [ScalarSet]
        let assertions: UInt8
        /// The consuming instructions alive at the current position, and those of the next.
        var current: UnsafeMutablePointer<Int32>
        var following: UnsafeMutablePointer<Int32>
        var currentCount = 0
        var followingCount = 0
        let stack: UnsafeMutablePointer<Int32>
        /// `mark[pc] == generation`: pc was visited at this position.
        let mark: UnsafeMutablePointer<UInt32>
        var generation: UInt32 = 0

        init(instructions: UnsafeBufferPointer<Instruction>, sets: [ScalarSet], assertions: UInt8,
             current: UnsafeMutablePointer<Int32>, following: UnsafeMutablePointer<Int32>,
             stack: UnsafeMutablePointer<Int32>, mark: UnsafeMutablePointer<UInt32>) {
            self.instructions = instructions
            self.sets = sets
            self.assertions = assertions
            self.current = current
            self.following = following
            self.stack = stack
            self.mark = mark
        }

        mutating func run(_ utf8: UnsafeBufferPointer<UInt8>, anchored: Bool) -> Bool {
            var position = 0
            var scalar = utf8.isEmpty ? nil : PikeVM.decode(utf8, at: 0)
            generation = 1
            var matched = addThread(0, context: context(previous: nil, next: scalar?.scalar))
            if matched && !anchored { return true }
            advance()

            while let (c, length) = scalar {
                position += length
                let next = position < utf8.count ? PikeVM.decode(utf8, at: position) : nil
                let context = context(previous: c, next: next?.scalar)
                generation += 1
                matched = step(c, context: context)
                if !anchored {
                    // An unanchored search starts a new thread at every position.
                    if addThread(0, context: context) { matched = true }
                    if matched { return true }
                }
                advance()
                // No thread left: nothing can match later (a match here counts only at the end).
                if anchored && currentCount == 0 { return matched && next == nil }
                scalar = next
            }
            // Anchored: a match instruction reached at the end of the input. Unanchored: none was.
            return anchored && matched
        }

        /// The next position's threads become the current ones.
        private mutating func advance() {
            swap(&current, &following)
            currentCount = followingCount
            followingCount = 0
        }

        /// The assertions that hold between `previous` and `next` (nil: the start / the end).
        private func context(previous: UInt32?, next: UInt32?) -> UInt8 {
            guard assertions != 0 else { return 0 }
            let newline: UInt32 = 10
            var flags: UInt8 = 0
            if previous == nil {
                flags |= Assertion.beginText.rawValue | Assertion.beginLine.rawValue
            } else if previous == newline {
                flags |= Assertion.beginLine.rawValue
            }
            if next == nil {
                flags |= Assertion.endText.rawValue | Assertion.endLine.rawValue
            } else if next == newline {
                flags |= Assertion.endLine.rawValue
            }
            let wordBefore = previous.map(NamedSets.isWord) ?? false
            let wordAfter = next.map(NamedSets.isWord) ?? false
            flags |= wordBefore != wordAfter ? Assertion.wordBoundary.rawValue : Assertion.notWordBoundary.rawValue
            return flags
        }

        /// Advances every current thread over `scalar` into the next position's list; true when
        /// a thread reaches the match instruction.
        private mutating func step(_ scalar: UInt32, context: UInt8) -> Bool {
            var matched = false
            for i in 0..<currentCount {
                let pc = Int(current[i])
                let consumes: Bool
                switch instructions[pc] {
                case .scalar(let c): consumes = c == scalar
                case .set(let index): consumes = sets[index].contains(scalar)
                default: consumes = false
                }
                if consumes && addThread(pc + 1, context: context) { matched = true }
            }
            return matched
        }

        /// Adds `pc` and everything it reaches without consuming input (the epsilon closure under
        /// `context`) to the next position's list; true when the closure holds the match instruction.
        private mutating func addThread(_ start: Int, context: UInt8) -> Bool {
            var matched = false
            var depth = 1
            stack[0] = Int32(start)
            while depth > 0 {
                depth -= 1
                let pc = Int(stack[depth])
                if mark[pc] == generation { continue }
                mark[pc] = generation
                switch instructions[pc] {
                case .scalar, .set:
                    following[followingCount] = Int32(pc)
                    followingCount += 1
                case .split(let a, let b):
                    stack[depth] = Int32(b)
                    stack[depth + 1] = Int32(a)
                    depth += 2
                case .jump(let target):
                    stack[depth] = Int32(target)
                    depth += 1
                case .assert(let a):
                    if context & a.rawValue != 0 {
                        stack[depth] = Int32(pc + 1)
                        depth += 1
                    }
                case .match:
                    matched = true
                }
            }
            return matched
        }
    }
}
