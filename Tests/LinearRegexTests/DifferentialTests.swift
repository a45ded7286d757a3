import PortwayTestSupport
import Testing
@testable import LinearRegex

/// Random small patterns from the subset both engines read the same way, and short inputs.
struct PatternGenerator {
    var rng: SeededRandom
    private var groups = 0

    init(rng: SeededRandom) { self.rng = rng }

    // Swift's Regex reads `[]a]` and `{,n}` differently from RE2, and `$` before a final newline,
    // and folds `(?i)[[:^lower:]]` after negating it (RE2 before): those are covered by the table
    // tests, not here.
    static let atoms = ["a", "b", "c", "A", "\\.", ".", "[ab]", "[^a]", "[a-c]", "[a-]", "[-b]", "[\\d.]", "\\d", "\\w", "\\s",
                        "\\W", "\\D", "[[:alpha:]]", "[[:^digit:]]", "1", " ", "\\x61", "(?:)"]
    static let quantifiers = ["*", "+", "?", "{2}", "{1,}", "{0,2}", "{1,3}", "{0}", "*?", "+?", "??", "{1,2}?"]
    static let assertions = ["^", "$", "\\b", "\\B", "\\A", "\\z"]
    static let alphabet = ["a", "b", "c", "A", "B", "1", " ", "."]

    mutating func pick<T>(_ choices: [T]) -> T { choices[Int(rng.next() % UInt64(choices.count))] }
    mutating func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }

    mutating func pattern(depth: Int = 4) -> String {
        guard depth > 0 else { return pick(Self.atoms) }
        switch rng.next() % 11 {
        case 0, 1, 2: return pick(Self.atoms)
        case 3: return pattern(depth: depth - 1) + pattern(depth: depth - 1)
        case 4: return pattern(depth: depth - 1) + pattern(depth: depth - 1) + pattern(depth: depth - 1)
        case 5: return (chance(30) ? "" : pattern(depth: depth - 1)) + "|" + (chance(10) ? "" : pattern(depth: depth - 1))
        case 6:
            groups += 1
            return pick(["(", "(?:", "(?i:", "(?P<g\(groups)>", "(?<n\(groups)>"]) + pattern(depth: depth - 1) + ")"
        case 7, 8:
            let inner = chance(50) ? pick(Self.atoms) : "(?:" + pattern(depth: depth - 1) + ")"
            return inner + pick(Self.quantifiers)
        case 9: return "(?i)" + pattern(depth: depth - 1)
        default: return pick(Self.assertions)
        }
    }

    mutating func input() -> String {
        (0..<Int(rng.next() % 9)).map { _ in pick(Self.alphabet) }.joined()
    }
}

/// Swift's `Regex` (a backtracking engine: allowed in tests, as the reference, on short inputs)
/// and `LinearRegex` agree on random patterns and inputs.
@Suite struct DifferentialTests {
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func agreesWithSwiftRegex(seed: UInt64) async throws {
        // CPU-bound (Swift's Regex is the slow side): on the tests' CPU lane, not the shared pool.
        let outcome = try await onCPULane { try Self.compare(seed: seed) }
        #expect(outcome.refused.isEmpty, "seed \(seed): refused \(outcome.refused.prefix(3))")
        #expect(outcome.mismatches.isEmpty, "seed \(seed): \(outcome.mismatches.count) mismatches; the first: \(outcome.mismatches.prefix(3))")
        #expect(outcome.compared == 4800)
    }

    /// Both engines on 400 patterns × 12 inputs of `seed`: what LinearRegex refused, and each
    /// disagreement (pattern, function, input).
    static func compare(seed: UInt64) throws -> (compared: Int, refused: [String], mismatches: [String]) {
        var generator = PatternGenerator(rng: SeededRandom(seed: seed))
        var compared = 0
        var refused: [String] = [], mismatches: [String] = []
        for _ in 0..<400 {
            let pattern = generator.pattern()
            guard let mine = try? LinearRegex(pattern) else {
                refused.append(pattern.debugDescription)
                continue
            }
            // ASCII classes and simple word boundaries: RE2's \d \w \s \b.
            let reference = try Regex(pattern).asciiOnlyDigits().asciiOnlyWhitespace().asciiOnlyWordCharacters().wordBoundaryKind(.simple)
            for _ in 0..<12 {
                let input = generator.input()
                let whole = try reference.wholeMatch(in: input) != nil
                let contains = try reference.firstMatch(in: input) != nil
                if mine.wholeMatch(input) != whole { mismatches.append("\(pattern.debugDescription) wholeMatch \(input.debugDescription)") }
                if mine.containsMatch(input) != contains { mismatches.append("\(pattern.debugDescription) containsMatch \(input.debugDescription)") }
                compared += 1
            }
        }
        return (compared, refused, mismatches)
    }
}
