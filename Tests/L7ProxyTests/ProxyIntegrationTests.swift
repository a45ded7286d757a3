import GatewayCore
import Foundation
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import PortwayTestSupport
import Testing
@testable import L7Proxy

/// The proxy on real loopback sockets against real NIO backends.
@Suite struct ProxyIntegrationTests {
    func withProxy(
        options: ProxyOptions = ProxyOptions(),
        _ body: (_ proxy: L7Proxy, _ port: UInt16, _ a: TestBackend, _ b: TestBackend, _ group: any EventLoopGroup) async throws -> Void
    ) async throws {
        try await withHostRoutedProxy(options: options, body)
    }

    @Test func routesByHostAndAddsTheClientAddress() async throws {
        try await withProxy { proxy, port, _, _, group in
            let client = try await RawClient(port: port, group: group)
            try await client.send("GET /one HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            try await client.send("GET /two HTTP/1.1\r\nHost: B.example.com:80\r\n\r\n")
            try await client.send("GET /three HTTP/1.1\r\nHost: unknown.example.com\r\n\r\n")
            let responses = await client.responses(3)
            #expect(responses.map(\.status) == [200, 200, 404])
            #expect(responses.first?.body == "A GET /one")
            #expect(responses.dropFirst().first?.body == "B GET /two")
            #expect(responses.first?.header("x-echo-x-forwarded-for") == "127.0.0.1")
            #expect(responses.first?.header("x-echo-forwarded") == "for=127.0.0.1;host=\"a.example.com\";proto=http")
            #expect(proxy.metrics.count(route: "default/a/rule0", status: 200) == 1)
            #expect(proxy.metrics.count(route: "none", status: 404) == 1)
            await client.close()
        }
    }

    /// A graceful stop: no new connection is accepted, an idle keep-alive connection closes at once,
    /// a request in flight gets its whole answer (saying `Connection: close`), then its connection closes.
    @Test func drainClosesIdleConnectionsAndLetsBusyOnesFinish() async throws {
        try await withProxy { proxy, port, _, _, group in
            let idle = try await RawClient(port: port, group: group)
            try await idle.send("GET /first HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await idle.responses(1).first?.body == "A GET /first")
            let busy = try await RawClient(port: port, group: group)
            try await busy.send("POST /upload HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 10\r\n\r\nhello")
            #expect(await busy.wait { _ in proxy.connectionCount == 2 })

            let drained = Task { await proxy.drain(timeout: .seconds(30)) }
            #expect(await idle.wait { $0.isClosed }, "an idle connection closes at once")
            #expect(proxy.ports.isEmpty)
            #expect(!busy.isClosed)
            try await busy.send("world")
            let answer = await busy.responses(1).first
            #expect(answer?.status == 200)
            #expect(answer?.body == "10")
            #expect(answer?.header("connection") == "close")
            #expect(await busy.wait { $0.isClosed })
            await drained.value
            #expect(proxy.connectionCount == 0)
        }
    }

    @Test func keepAliveClientReusesOnePooledUpstreamConnection() async throws {
        try await withProxy { proxy, port, a, _, group in
            let client = try await RawClient(port: port, group: group)
            for i in 0..<5 {
                try await client.send("GET /\(i) HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
                _ = await client.responses(i + 1)
            }
            #expect(parseResponses(client.text).map(\.body) == (0..<5).map { "A GET /\($0)" })
            #expect(a.accepted.withLockedValue { $0 } == 1)
            #expect(proxy.metrics.gaugeSnapshot.upstreamConnectionsReused == 4)
            #expect(!client.isClosed)
            await client.close()
        }
    }

    @Test func pipelinedRequestsAnsweredInOrderOverTheSocket() async throws {
        try await withProxy { _, port, _, _, group in
            let client = try await RawClient(port: port, group: group)
            try await client.send(
                "GET /1 HTTP/1.1\r\nHost: b.example.com\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.example.com\r\n\r\n"
                    + "GET /3 HTTP/1.1\r\nHost: nope\r\n\r\nGET /4 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            let responses = await client.responses(4)
            #expect(responses.map(\.status) == [200, 200, 404, 200])
            #expect(responses.map(\.body).first == "B GET /1")
            #expect(responses.last?.body == "A GET /4")
            await client.close()
        }
    }

    @Test func weightedSplitReachesBothBackends() async throws {
        try await withProxy { _, port, _, _, group in
            let client = try await RawClient(port: port, group: group)
            var request = ""
            for i in 0..<40 { request += "GET /\(i) HTTP/1.1\r\nHost: split.example.com\r\n\r\n" }
            try await client.send(request)
            let responses = await client.responses(40)
            let fromA = responses.filter { $0.body.hasPrefix("A ") }.count
            let fromB = responses.filter { $0.body.hasPrefix("B ") }.count
            #expect(fromA + fromB == 40)
            // 50/50: both get some (the chance of all 40 on one side is 2^-39).
            #expect(fromA > 0 && fromB > 0)
            await client.close()
        }
    }

    /// 64 MiB by default; `PORTWAY_PROXY_UPLOAD_MIB=1024` runs the full 1 GiB.
    @Test func largeUploadStreamsWithBoundedBuffering() async throws {
        let mib = ProcessInfo.processInfo.environment["PORTWAY_PROXY_UPLOAD_MIB"].flatMap(Int.init) ?? 64
        let total = mib << 20
        try await withProxy { proxy, port, _, _, group in
            let client = try await RawClient(port: port, group: group)
            // The backend reads slowly, so only backpressure keeps the proxy from buffering the upload.
            try await client.send("POST /upload HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: \(total)\r\nX-Read-Delay-Ms: 1\r\n\r\n")
            let chunk = ByteBuffer(repeating: UInt8(ascii: "u"), count: 256 * 1024)
            for _ in 0..<(total / chunk.readableBytes) { try await client.send(chunk) }
            let responses = await client.responses(1, seconds: 60)
            #expect(responses.first?.body == "\(total)")
            let held = proxy.metrics.gaugeSnapshot.maxBufferedRequestBytes
            #expect(held > 0)
            #expect(held < 2 << 20, "the proxy held \(held) bytes of a \(total)-byte upload at once")
            await client.close()
        }
    }

    @Test func largeDownloadToAPausedClientIsHeldBackNotBuffered() async throws {
        let total = 32 << 20
        try await withProxy { proxy, port, _, _, group in
            let client = try await RawClient(port: port, group: group, paused: true)
            try await client.send("GET /download?bytes=\(total) HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            try await Task.sleep(for: .milliseconds(500))
            let heldWhilePaused = proxy.metrics.gaugeSnapshot.maxBufferedResponseBytes
            #expect(heldWhilePaused < 2 << 20, "the proxy held \(heldWhilePaused) bytes for a paused client")
            try await client.resume()
            let complete = await client.wait(seconds: 60) { $0.byteCount >= total + 30 }
            #expect(complete)
            #expect(proxy.metrics.gaugeSnapshot.maxBufferedResponseBytes < 2 << 20)
            await client.close()
        }
    }

    @Test func stalledBackendGets504AndADeadBackend502() async throws {
        var options = ProxyOptions()
        options.idleTimeout = .milliseconds(300)
        options.connectTimeout = .milliseconds(500)
        try await withProxy(options: options) { proxy, port, _, _, group in
            let client = try await RawClient(port: port, group: group)
            try await client.send("GET /hang HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await client.responses(1).map(\.status) == [504])

            // A backend port nobody listens on: refused, retried once, then 502.
            let dead = TestBackend.unusedPort()
            proxy.routes.swap(HostRouter(a: [UpstreamEndpoint(host: "127.0.0.1", port: dead)], b: []))
            let second = try await RawClient(port: port, group: group)
            try await second.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await second.responses(1).map(\.status) == [502])
            #expect(proxy.metrics.gaugeSnapshot.upstreamRetries >= 1)
            await client.close()
            await second.close()
        }
    }

    @Test func backendClosingWithoutAnswerGives502() async throws {
        try await withProxy { _, port, _, _, group in
            let client = try await RawClient(port: port, group: group)
            try await client.send("GET /close HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await client.responses(1).map(\.status) == [502])
            await client.close()
        }
    }

    @Test func slowlorisAndGarbageAreRefusedAndClosed() async throws {
        var options = ProxyOptions()
        options.requestHeadTimeout = .milliseconds(300)
        try await withProxy(options: options) { _, port, _, _, group in
            let slow = try await RawClient(port: port, group: group)
            try await slow.send("GET / HTTP/1.1\r\nHost: a.exa")
            #expect(await slow.wait { $0.isClosed })
            #expect(parseResponses(slow.text).map(\.status) == [408])

            let garbage = try await RawClient(port: port, group: group)
            try await garbage.send("\u{1}\u{2}NOT HTTP AT ALL\r\n\r\n")
            #expect(await garbage.wait { $0.isClosed })
            #expect(parseResponses(garbage.text).map(\.status) == [400])

            let smuggler = try await RawClient(port: port, group: group)
            try await smuggler.send("POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            #expect(await smuggler.wait { $0.isClosed })
            #expect(parseResponses(smuggler.text).map(\.status) == [400])
        }
    }

    @Test func portsOpenAndCloseWithoutDisturbingTheOthers() async throws {
        try await withProxy { proxy, first, _, _, group in
            // The second port is taken below the ephemeral range (32768–60999): once closed, an
            // ephemeral port can be handed at once to a socket of a test running beside this one,
            // and the refusal checked below would then be that test's listener answering.
            var random = SeededRandom()
            var second: UInt16 = 0
            for _ in 0..<50 where second == 0 {
                second = (try? await proxy.open(port: UInt16.random(in: 20000...29999, using: &random))) ?? 0
            }
            try #require(second != 0, "no free port in 20000–29999 after 50 tries")
            #expect(Set(proxy.ports) == [first, second])
            let kept = try await RawClient(port: second, group: group)
            try await kept.send("GET /before HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await kept.responses(1).map(\.status) == [200])

            await proxy.close(port: second)
            #expect(proxy.ports == [first])
            // New connections to the closed port are refused...
            await #expect(throws: (any Error).self) { _ = try await RawClient(port: second, group: group) }
            // ...the connection it already accepted keeps working, and so does the other port.
            try await kept.send("GET /after HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await kept.responses(2).map(\.status) == [200, 200])
            let other = try await RawClient(port: first, group: group)
            try await other.send("GET / HTTP/1.1\r\nHost: b.example.com\r\n\r\n")
            #expect(await other.responses(1).first?.body == "B GET /")
            await kept.close()
            await other.close()
        }
    }

    @Test func keepAliveConnectionPicksUpASwappedTable() async throws {
        try await withProxy { proxy, port, a, b, group in
            let client = try await RawClient(port: port, group: group)
            try await client.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            _ = await client.responses(1)
            proxy.routes.swap(HostRouter(a: [b.endpoint], b: [a.endpoint]))
            try await client.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            let responses = await client.responses(2)
            #expect(responses.map(\.body) == ["A GET /", "B GET /"])
            #expect(!client.isClosed)
            await client.close()
        }
    }

    @Test func upgradeTunnelsBytesBothWays() async throws {
        try await withProxy { proxy, port, _, _, group in
            let echo = try await UpgradeEchoBackend(group: group)
            proxy.routes.swap(HostRouter(a: [echo.endpoint], b: []))
            let client = try await RawClient(port: port, group: group)
            try await client.send("GET /chat HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            // The greeting came in the same segment as the 101: it must not be lost at the switch.
            #expect(await client.wait { $0.text.hasSuffix("\r\n\r\nhello\n") })
            #expect(client.text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
            try await client.send("ping GET / HTTP/1.1\r\n\r\n")
            #expect(await client.wait { $0.text.hasSuffix("hello\nping GET / HTTP/1.1\r\n\r\n") })
            let big = ByteBuffer(repeating: UInt8(ascii: "z"), count: 1 << 20)
            try await client.send(big)
            #expect(await client.wait { $0.byteCount >= client.text.utf8.count && $0.text.hasSuffix(String(repeating: "z", count: 64)) && $0.byteCount > 1 << 20 })
            await echo.close()
            await client.close()
        }
    }

    @Test func concurrentKeepAliveClientsEachGetTheirOwnAnswersOverPooledConnections() async throws {
        try await withProxy { proxy, port, a, b, group in
            let clients = 8, requests = 25
            let bodies = try await withThrowingTaskGroup(of: (Int, [String]).self) { tasks in
                for c in 0..<clients {
                    tasks.addTask {
                        let client = try await RawClient(port: port, group: group)
                        for i in 0..<requests {
                            let host = (c + i).isMultiple(of: 2) ? "a.example.com" : "b.example.com"
                            try await client.send("GET /\(c)-\(i) HTTP/1.1\r\nHost: \(host)\r\n\r\n")
                            _ = await client.responses(i + 1)
                        }
                        let responses = parseResponses(client.text)
                        await client.close()
                        return (c, responses.map(\.body))
                    }
                }
                var all: [Int: [String]] = [:]
                for try await (c, bodies) in tasks { all[c] = bodies }
                return all
            }
            for c in 0..<clients {
                let expected = (0..<requests).map { i in ((c + i).isMultiple(of: 2) ? "A" : "B") + " GET /\(c)-\(i)" }
                #expect(bodies[c] == expected, "client \(c)")
            }
            // Upstream connections are pooled: never more than one per client and backend.
            let opened = a.accepted.withLockedValue { $0 } + b.accepted.withLockedValue { $0 }
            #expect(opened <= 2 * clients)
            #expect(proxy.metrics.count(route: "default/a/rule0", status: 200) + proxy.metrics.count(route: "default/b/rule0", status: 200)
                == UInt64(clients * requests))
        }
    }

    /// The injectable bind: a listening socket made outside the proxy (as the datapath's transparent
    /// listener is) is adopted and serves like any other.
    @Test func adoptsAListeningSocketOpenedElsewhere() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let a = try await TestBackend(name: "A", group: group)
        let binder = BoundSocketBinder { _ in try openLoopbackListener() }
        let proxy = L7Proxy(group: group, routes: RouteTableHolder(HostRouter(a: [a.endpoint], b: [])), binder: binder)
        do {
            let port = try await proxy.open(port: 10_080)
            #expect(port != 0)
            let client = try await RawClient(port: port, group: group)
            try await client.send("GET /adopted HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await client.responses(1).first?.body == "A GET /adopted")
            await client.close()
        } catch {
            Issue.record("unexpected error: \(error)")
        }
        await proxy.shutdown()
        await a.close()
        try await group.shutdownGracefully()
    }
}

/// A plain listening TCP socket on 127.0.0.1 with a free port, made with the C calls.
func openLoopbackListener() throws -> CInt {
    struct Failed: Error {}
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw Failed() }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, 16) == 0 else {
        close(fd)
        throw Failed()
    }
    return fd
}

extension TestBackend {
    /// A loopback port with no listener (bound, then released).
    /// A loopback port nobody listens on, below the ephemeral range (32768–60999): a port freed
    /// from that range can be handed at once to a socket of a test running beside this one.
    static func unusedPort() -> Int {
        var random = SeededRandom(label: "unusedPort")
        for _ in 0..<50 {
            let port = Int.random(in: 20000...29999, using: &random)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { Glibc.close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected != 0 { return port }  // refused: nobody listens there
        }
        return 1
    }
}
