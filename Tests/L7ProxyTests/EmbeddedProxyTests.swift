import GatewayCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import L7Proxy

/// The whole handler stack on in-memory channels: codec, limits, state machine, pool, rewriting.
@Suite struct EmbeddedProxyTests {
    let a = UpstreamEndpoint(host: "10.0.0.1", port: 8080)
    let b = UpstreamEndpoint(host: "10.0.0.2", port: 8080)

    @Test func forwardsWithForwardingHeadersAndReusesTheUpstreamOnKeepAlive() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.send("GET /x?y=1 HTTP/1.1\r\nHost: a.example.com\r\nConnection: keep-alive\r\n\r\n")
        #expect(h.connector.endpoints == [a])
        let upstream = h.upstreamReceived(0)
        #expect(upstream.hasPrefix("GET /x?y=1 HTTP/1.1\r\n"))
        #expect(upstream.contains("x-forwarded-for: 10.1.2.3\r\n"))
        #expect(upstream.contains("x-forwarded-proto: http\r\n"))
        #expect(upstream.contains("forwarded: for=10.1.2.3;host=\"a.example.com\";proto=http\r\n"))
        #expect(!upstream.lowercased().contains("connection:"))
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-From: a\r\n\r\nhello")
        let first = parseResponses(h.clientReceived())
        #expect(first.map(\.status) == [200])
        #expect(first.first?.body == "hello")
        #expect(first.first?.header("x-from") == "a")
        #expect(h.pool.idleCount == 1)

        // The second request goes over the same upstream connection.
        h.send("GET /again HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(h.connector.upstreams.count == 1)
        #expect(h.upstreamReceived(0).hasPrefix("GET /again HTTP/1.1"))
        h.upstreamSends(0, "HTTP/1.1 204 No Content\r\n\r\n")
        #expect(parseResponses(h.clientReceived()).map(\.status) == [204])
        #expect(h.metrics.count(route: "default/a/rule0", status: 200) == 1)
        #expect(h.metrics.count(route: "default/a/rule0", status: 204) == 1)
    }

    /// The proxy drains (the agent stops or hands over): a connection accepted just before the
    /// listener closed, whose request is not read yet, still gets its answer (with `Connection:
    /// close`); closing it at once reset the client (the take-over's new-connection failures).
    @Test func drainGivesANewConnectionItsFirstRequest() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.client.pipeline.fireUserInboundEventTriggered(DrainRequested())
        h.loop.run()
        try #require(h.client.isActive, "a connection without its first request yet is not closed at once")
        h.send("GET /late HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(h.upstreamReceived(0).hasPrefix("GET /late HTTP/1.1"))
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let answer = parseResponses(h.clientReceived())
        #expect(answer.map(\.status) == [200])
        #expect(answer.first?.header("connection") == "close")
        #expect(!h.client.isActive)
    }

    /// A new connection that sends nothing while the proxy drains closes after the grace, not the
    /// keep-alive timeout; an idle keep-alive connection (it had its requests) closes at once.
    @Test func drainClosesSilentNewConnectionsAfterTheGraceAndIdleKeepAliveAtOnce() throws {
        let silent = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        silent.client.pipeline.fireUserInboundEventTriggered(DrainRequested())
        silent.loop.advanceTime(by: DownstreamHandler.firstRequestGraceOnDrain - .milliseconds(1))
        #expect(silent.client.isActive)
        silent.loop.advanceTime(by: .milliseconds(1))
        #expect(!silent.client.isActive)
        #expect(silent.clientReceived().isEmpty, "nothing was asked, nothing is answered")

        let used = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        used.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        used.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        #expect(parseResponses(used.clientReceived()).map(\.status) == [200])
        #expect(used.client.isActive)
        used.client.pipeline.fireUserInboundEventTriggered(DrainRequested())
        used.loop.run()
        #expect(!used.client.isActive, "an idle keep-alive connection closes at once")
    }

    /// A pooled connection is handed over at once (`UpstreamPool.takeIdle`), a new one through the
    /// pool's completion; both must carry the same bytes each way, and a reused connection that the
    /// backend closes while it is idle must still leave the pool.
    @Test func aPooledAndANewUpstreamConnectionCarryTheSameBytes() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        let request = "POST /p?q=1 HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 3\r\nX-Forwarded-For: 192.0.2.1\r\n\r\nabc"
        let response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-From: a\r\n\r\nhello"
        var sent: [String] = []
        var answered: [String] = []
        for _ in 0..<3 {
            h.send(request)
            sent.append(h.upstreamReceived(0))
            h.upstreamSends(0, response)
            answered.append(h.clientReceived())
            #expect(h.pool.idleCount == 1)
        }
        #expect(h.connector.upstreams.count == 1, "the later requests reuse the first connection")
        #expect(h.metrics.gaugeSnapshot.upstreamConnectionsOpened == 1)
        #expect(h.metrics.gaugeSnapshot.upstreamConnectionsReused == 2)
        #expect(sent[0].hasPrefix("POST /p?q=1 HTTP/1.1\r\n") && sent[0].hasSuffix("\r\n\r\nabc"))
        #expect(sent[0].contains("x-forwarded-for: 192.0.2.1, 10.1.2.3\r\n"))
        #expect(sent[1] == sent[0] && sent[2] == sent[0])
        #expect(answered[0].lowercased() == "http/1.1 200 ok\r\ncontent-length: 5\r\nx-from: a\r\n\r\nhello")
        #expect(answered[1] == answered[0] && answered[2] == answered[0])

        // Closed by the backend while idle, after being taken from the pool and released again.
        try h.connector.upstreams[0].close().wait()
        h.loop.run()
        #expect(h.pool.idleCount == 0)
        // The next request opens a new connection and gets the same bytes again.
        h.send(request)
        #expect(h.connector.upstreams.count == 2)
        #expect(h.upstreamReceived(1) == sent[0])
        h.upstreamSends(1, response)
        #expect(h.clientReceived() == answered[0])
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\nGET /2 HTTP/1.1\r\nHost: nowhere\r\n\r\nGET /3 HTTP/1.1\r\nHost: b.example.com\r\n\r\n")
        // Only the first is in flight; the others wait behind it.
        #expect(h.connector.upstreams.count == 1)
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        // The 404 for /2 is answered, then /3 goes to b.
        #expect(h.connector.endpoints == [a, b])
        h.upstreamSends(1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3")
        let responses = parseResponses(h.clientReceived())
        #expect(responses.map(\.status) == [200, 404, 200])
        #expect(responses.map(\.body).first == "1")
        #expect(responses.last?.body == "3")
    }

    @Test func theClientIsReadWhileAResponseIsPendingAndHeldWhileAPipelinedRequestWaits() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        let reads = ReadCounter()
        try h.client.pipeline.syncOperations.addHandler(reads, position: .first)
        h.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        // The request is complete, its answer is not: the socket stays readable (no read interest
        // dropped and re-armed per request; NIO's pipelining handler withheld this read).
        h.client.read()
        #expect(reads.count == 1)
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        // Two requests in one read: the second waits for the first's answer, and reading waits with it.
        h.send("GET /2 HTTP/1.1\r\nHost: a.example.com\r\n\r\nGET /3 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        h.client.read()
        #expect(reads.count == 1)
        #expect(h.upstreamReceived(0).contains("GET /2 "))
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
        #expect(h.upstreamReceived(0).contains("GET /3 "))
        #expect(reads.count == 2)
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3")
        #expect(parseResponses(h.clientReceived()).map(\.body) == ["1", "2", "3"])
    }

    @Test func malformedBytesAfterAPipelinedRequestAreAnswered400AfterItsResponse() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\nGET /2 HTTP/1.1\r\nHost: nowhere\r\n\r\nNOT HTTP\r\n\r\n")
        #expect(h.clientReceived().isEmpty)
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        let responses = parseResponses(h.clientReceived())
        #expect(responses.map(\.status) == [200, 404, 400])
        #expect(responses.first?.body == "1")
        #expect(!h.client.isActive)
    }

    @Test func aRequestPipelinedBehindARefusedOneIsNeitherRoutedNorForwarded() throws {
        let router = CountingRouter(HostRouter(a: [a], b: [b]))
        let h = try EmbeddedHarness(router: router)
        h.send("GET /a%2Fb HTTP/1.1\r\nHost: a.example.com\r\n\r\nGET /next HTTP/1.1\r\nHost: b.example.com\r\n\r\n")
        #expect(parseResponses(h.clientReceived()).map(\.status) == [400])
        // The connection closes after the 400: the request behind it was never routed (nor mirrored).
        #expect(router.hosts.isEmpty)
        #expect(h.connector.endpoints.isEmpty)
    }

    @Test func chunkedRequestAndResponseBodiesStreamThrough() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.send("POST /up HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        h.send("6\r\n world\r\n0\r\n\r\n")
        let upstream = h.upstreamReceived(0)
        #expect(upstream.contains("transfer-encoding: chunked\r\n"))
        #expect(upstream.hasSuffix("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"))
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        h.upstreamSends(0, "2\r\nde\r\n0\r\n\r\n")
        let responses = parseResponses(h.clientReceived())
        #expect(responses.first?.body == "abcde")
        #expect(responses.first?.header("transfer-encoding") == "chunked")
    }

    @Test func localDecisionsAnswer404500503AndRedirect() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.send("GET / HTTP/1.1\r\nHost: unknown.example.com\r\n\r\n")
        h.send("GET / HTTP/1.1\r\nHost: bad.example.com\r\n\r\n")
        h.send("GET / HTTP/1.1\r\nHost: gone.example.com\r\n\r\n")
        h.send("GET /p?q=1 HTTP/1.1\r\nHost: redirect.example.com\r\n\r\n")
        let responses = parseResponses(h.clientReceived())
        #expect(responses.map(\.status) == [404, 500, 503, 301])
        #expect(responses.last?.header("location") == "https://redirect.example.com/p?q=1")
        #expect(h.connector.upstreams.isEmpty)
        #expect(h.client.isActive)
        #expect(h.metrics.count(route: "none", status: 404) == 1)
        #expect(h.metrics.count(route: "default/gone/rule0", status: 503) == 1)
    }

    @Test func connectFailureIsRetriedOnAnotherEndpointThenAnswered502() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a, b], b: [b]))
        h.connector.failures = [ChannelError.connectTimeout(.seconds(1))]
        h.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(h.connector.endpoints.count == 2)
        #expect(h.connector.endpoints[0] != h.connector.endpoints[1])
        #expect(h.upstreamReceived(0).hasPrefix("GET / HTTP/1.1"))
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(parseResponses(h.clientReceived()).map(\.status) == [200])

        let twice = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        twice.connector.failures = [ChannelError.connectTimeout(.seconds(1)), ChannelError.connectTimeout(.seconds(1))]
        twice.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(parseResponses(twice.clientReceived()).map(\.status) == [504])
        #expect(twice.metrics.gaugeSnapshot.upstreamRetries == 1)
    }

    @Test func stalePooledConnectionIsReplayedOnAFreshOne() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        _ = h.clientReceived()
        _ = h.upstreamReceived(0)
        h.send("GET /2 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(h.upstreamReceived(0).hasPrefix("GET /2"))
        // The backend had closed the pooled connection: no response byte came back.
        h.connector.upstreams[0].pipeline.fireChannelInactive()
        h.loop.run()
        #expect(h.connector.upstreams.count == 2)
        #expect(h.upstreamReceived(1).hasPrefix("GET /2"))
        h.upstreamSends(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(parseResponses(h.clientReceived()).map(\.body) == ["ok"])
    }

    @Test func aSwappedTableAppliesFromTheNextRequestOnly() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        // Swap while the request is in flight: it still finishes on a.
        h.routes.swap(HostRouter(a: [b], b: [a]))
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
        h.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(h.connector.endpoints == [a, b])
        h.upstreamSends(1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
        #expect(parseResponses(h.clientReceived()).map(\.body) == ["a", "b"])
        #expect(h.client.isActive)
    }

    @Test func routeHeaderFiltersAndRewriteApply() throws {
        var router = HostRouter(a: [a], b: [b])
        router.requestHeaders = HeaderModifier(set: [HeaderField("x-env", "prod")], remove: ["x-debug"])
        router.responseHeaders = HeaderModifier(add: [HeaderField("x-served-by", "portway")])
        let h = try EmbeddedHarness(router: router)
        h.send("GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Debug: 1\r\n\r\n")
        let upstream = h.upstreamReceived(0)
        #expect(upstream.contains("x-env: prod\r\n"))
        #expect(!upstream.lowercased().contains("x-debug"))
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(parseResponses(h.clientReceived()).first?.header("x-served-by") == "portway")
    }

    @Test(arguments: [
        ("GARBAGE\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a.example.com\r\nBad Header: x\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", 400),
    ])
    func malformedRequestsGet400AndAClosedConnection(request: String, status: Int) throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.send(request)
        let responses = parseResponses(h.clientReceived())
        #expect(responses.last?.status == status)
        #expect(responses.last?.header("connection") == "close")
        #expect(!h.client.isActive)
    }

    @Test func hugeHeadersGet431() throws {
        var options = ProxyOptions()
        options.maxHeaderBytes = 4096
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        h.send("GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Big: \(String(repeating: "x", count: 5000))\r\n\r\n")
        #expect(parseResponses(h.clientReceived()).map(\.status) == [431])
        #expect(!h.client.isActive)

        let many = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        many.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n" + (0..<200).map { "X-\($0): 1\r\n" }.joined() + "\r\n")
        #expect(parseResponses(many.clientReceived()).map(\.status) == [431])

        let longURL = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        longURL.send("GET /\(String(repeating: "u", count: 5000)) HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(parseResponses(longURL.clientReceived()).map(\.status) == [431])
    }

    @Test func slowlorisGets408AndAnIdleConnectionJustCloses() throws {
        var options = ProxyOptions()
        options.requestHeadTimeout = .seconds(2)
        options.keepAliveTimeout = .seconds(30)
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        h.send("GET / HTTP/1.1\r\nHost: a.ex")
        h.loop.advanceTime(by: .seconds(1))
        h.send("ample.com\r\nX-A: 1\r\n")
        #expect(h.client.isActive)
        h.loop.advanceTime(by: .seconds(1))
        #expect(parseResponses(h.clientReceived()).map(\.status) == [408])
        #expect(!h.client.isActive)

        let idle = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        idle.loop.advanceTime(by: .seconds(29))
        #expect(idle.client.isActive)
        idle.loop.advanceTime(by: .seconds(1))
        #expect(idle.clientReceived().isEmpty)
        #expect(!idle.client.isActive)
    }

    /// One timer per connection, armed for the earliest deadline: a keep-alive wait moved later by a
    /// request must not close the connection at the old deadline, and a deadline that comes earlier
    /// than the armed one (a head started after a request) must not wait for it.
    @Test func keepAliveCountsFromTheLastAnswerAndAHeadStartedLaterGets408OnTime() throws {
        var options = ProxyOptions()
        options.keepAliveTimeout = .seconds(60)
        options.requestHeadTimeout = .seconds(10)
        options.idleTimeout = .seconds(30)
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        h.loop.advanceTime(by: .seconds(50))
        h.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        // t = 70: the exchange's idle timeout counts from the request's last byte (t = 50), not the wait's deadline.
        h.loop.advanceTime(by: .seconds(20))
        #expect(h.client.isActive)
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        // t = 129: 59 s after the answer, past the first deadline (t = 60) and the idle one (t = 80).
        h.loop.advanceTime(by: .seconds(59))
        #expect(h.client.isActive)
        h.loop.advanceTime(by: .seconds(1))
        #expect(!h.client.isActive)
        #expect(parseResponses(h.clientReceived()).map(\.status) == [200])

        let slow = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        slow.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        slow.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        slow.loop.advanceTime(by: .seconds(5))
        slow.send("GET /2 HTTP/1.1\r\nHost: a.ex")
        slow.loop.advanceTime(by: .seconds(9))
        #expect(slow.client.isActive)
        slow.loop.advanceTime(by: .seconds(1))
        #expect(parseResponses(slow.clientReceived()).map(\.status) == [200, 408])
        #expect(!slow.client.isActive)
    }

    @Test func stalledBackendGets504AndARouteTimeoutApplies() throws {
        var options = ProxyOptions()
        options.idleTimeout = .seconds(5)
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        h.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        h.loop.advanceTime(by: .seconds(4))
        #expect(h.clientReceived().isEmpty)
        h.loop.advanceTime(by: .seconds(1))
        #expect(parseResponses(h.clientReceived()).map(\.status) == [504])
        #expect(!h.connector.upstreams[0].isActive)

        var router = HostRouter(a: [a], b: [b])
        router.requestTimeoutSeconds = 1
        let timed = try EmbeddedHarness(router: router, options: options)
        timed.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        timed.loop.advanceTime(by: .seconds(1))
        #expect(parseResponses(timed.clientReceived()).map(\.status) == [504])
    }

    /// Issue 19: HTTPRoute `timeouts.backendRequest` is per upstream attempt, and `request: 0s`
    /// disables the proxy's own request timeout.
    @Test func backendRequestTimeoutGives504AndZeroDisablesTheRequestTimeout() throws {
        var options = ProxyOptions()
        options.idleTimeout = .seconds(60)
        var router = HostRouter(a: [a], b: [b])
        router.backendRequestTimeoutSeconds = 0.5
        let h = try EmbeddedHarness(router: router, options: options)
        h.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        h.loop.advanceTime(by: .milliseconds(499))
        #expect(h.clientReceived().isEmpty)
        h.loop.advanceTime(by: .milliseconds(1))
        #expect(parseResponses(h.clientReceived()).map(\.status) == [504])
        #expect(!h.connector.upstreams[0].isActive, "the late attempt's connection is closed")

        // Answered in time: the timer is gone with the exchange, the next request has its own.
        let fast = try EmbeddedHarness(router: router, options: options)
        fast.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        fast.loop.advanceTime(by: .milliseconds(300))
        fast.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        fast.loop.advanceTime(by: .seconds(1))
        fast.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        fast.loop.advanceTime(by: .milliseconds(300))
        fast.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(parseResponses(fast.clientReceived()).map(\.status) == [200, 200])

        // request: 0s — no request timeout at all, even with one configured for the proxy.
        options.requestTimeout = .seconds(1)
        var unlimited = HostRouter(a: [a], b: [b])
        unlimited.requestTimeoutSeconds = 0
        let slow = try EmbeddedHarness(router: unlimited, options: options)
        slow.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        slow.loop.advanceTime(by: .seconds(5))
        #expect(slow.clientReceived().isEmpty)
        slow.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(parseResponses(slow.clientReceived()).map(\.status) == [200])
    }

    @Test func stalledUploadGets408() throws {
        var options = ProxyOptions()
        options.idleTimeout = .seconds(5)
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        h.send("POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 100\r\n\r\nabc")
        h.loop.advanceTime(by: .seconds(5))
        #expect(parseResponses(h.clientReceived()).map(\.status) == [408])
        #expect(!h.client.isActive)
    }

    @Test func http10ClientGetsAClosedConnectionForAnUnframedResponse() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]))
        h.send("GET / HTTP/1.0\r\nHost: a.example.com\r\nConnection: keep-alive\r\n\r\n")
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
        let text = h.clientReceived()
        #expect(text.hasPrefix("HTTP/1.0 200 OK"))
        #expect(text.hasSuffix("\r\n\r\nhi"))
        #expect(!h.client.isActive)
    }

    @Test func pooledUpstreamIsClosedAfterItsIdleTimeoutCountedFromItsLastRelease() throws {
        var options = ProxyOptions()
        options.upstreamIdleTimeout = .seconds(30)
        options.keepAliveTimeout = .seconds(600)
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: [b]), options: options)
        func exchange(_ host: String, upstream index: Int) {
            h.send("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
            _ = h.upstreamReceived(index)
            h.upstreamSends(index, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            #expect(parseResponses(h.clientReceived()).map(\.status) == [200])
        }
        exchange("a.example.com", upstream: 0)  // t = 0: A idle until 30
        h.loop.advanceTime(by: .seconds(20))
        exchange("b.example.com", upstream: 1)  // t = 20: B idle until 50
        h.loop.advanceTime(by: .seconds(5))
        exchange("a.example.com", upstream: 0)  // t = 25: A reused (no new connection), idle again until 55
        #expect(h.connector.upstreams.count == 2)
        #expect(h.pool.idleCount == 2)

        h.loop.advanceTime(by: .seconds(10))  // t = 35: A's first deadline passed, but it was used since
        #expect(h.pool.idleCount == 2)
        #expect(h.connector.upstreams[0].isActive)
        h.loop.advanceTime(by: .seconds(16))  // t = 51: B expired
        #expect(h.pool.idleCount == 1)
        #expect(!h.connector.upstreams[1].isActive)
        #expect(h.connector.upstreams[0].isActive)
        h.loop.advanceTime(by: .seconds(5))  // t = 56: A expired too
        #expect(h.pool.idleCount == 0)
        #expect(!h.connector.upstreams[0].isActive)

        // The pool arms its timer again for connections released later.
        exchange("b.example.com", upstream: 2)
        #expect(h.pool.idleCount == 1)
        h.loop.advanceTime(by: .seconds(31))
        #expect(h.pool.idleCount == 0)
        #expect(!h.connector.upstreams[2].isActive)
    }
}

@Suite struct EmbeddedUpgradeTests {
    let a = UpstreamEndpoint(host: "10.0.0.1", port: 8080)

    @Test func upgradeBecomesAByteTunnelBothWays() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: []))
        h.send("GET /ws HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        let upstream = h.upstreamReceived(0)
        #expect(upstream.contains("connection: upgrade\r\n"))
        #expect(upstream.contains("upgrade: websocket\r\n"))
        // Bytes right behind the 101 in the same read must survive the switch.
        h.upstreamSends(0, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfirst-frame")
        let switched = h.clientReceived()
        #expect(switched.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(switched.lowercased().contains("upgrade: websocket\r\n"))
        #expect(switched.hasSuffix("\r\n\r\nfirst-frame"))
        // From now on bytes are not HTTP: they pass untouched.
        h.send("GET / HTTP/1.1\r\n\r\nraw")
        #expect(h.upstreamReceived(0) == "GET / HTTP/1.1\r\n\r\nraw")
        h.upstreamSends(0, "\u{81}\u{2}hi")
        #expect(h.clientReceived() == "\u{81}\u{2}hi")
        #expect(h.metrics.count(route: "default/a/rule0", status: 101) == 1)
        // The backend closing ends the client connection too.
        _ = try? h.connector.upstreams[0].close().wait()
        h.loop.run()
        #expect(!h.client.isActive)
        #expect(h.pool.idleCount == 0)
    }

    @Test func idleTunnelIsClosedButABusyOneIsNot() throws {
        var options = ProxyOptions()
        options.tunnelIdleTimeout = .seconds(10)
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: []), options: options)
        h.send("GET /ws HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        h.upstreamSends(0, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        for _ in 0..<3 {
            h.loop.advanceTime(by: .seconds(6))
            h.upstreamSends(0, "ping")  // traffic in one direction keeps it open
        }
        #expect(h.client.isActive)
        h.loop.advanceTime(by: .seconds(10))
        #expect(!h.client.isActive)
        #expect(!h.connector.upstreams[0].isActive)
    }

    @Test func refusedUpgradeAnswersAndCloses() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: []))
        h.send("GET /ws HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        h.upstreamSends(0, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
        let responses = parseResponses(h.clientReceived())
        #expect(responses.map(\.status) == [426])
        #expect(responses.first?.header("connection") == "close")
        #expect(!h.client.isActive)
    }
}

@Suite struct EmbeddedMessageShapeTests {
    let a = UpstreamEndpoint(host: "10.0.0.1", port: 8080)

    @Test func continueIsRelayedBeforeTheFinalResponse() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: []))
        h.send("POST /up HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        #expect(h.upstreamReceived(0).lowercased().contains("expect: 100-continue\r\n"))
        h.upstreamSends(0, "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(h.clientReceived().hasPrefix("HTTP/1.1 100 Continue\r\n"))
        h.send("abc")
        #expect(h.upstreamReceived(0) == "abc")
        h.upstreamSends(0, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        let responses = parseResponses(h.clientReceived())
        #expect(responses.map(\.status) == [201])
        #expect(responses.first?.body == "ok")
        #expect(h.client.isActive)
    }

    @Test func headResponseKeepsItsLengthButHasNoBody() throws {
        let h = try EmbeddedHarness(router: HostRouter(a: [a], b: []))
        h.send("HEAD /big HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(h.upstreamReceived(0).hasPrefix("HEAD /big HTTP/1.1\r\n"))
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        let text = h.clientReceived()
        #expect(text.lowercased().contains("content-length: 1000\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"))
        // The connection is ready for the next request, over the same upstream connection.
        h.send("GET /next HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(h.connector.upstreams.count == 1)
        #expect(h.upstreamReceived(0).hasPrefix("GET /next"))
    }

    /// backendRef filters apply only when their backend is chosen, after the rule's; a retry stays
    /// on the chosen backend (another of its endpoints) so its filters still hold.
    @Test func backendFiltersApplyToTheChosenBackendOnly() throws {
        let b = UpstreamEndpoint(host: "10.0.0.2", port: 8080)
        let a2 = UpstreamEndpoint(host: "10.0.0.3", port: 8080)
        let onlyA = HeaderModifier(set: [HeaderField("x-backend", "a")], remove: ["x-rule"])
        var backendA = WeightedUpstream.endpoints([a, a2])
        backendA.requestHeaders = onlyA
        backendA.responseHeaders = HeaderModifier(add: [HeaderField("x-served-by", "a")])
        let router = FixedRouter(.forward(ForwardDecision(
            backends: [backendA, .endpoints([b])],
            requestHeaders: HeaderModifier(set: [HeaderField("x-rule", "r"), HeaderField("x-keep", "k")]),
            responseHeaders: HeaderModifier(add: [HeaderField("x-rule-response", "r")]), route: RouteLabel("default/split/rule0"))))
        let tickets = ScriptedRandom([0, 0, 1, 0, 1])
        let h = try EmbeddedHarness(router: router, random: { tickets.next($0) })

        // Ticket 0 → backend A (its first endpoint): the rule's edits, then A's.
        h.send("GET /1 HTTP/1.1\r\nHost: split.example.com\r\n\r\n")
        #expect(h.connector.endpoints == [a])
        let toA = h.upstreamReceived(0).lowercased()
        #expect(toA.contains("x-backend: a\r\n"))
        #expect(toA.contains("x-keep: k\r\n"))
        #expect(!toA.contains("x-rule:"))
        h.upstreamSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        let fromA = try #require(parseResponses(h.clientReceived()).first)
        #expect(fromA.header("x-served-by") == "a")
        #expect(fromA.header("x-rule-response") == "r")

        // Ticket 1 → backend B: the rule's edits only.
        h.send("GET /2 HTTP/1.1\r\nHost: split.example.com\r\n\r\n")
        #expect(h.connector.endpoints == [a, b])
        let toB = h.upstreamReceived(1).lowercased()
        #expect(toB.contains("x-rule: r\r\n"))
        #expect(!toB.contains("x-backend:"))
        h.upstreamSends(1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
        let fromB = try #require(parseResponses(h.clientReceived()).first)
        #expect(fromB.header("x-served-by") == nil)
        #expect(fromB.header("x-rule-response") == "r")

        // A failed connect to A's second endpoint is retried on A's other endpoint (a fresh
        // connection), never on B, and A's filters are kept.
        h.connector.failures = [ChannelError.connectTimeout(.seconds(1))]
        h.send("GET /3 HTTP/1.1\r\nHost: split.example.com\r\n\r\n")
        #expect(h.connector.endpoints == [a, b, a2, a])
        #expect(h.upstreamReceived(2).lowercased().contains("x-backend: a\r\n"))
        h.upstreamSends(2, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3")
        #expect(parseResponses(h.clientReceived()).first?.header("x-served-by") == "a")
    }
}

/// Hands out scripted values (modulo the range asked for), then 0: a deterministic backend choice.
final class ScriptedRandom: @unchecked Sendable {  // used on the embedded loop only
    private var values: [UInt64]
    init(_ values: [UInt64]) { self.values = values }
    func next(_ range: UInt64) -> UInt64 { values.isEmpty ? 0 : values.removeFirst() % range }
}

/// Counts the reads the handlers above ask the socket for.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var count = 0
    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}

/// A router that records the hosts it routed.
final class CountingRouter: RequestRouter, @unchecked Sendable {
    private let inner: any RequestRouter
    private(set) var hosts: [String] = []
    init(_ inner: any RequestRouter) { self.inner = inner }
    func route(_ request: RoutingRequest) -> RoutingDecision {
        hosts.append(request.host)
        return inner.route(request)
    }
}
