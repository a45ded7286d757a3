/// The one backoff policy: exponential, with jitter, reset after a healthy period (client-go's
/// defaults: 0.8 s doubling to 30 s, reset after 2 minutes without failures; the informers use
/// them). `retries` is the same policy without jitter, for the agent's outputs and listeners.
/// Tests inject tiny values and a fake sleep.
public struct BackoffPolicy: Hashable, Sendable {
    public var initial: Duration
    public var maximum: Duration
    public var factor: Double
    /// Each delay is multiplied by a random factor in 1...(1 + jitter), then capped at `maximum`.
    public var jitter: Double
    /// A failure this long after the previous one starts over at `initial`.
    public var resetAfter: Duration

    public init(initial: Duration = .milliseconds(800), maximum: Duration = .seconds(30), factor: Double = 2, jitter: Double = 1, resetAfter: Duration = .seconds(120)) {
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.resetAfter = resetAfter
    }

    /// The delay before retry number `attempt` (0-based).
    public func delay(attempt: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        var d = initial * pow2(factor, attempt)
        d = d * (1 + jitter * random)
        return min(d, maximum)
    }

    private func pow2(_ base: Double, _ n: Int) -> Double {
        var r = 1.0
        for _ in 0..<min(n, 64) { r *= base }
        return r
    }
}

/// Tracks consecutive failures for one informer.
public struct BackoffState: Sendable {
    public private(set) var attempt = 0
    private var lastFailure: ContinuousClock.Instant?

    public init() {}

    /// Records a failure at `now` and returns the delay to wait. A failure more than
    /// `policy.resetAfter` after the previous one (a healthy period in between) starts over.
    public mutating func next(policy: BackoffPolicy, now: ContinuousClock.Instant) -> Duration {
        if let last = lastFailure, now - last > policy.resetAfter { attempt = 0 }
        let delay = policy.delay(attempt: attempt)
        attempt += 1
        lastFailure = now
        return delay
    }
}

extension BackoffPolicy {
    /// Capped doubling without jitter: what the agent's outputs (a frontend that failed to program,
    /// a proxy port that failed to bind) wait before trying again.
    public static func retries(initial: Duration = .milliseconds(500), cap: Duration = .seconds(60)) -> BackoffPolicy {
        BackoffPolicy(initial: initial, maximum: cap, factor: 2, jitter: 0)
    }

    /// The delay before retry `attempt` (1 = the first retry): initial × factor^(attempt-1), at most the maximum.
    public func retryDelay(attempt: Int) -> Duration {
        delay(attempt: max(attempt, 1) - 1, random: 0)
    }
}
