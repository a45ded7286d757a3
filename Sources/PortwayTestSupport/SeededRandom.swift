import Foundation
import Testing

/// The tests' one random generator: SplitMix64 from a seed it prints, so a failing run can be
/// replayed. `SeededRandom(seed:)` with a fixed seed gives the same sequence on every run;
/// `SeededRandom()` takes `PORTWAY_TEST_SEED` when set (to replay a failure), else a fresh seed.
/// Either way the seed is printed with the running test's name:
///
///     seed 12345 for "random changes through the whole pipeline…" (replay: PORTWAY_TEST_SEED=12345)
///     seed 3 (fixed) for "after every random change, incremental maps equal…"
public struct SeededRandom: RandomNumberGenerator, Sendable {
    /// The seed this generator started from.
    public let seed: UInt64
    private var state: UInt64

    /// The environment variable that fixes the seed of `SeededRandom()`.
    public static let environmentKey = "PORTWAY_TEST_SEED"

    /// A generator seeded with `seed`; nil takes `$PORTWAY_TEST_SEED` or a fresh random seed.
    /// `label` names it in the printed line (default: the running test).
    public init(seed: UInt64? = nil, label: String? = nil) {
        let chosen = seed ?? Self.environmentSeed ?? UInt64.random(in: 0...UInt64.max)
        self.seed = chosen
        state = chosen
        let name = label ?? Test.current.map { "\"\($0.displayName ?? $0.name)\"" } ?? "a test"
        if seed != nil {
            print("seed \(chosen) (fixed) for \(name)")
        } else {
            print("seed \(chosen) for \(name) (replay: \(Self.environmentKey)=\(chosen))")
        }
    }

    /// `$PORTWAY_TEST_SEED` as a number (decimal or 0x hex), when set.
    public static var environmentSeed: UInt64? {
        guard let text = ProcessInfo.processInfo.environment[environmentKey]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else {
            return nil
        }
        let value = text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        guard let value else { preconditionFailure("\(environmentKey)=\(text) is not a seed (a decimal or 0x hex UInt64)") }
        return value
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
