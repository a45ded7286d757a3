import KubeAPI
import Runtime
import Testing

@Suite("Backoff policy")
struct BackoffTests {
    let policy = BackoffPolicy()

    @Test("0.8 s doubling, jitter within 1x..2x, capped at 30 s", arguments: [
        (0, 0.0, Duration.milliseconds(800)), (0, 1.0, .milliseconds(1600)), (1, 0.0, .milliseconds(1600)),
        (3, 0.5, .milliseconds(9600)), (5, 0.0, .milliseconds(25600)), (5, 1.0, .seconds(30)), (40, 0.3, .seconds(30)),
    ])
    func delays(attempt: Int, random: Double, expected: Duration) {
        #expect(policy.delay(attempt: attempt, random: random) == expected)
    }

    @Test("consecutive failures grow; a healthy period resets")
    func reset() {
        var state = BackoffState()
        let t0 = ContinuousClock.now
        for i in 0..<4 {
            let d = state.next(policy: policy, now: t0 + .seconds(i))
            #expect(d >= policy.delay(attempt: i, random: 0) && d <= policy.delay(attempt: i, random: 1))
        }
        #expect(state.attempt == 4)
        // Three minutes without a failure (> resetAfter = 2 min): back to the initial delay.
        let d = state.next(policy: policy, now: t0 + .seconds(200))
        #expect(d <= .milliseconds(1600))
        #expect(state.attempt == 1)
    }

    @Test("informers ask for watch timeouts between 5 and 10 minutes by default")
    func defaults() {
        #expect(InformerOptions().watchTimeoutSeconds == 300...600)
        #expect((300...600).contains(WatchOptions().timeoutSeconds))
        #expect(InformerOptions().backoff.initial == .milliseconds(800))
        #expect(InformerOptions().backoff.maximum == .seconds(30))
    }
}
