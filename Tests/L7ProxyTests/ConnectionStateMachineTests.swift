import GatewayCore
import NIOCore
import NIOHTTP1
import Testing
@testable import L7Proxy

/// The connection state machine driven by plain transitions, no channel at all.
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["host": "a"])
    var forwardGET: Machine.RequestPlan { .forward(upstreamHead: head, idempotent: true) }
    let okHead = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "2"])

    @Test func keepAliveExchangeReturnsToIdleAndReusesTheUpstream() {
        var m = Machine()
        #expect(m.start() == [.armWaitTimer(.keepAlive)])
        #expect(m.bytesArrived() == [.armWaitTimer(.requestHead)])
        #expect(m.requestHead(forwardGET, keepAlive: true) == [.cancelWaitTimer, .startExchangeTimers, .connectUpstream(attempt: 1)])
        #expect(m.holdsDownstreamReads)
        #expect(m.requestEnd() == [])  // kept until the upstream is there
        #expect(!m.holdsDownstreamReads)  // request complete: nothing to hold back
        #expect(m.upstreamConnected(reused: false) == [.writeUpstream(.head(head)), .writeUpstream(.end(nil)), .flushUpstream, .resumeDownstreamReads])
        #expect(m.responseHead(okHead, allowsKeepAlive: true) == [.writeResponseHead(okHead, keepAlive: true)])
        let body = ByteBuffer(string: "ok")
        #expect(m.responseBody(body) == [.writeResponseBody(body)])
        #expect(m.responseEnd(upstreamKeepAlive: true) == [.cancelExchangeTimers, .releaseUpstream(reuse: true), .armWaitTimer(.keepAlive), .writeResponseEnd(close: false)])
        #expect(m.isIdle)
        // The idle timer then closes quietly (no bytes of a next request were seen).
        #expect(m.waitTimerFired() == [.closeDownstream])
    }

    @Test func requestBodyIsBufferedWhileConnectingThenStreamed() {
        var m = Machine()
        let post = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: ["host": "a", "content-length": "4"])
        _ = m.requestHead(.forward(upstreamHead: post, idempotent: false), keepAlive: true)
        let part1 = ByteBuffer(string: "ab"), part2 = ByteBuffer(string: "cd")
        #expect(m.requestBody(part1) == [])
        #expect(m.upstreamConnected(reused: false) == [.writeUpstream(.head(post)), .writeUpstream(.body(.byteBuffer(part1))), .flushUpstream, .resumeDownstreamReads])
        #expect(m.requestBody(part2) == [.writeUpstream(.body(.byteBuffer(part2)))])
        #expect(m.requestEnd() == [.writeUpstream(.end(nil)), .flushUpstream])
    }

    @Test func connectFailureIsRetriedOnceThen502() {
        var m = Machine()
        _ = m.requestHead(forwardGET, keepAlive: true)
        _ = m.requestEnd()
        #expect(m.upstreamConnectFailed(timedOut: false) == [.connectUpstream(attempt: 2)])
        #expect(m.upstreamConnectFailed(timedOut: false)
            == [.cancelExchangeTimers, .releaseUpstream(reuse: false), .armWaitTimer(.keepAlive), .sendLocal(.init(status: .badGateway), close: false)])
        #expect(m.isIdle)
    }

    @Test func connectTimeoutTwiceGives504AndClosesWhenTheBodyIsIncomplete() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: head, idempotent: false), keepAlive: true)
        _ = m.upstreamConnectFailed(timedOut: true)
        #expect(m.upstreamConnectFailed(timedOut: true) == [.cancelExchangeTimers, .releaseUpstream(reuse: false), .sendLocal(.init(status: .gatewayTimeout), close: true)])
    }

    @Test func stalePooledConnectionIsReplayedOnlyForACompleteBodylessIdempotentRequest() {
        var m = Machine()
        _ = m.requestHead(forwardGET, keepAlive: true)
        _ = m.requestEnd()
        _ = m.upstreamConnected(reused: true)
        #expect(m.upstreamClosed() == [.releaseUpstream(reuse: false), .connectUpstream(attempt: 2)])
        #expect(m.upstreamConnected(reused: false) == [.writeUpstream(.head(head)), .writeUpstream(.end(nil)), .flushUpstream, .resumeDownstreamReads])
        // A second failure is final.
        #expect(m.upstreamClosed().last == .sendLocal(.init(status: .badGateway), close: false))

        var post = Machine()
        _ = post.requestHead(.forward(upstreamHead: head, idempotent: false), keepAlive: true)
        _ = post.requestEnd()
        _ = post.upstreamConnected(reused: true)
        #expect(post.upstreamClosed().last == .sendLocal(.init(status: .badGateway), close: false))

        var fresh = Machine()
        _ = fresh.requestHead(forwardGET, keepAlive: true)
        _ = fresh.requestEnd()
        _ = fresh.upstreamConnected(reused: false)
        #expect(fresh.upstreamClosed().last == .sendLocal(.init(status: .badGateway), close: false))
    }

    @Test func upstreamClosingMidResponseClosesTheClient() {
        var m = Machine()
        _ = m.requestHead(forwardGET, keepAlive: true)
        _ = m.requestEnd()
        _ = m.upstreamConnected(reused: false)
        _ = m.responseHead(okHead, allowsKeepAlive: true)
        #expect(m.upstreamClosed() == [.cancelExchangeTimers, .releaseUpstream(reuse: false), .closeDownstream])
    }

    @Test func earlyResponseBeforeTheBodyEndsClosesAndDropsTheUpstream() {
        var m = Machine()
        _ = m.requestHead(.forward(upstreamHead: head, idempotent: false), keepAlive: true)
        _ = m.upstreamConnected(reused: false)
        _ = m.responseHead(okHead, allowsKeepAlive: true)
        #expect(m.responseEnd(upstreamKeepAlive: true) == [.cancelExchangeTimers, .releaseUpstream(reuse: false), .writeResponseEnd(close: true)])
    }

    @Test func localAnswerWaitsForTheBodyEndThenKeepsTheConnection() {
        var m = Machine(maxDiscardedBodyBytes: 10)
        let notFound = Machine.LocalResponse(status: .notFound)
        #expect(m.requestHead(.local(notFound), keepAlive: true) == [.cancelWaitTimer, .startExchangeTimers])
        #expect(m.requestBody(ByteBuffer(string: "12345")) == [])
        #expect(m.requestEnd() == [.cancelExchangeTimers, .armWaitTimer(.keepAlive), .sendLocal(notFound, close: false)])
        // Too much body to drop: answer and close.
        _ = m.requestHead(.local(notFound), keepAlive: true)
        #expect(m.requestBody(ByteBuffer(string: "12345678901")) == [.cancelExchangeTimers, .sendLocal(notFound, close: true)])
    }

    @Test func hostileInputGets400Or431AndCloses() {
        var m = Machine()
        #expect(m.parseError(headTooLarge: false).last == .sendLocal(.init(status: .badRequest), close: true))
        var big = Machine()
        #expect(big.parseError(headTooLarge: true).last == .sendLocal(.init(status: .requestHeaderFieldsTooLarge), close: true))
        var rejected = Machine()
        #expect(rejected.requestHead(.reject(.init(status: .badRequest)), keepAlive: true) == [.cancelWaitTimer, .sendLocal(.init(status: .badRequest), close: true)])
        // Anything after closing is ignored.
        #expect(rejected.requestEnd() == [])
    }

    @Test func slowHeadGets408ButAnIdleConnectionClosesQuietly() {
        var slow = Machine()
        _ = slow.bytesArrived()
        #expect(slow.waitTimerFired() == [.sendWithoutRequest(.init(status: .requestTimeout))])
        var idle = Machine()
        #expect(idle.waitTimerFired() == [.closeDownstream])
    }

    @Test func exchangeTimeoutBlamesTheSlowSide() {
        var slowClient = Machine()
        _ = slowClient.requestHead(.forward(upstreamHead: head, idempotent: false), keepAlive: true)
        _ = slowClient.upstreamConnected(reused: false)
        #expect(slowClient.exchangeTimedOut().last == .sendLocal(.init(status: .requestTimeout), close: true))

        var slowBackend = Machine()
        _ = slowBackend.requestHead(forwardGET, keepAlive: true)
        _ = slowBackend.requestEnd()
        _ = slowBackend.upstreamConnected(reused: false)
        #expect(slowBackend.exchangeTimedOut().last == .sendLocal(.init(status: .gatewayTimeout), close: true))

        var streaming = Machine()
        _ = streaming.requestHead(forwardGET, keepAlive: true)
        _ = streaming.requestEnd()
        _ = streaming.upstreamConnected(reused: false)
        _ = streaming.responseHead(okHead, allowsKeepAlive: true)
        #expect(streaming.exchangeTimedOut() == [.releaseUpstream(reuse: false), .closeDownstream])
    }

    @Test func clientGoingAwayReleasesTheUpstreamWithoutReuse() {
        var m = Machine()
        _ = m.requestHead(forwardGET, keepAlive: true)
        _ = m.upstreamConnected(reused: false)
        #expect(m.downstreamClosed() == [.cancelWaitTimer, .cancelExchangeTimers, .releaseUpstream(reuse: false)])
        // A late upstream connection for a finished exchange is handed back.
        #expect(m.upstreamConnected(reused: false) == [.releaseUpstream(reuse: true)])
    }

    @Test func switchingProtocolsTurnsAnUpgradeIntoATunnel() {
        var m = Machine()
        _ = m.requestHead(forwardGET, keepAlive: true, upgrade: true)
        _ = m.requestEnd()
        _ = m.upstreamConnected(reused: false)
        let switching = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: ["upgrade": "websocket"])
        #expect(m.responseHead(switching, allowsKeepAlive: true) == [.cancelExchangeTimers])
        // The tunnel starts once the decoder has delivered the 101's end.
        #expect(m.responseEnd(upstreamKeepAlive: true) == [.startTunnel(switching)])
        // The tunnel owns the connection now: HTTP events are ignored.
        #expect(m.requestBody(ByteBuffer(string: "x")) == [])
        #expect(m.exchangeTimedOut() == [])

        var refused = Machine()
        _ = refused.requestHead(forwardGET, keepAlive: true, upgrade: true)
        _ = refused.requestEnd()
        _ = refused.upstreamConnected(reused: false)
        #expect(refused.responseHead(okHead, allowsKeepAlive: true) == [.writeResponseHead(okHead, keepAlive: false)])
        // A 101 without an upgrade request is not a tunnel.
        var plain = Machine()
        _ = plain.requestHead(forwardGET, keepAlive: true)
        _ = plain.requestEnd()
        _ = plain.upstreamConnected(reused: false)
        #expect(plain.responseHead(switching, allowsKeepAlive: true) == [.writeResponseHead(switching, keepAlive: true)])
    }

    @Test func partsWaitingForTheUpstreamAreSentInOrderOnceItConnects() {
        var m = Machine()
        let post = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: ["host": "a", "transfer-encoding": "chunked"])
        _ = m.requestHead(.forward(upstreamHead: post, idempotent: false), keepAlive: true)
        let parts = (0..<5).map { ByteBuffer(string: "part\($0)") }
        for part in parts { #expect(m.requestBody(part) == []) }
        #expect(m.requestEnd() == [])
        var expected: [Machine.Action] = [.writeUpstream(.head(post))]
        for part in parts { expected.append(.writeUpstream(.body(.byteBuffer(part)))) }
        expected.append(.writeUpstream(.end(nil)))
        expected.append(.flushUpstream)
        expected.append(.resumeDownstreamReads)
        #expect(m.upstreamConnected(reused: false) == expected)
        #expect(expected.count == 9)  // head, five parts, end, flush, resume
    }
}
