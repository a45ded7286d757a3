import GatewayCore
import NIOCore
import NIOHTTP1
import Testing
@testable import L7Proxy

/// HTTPRoute `retry` in `ConnectionStateMachine` and RequestMirror in `MirrorStateMachine`, driven
/// by plain transitions (issue 19).
@Suite struct RetryStateMachineTests {
    typealias Machine = ConnectionStateMachine
    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/retry", headers: ["host": "a"])
    let post = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/retry", headers: ["host": "a", "transfer-encoding": "chunked"])
    let retry = RouteRetry(codes: [500, 503], attempts: 2, backoffSeconds: 0.1)
    func status(_ code: Int) -> HTTPResponseHead { HTTPResponseHead(version: .http1_1, status: .init(statusCode: code), headers: ["content-length": "0"]) }
    let retried: [Machine.Action] = [.cancelBackendTimer, .releaseUpstream(reuse: false), .scheduleRetry(after: 0.1)]

    @Test func listedCodesAreRetriedAfterTheBackoffUpToAttemptsThenTheLastAnswerPasses() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: head, idempotent: true, retry: retry), keepAlive: true)
        _ = m.requestEnd()
        _ = m.upstreamConnected(reused: false)
        #expect(m.responseHead(status(500), allowsKeepAlive: true) == retried)
        #expect(m.holdsDownstreamReads == false)
        #expect(m.retryTimerFired() == [.connectUpstream(attempt: 2)])
        // The head and the end are sent again on the new connection.
        #expect(m.upstreamConnected(reused: false) == [.writeUpstream(.head(head)), .writeUpstream(.end(nil)), .flushUpstream, .resumeDownstreamReads])
        #expect(m.responseHead(status(503), allowsKeepAlive: true) == retried)
        #expect(m.retryTimerFired() == [.connectUpstream(attempt: 3)])
        _ = m.upstreamConnected(reused: false)
        // Attempts used up: the backend's own 500 reaches the client.
        #expect(m.responseHead(status(500), allowsKeepAlive: true) == [.writeResponseHead(status(500), keepAlive: true)])
    }

    @Test func aCodeNotListedIsNotRetried() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: head, idempotent: true, retry: retry), keepAlive: true)
        _ = m.requestEnd()
        _ = m.upstreamConnected(reused: false)
        #expect(m.responseHead(status(502), allowsKeepAlive: true) == [.writeResponseHead(status(502), keepAlive: true)])
    }

    @Test func withoutAPolicyA500PassesAtOnce() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: head, idempotent: true), keepAlive: true)
        _ = m.requestEnd()
        _ = m.upstreamConnected(reused: false)
        #expect(m.responseHead(status(500), allowsKeepAlive: true) == [.writeResponseHead(status(500), keepAlive: true)])
    }

    @Test func connectErrorsResetsAndBackendTimeoutsAreRetriedThenFail() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: head, idempotent: true, retry: RouteRetry(codes: [], attempts: 3, backoffSeconds: 0.1)), keepAlive: true)
        _ = m.requestEnd()
        // Connect refused: retried (the unsent parts stay pending).
        #expect(m.upstreamConnectFailed(timedOut: false) == retried)
        #expect(m.retryTimerFired() == [.connectUpstream(attempt: 2)])
        // Reset before a response head: retried with the request sent again.
        _ = m.upstreamConnected(reused: false)
        #expect(m.upstreamClosed() == retried)
        #expect(m.retryTimerFired() == [.connectUpstream(attempt: 3)])
        #expect(m.upstreamConnected(reused: false) == [.writeUpstream(.head(head)), .writeUpstream(.end(nil)), .flushUpstream, .resumeDownstreamReads])
        // The backendRequest timeout: retried.
        #expect(m.backendTimedOut() == retried)
        // A backend timer of the old attempt firing during the backoff does nothing.
        #expect(m.backendTimedOut() == [])
        #expect(m.retryTimerFired() == [.connectUpstream(attempt: 4)])
        _ = m.upstreamConnected(reused: false)
        // Attempts used up: the timeout answers 504.
        #expect(m.backendTimedOut() == [.cancelExchangeTimers, .releaseUpstream(reuse: false), .sendLocal(.init(status: .gatewayTimeout), close: true)])
    }

    /// A reset on a pooled connection counts as one of the policy's retries (the free replay of a
    /// stale pooled connection would make `attempts: 2` send the request four times).
    @Test func withAPolicyAResetOnAPooledConnectionUsesARetry() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: head, idempotent: true, retry: RouteRetry(attempts: 1, backoffSeconds: 0.1)), keepAlive: true)
        _ = m.requestEnd()
        _ = m.upstreamConnected(reused: true)
        #expect(m.upstreamClosed() == retried)
        #expect(m.retryTimerFired() == [.connectUpstream(attempt: 2)])
        _ = m.upstreamConnected(reused: true)
        #expect(m.upstreamClosed() == [.cancelExchangeTimers, .releaseUpstream(reuse: false), .armWaitTimer(.keepAlive), .sendLocal(.init(status: .badGateway), close: false)])
    }

    @Test func aBodyWithinTheLimitIsReplayedAndOneBeyondItIsNot() {
        var m = Machine(maxReplayBodyBytes: 4)
        _ = m.requestHead(.forward(upstreamHead: post, idempotent: false, retry: retry), keepAlive: true)
        let part1 = ByteBuffer(string: "ab"), part2 = ByteBuffer(string: "cd")
        _ = m.requestBody(part1)
        _ = m.upstreamConnected(reused: false)
        _ = m.requestBody(part2)
        _ = m.requestEnd()
        #expect(m.responseHead(status(500), allowsKeepAlive: true) == retried)
        _ = m.retryTimerFired()
        #expect(m.upstreamConnected(reused: false) == [
            .writeUpstream(.head(post)), .writeUpstream(.body(.byteBuffer(part1))), .writeUpstream(.body(.byteBuffer(part2))),
            .writeUpstream(.end(nil)), .flushUpstream, .resumeDownstreamReads,
        ])

        var big = Machine(maxReplayBodyBytes: 3)
        _ = big.requestHead(.forward(upstreamHead: post, idempotent: false, retry: retry), keepAlive: true)
        _ = big.upstreamConnected(reused: false)
        _ = big.requestBody(part1)
        _ = big.requestBody(part2)  // 4 bytes streamed: more than the 3 kept
        _ = big.requestEnd()
        #expect(big.responseHead(status(500), allowsKeepAlive: true) == [.writeResponseHead(status(500), keepAlive: true)])
        // Nor after a reset: 502.
        var reset = Machine(maxReplayBodyBytes: 3)
        _ = reset.requestHead(.forward(upstreamHead: post, idempotent: false, retry: retry), keepAlive: true)
        _ = reset.upstreamConnected(reused: false)
        _ = reset.requestBody(part1)
        _ = reset.requestBody(part2)
        _ = reset.requestEnd()
        #expect(reset.upstreamClosed() == [.cancelExchangeTimers, .releaseUpstream(reuse: false), .armWaitTimer(.keepAlive), .sendLocal(.init(status: .badGateway), close: false)])
    }

    /// A backend answering a listed code before the upload ended: the parts that arrive during the
    /// backoff go with the next attempt, after the kept ones.
    @Test func bodyPartsArrivingDuringTheBackoffAreSentWithTheNextAttempt() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: post, idempotent: false, retry: retry), keepAlive: true)
        let part1 = ByteBuffer(string: "ab"), part2 = ByteBuffer(string: "cd")
        _ = m.upstreamConnected(reused: false)
        _ = m.requestBody(part1)
        #expect(m.responseHead(status(503), allowsKeepAlive: true) == retried)
        #expect(m.holdsDownstreamReads)
        #expect(m.requestBody(part2) == [])
        #expect(m.requestEnd() == [])
        _ = m.retryTimerFired()
        #expect(m.upstreamConnected(reused: false) == [
            .writeUpstream(.head(post)), .writeUpstream(.body(.byteBuffer(part1))), .writeUpstream(.body(.byteBuffer(part2))),
            .writeUpstream(.end(nil)), .flushUpstream, .resumeDownstreamReads,
        ])
    }

    @Test func neverOnceTheResponseStarted() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: head, idempotent: true, retry: retry), keepAlive: true)
        _ = m.requestEnd()
        _ = m.upstreamConnected(reused: false)
        _ = m.responseHead(status(200), allowsKeepAlive: true)
        #expect(m.upstreamClosed() == [.cancelExchangeTimers, .releaseUpstream(reuse: false), .closeDownstream])
    }

    @Test func theRequestTimeoutEndsABackoff() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: head, idempotent: true, retry: retry), keepAlive: true)
        _ = m.requestEnd()
        _ = m.upstreamConnected(reused: false)
        _ = m.responseHead(status(500), allowsKeepAlive: true)
        #expect(m.exchangeTimedOut() == [.releaseUpstream(reuse: false), .sendLocal(.init(status: .gatewayTimeout), close: true)])
        #expect(m.retryTimerFired() == [])
    }
}

@Suite struct MirrorStateMachineTests {
    typealias Machine = MirrorStateMachine
    let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/mirror", headers: ["host": "a"])

    @Test func partsBeforeTheConnectionAreKeptThenSentAndTheAnswerIgnored() {
        var m = Machine(head: head, maxBodyBytes: 4)
        let body = ByteBuffer(string: "ab")
        #expect(m.requestBody(body) == [])
        #expect(m.requestEnd() == [])
        #expect(m.connected() == [.write(.head(head)), .write(.body(.byteBuffer(body))), .write(.end(nil)), .flush])
        #expect(m.state == .awaitingResponse)
        #expect(m.responseEnd(keepAlive: true) == [.release(reuse: true), .finish(dropped: false)])
    }

    @Test func aBodyPastTheLimitDropsTheCopy() {
        var m = Machine(head: head, maxBodyBytes: 3)
        _ = m.connected()
        #expect(m.requestBody(ByteBuffer(string: "ab")) == [.write(.body(.byteBuffer(ByteBuffer(string: "ab")))), .flush])
        #expect(m.requestBody(ByteBuffer(string: "cd")) == [.close, .finish(dropped: true)])
        #expect(m.requestEnd() == [])
        #expect(m.state == .dropped)
    }

    @Test func aDeadOrSlowMirrorOrAClientGoneDropsIt() {
        var refused = Machine(head: head, maxBodyBytes: 10)
        #expect(refused.connectFailed() == [.close, .finish(dropped: true)])
        var slow = Machine(head: head, maxBodyBytes: 10)
        _ = slow.requestEnd()
        _ = slow.connected()
        #expect(slow.timedOut() == [.close, .finish(dropped: false)])
        var gone = Machine(head: head, maxBodyBytes: 10)
        _ = gone.connected()
        #expect(gone.clientGone() == [.close, .finish(dropped: true)])
        // A connection that arrives after the drop goes straight back.
        #expect(refused.connected() == [.release(reuse: false)])
    }

    @Test("percentages: one seeded draw per request, none at 0 and 100")
    func percentages() {
        let seed = UInt64.random(in: .min ... .max)
        print("MirrorStateMachineTests.percentages seed \(seed)")
        let random = FastRandom(seed: seed)
        let draw: (UInt64) -> UInt64 = { random.next(below: $0) }
        let never = MirrorTarget(upstream: .endpoints([]), numerator: 0, denominator: 100)
        let always = MirrorTarget(upstream: .endpoints([]), numerator: 50, denominator: 50)
        var draws = 0
        let counting: (UInt64) -> UInt64 = { draws += 1; return draw($0) }
        #expect(!never.fires(random: counting) && always.fires(random: counting) && draws == 0)
        let fifth = MirrorTarget(upstream: .endpoints([]), numerator: 20, denominator: 100)
        let n = 10_000
        let fired = (0..<n).filter { _ in fifth.fires(random: draw) }.count
        // Binomial(10000, 0.2): standard deviation 40; 6 of them.
        #expect(abs(fired - 2000) < 240, "\(fired) of \(n)")
    }
}
