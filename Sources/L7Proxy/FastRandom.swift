import NIOConcurrencyHelpers
import Synchronization

/// The proxy's default source of backend choices: SplitMix64 behind a lock, seeded once from the
/// system generator. `UInt64.random(in:)` with the system generator costs a `getrandom` system call
/// per draw on Linux, two per forwarded request; load balancing needs uniform draws, not secrecy.
final class FastRandom: Sendable {
    private struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    private let generator: Mutex<SplitMix64>

    init(seed: UInt64 = UInt64.random(in: .min ... .max)) {
        generator = Mutex(SplitMix64(state: seed))
    }

    /// A uniform value in `0..<bound` (`bound` > 0).
    func next(below bound: UInt64) -> UInt64 {
        generator.withLock { UInt64.random(in: 0..<bound, using: &$0) }
    }

    /// One shared generator for every proxy that is not given its own `random`.
    static let shared = FastRandom()

    /// `shared` as the closure `L7Proxy(random:)` takes.
    static let draw: @Sendable (UInt64) -> UInt64 = { shared.next(below: $0) }
}
