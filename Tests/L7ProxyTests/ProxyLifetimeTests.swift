import GatewayCore
import NIOCore
import NIOPosix
import Testing
@testable import L7Proxy

/// The proxy frees what a connection used once it is closed: its handler, its upstream connections
/// and every promise they made. `ProxyMetrics.liveObjects` counts the objects in init and deinit, so
/// a reference cycle (handler ↔ channel ↔ promise, a pool holding a closed connection) keeps them
/// counted and fails this test.
@Suite struct ProxyLifetimeTests {
    /// One client connection per way a connection can end: answered and closed by the client,
    /// closed by the proxy (close, 400, 408), a streamed upload and download, a backend that closes
    /// or hangs, a client leaving mid-exchange, an upgrade tunnel.
    func exercise(port: UInt16, group: any EventLoopGroup, proxy: L7Proxy) async throws {
        let keepAlive = try await RawClient(port: port, group: group)
        try await keepAlive.send("GET /one HTTP/1.1\r\nHost: a.example.com\r\n\r\nGET /two HTTP/1.1\r\nHost: nope\r\n\r\n")
        #expect(await keepAlive.responses(2).map(\.status) == [200, 404])
        // Alive while the connection is open: the count is real, not always zero.
        #expect(proxy.metrics.liveObjects.downstreamHandlers >= 1)
        await keepAlive.close()

        let closing = try await RawClient(port: port, group: group)
        try await closing.send("GET / HTTP/1.1\r\nHost: b.example.com\r\nConnection: close\r\n\r\n")
        #expect(await closing.wait { $0.isClosed })

        let garbage = try await RawClient(port: port, group: group)
        try await garbage.send("\u{1}\u{2}NOT HTTP\r\n\r\n")
        #expect(await garbage.wait { $0.isClosed })

        let upload = try await RawClient(port: port, group: group)
        let body = ByteBuffer(repeating: UInt8(ascii: "u"), count: 256 * 1024)
        try await upload.send("POST /upload HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: \(body.readableBytes)\r\n\r\n")
        try await upload.send(body)
        #expect(await upload.responses(1).first?.body == "\(body.readableBytes)")
        await upload.close()

        let download = try await RawClient(port: port, group: group)
        try await download.send("GET /download?bytes=300000 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(await download.wait { $0.byteCount >= 300_000 })
        await download.close()

        let backendCloses = try await RawClient(port: port, group: group)
        try await backendCloses.send("GET /close HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        #expect(await backendCloses.responses(1).map(\.status) == [502])
        await backendCloses.close()

        // The client leaves while the backend has not answered, and while it sends a head.
        let leaves = try await RawClient(port: port, group: group)
        try await leaves.send("GET /hang HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        try await Task.sleep(for: .milliseconds(20))
        await leaves.close()
        let halfHead = try await RawClient(port: port, group: group)
        try await halfHead.send("GET / HTTP/1.1\r\nHost: a.exa")
        await halfHead.close()
    }

    @Test func closedConnectionsFreeTheirHandlersAndUpstreamConnections() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let a = try await TestBackend(name: "A", group: group)
        let b = try await TestBackend(name: "B", group: group)
        let echo = try await UpgradeEchoBackend(group: group)
        var options = ProxyOptions()
        options.requestHeadTimeout = .milliseconds(200)
        let proxy = L7Proxy(group: group, routes: RouteTableHolder(HostRouter(a: [a.endpoint], b: [b.endpoint])), options: options)
        do {
            let port = try await proxy.open(port: 0)
            for _ in 0..<15 { try await exercise(port: port, group: group, proxy: proxy) }

            proxy.routes.swap(HostRouter(a: [echo.endpoint], b: [b.endpoint]))
            for _ in 0..<10 {
                let tunnel = try await RawClient(port: port, group: group)
                try await tunnel.send("GET /chat HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
                #expect(await tunnel.wait { $0.text.hasSuffix("\r\n\r\nhello\n") })
                try await tunnel.send("ping")
                #expect(await tunnel.wait { $0.text.hasSuffix("hello\nping") })
                await tunnel.close()
            }

            // Every client is gone: no handler may be left, only pooled (idle) upstream connections.
            let handlersFreed = await waitUntil { proxy.metrics.liveObjects.downstreamHandlers == 0 }
            #expect(handlersFreed, "connection handlers still alive after every client closed: \(proxy.metrics.liveObjects)")
            let idle = await proxy.idleUpstreamConnections()
            let upstreamsOnlyPooled = await waitUntil { proxy.metrics.liveObjects.upstreamConnections <= idle }
            #expect(upstreamsOnlyPooled, "\(proxy.metrics.liveObjects.upstreamConnections) upstream connections alive, \(idle) pooled")
            #expect(proxy.metrics.gaugeSnapshot.upstreamConnectionsOpened >= 15)
        } catch {
            Issue.record("unexpected error: \(error)")
        }
        await proxy.shutdown()
        let allFreed = await waitUntil { proxy.metrics.liveObjects == ProxyMetrics.LiveObjects() }
        #expect(allFreed, "alive after shutdown: \(proxy.metrics.liveObjects)")
        await a.close()
        await b.close()
        await echo.close()
        try await group.shutdownGracefully()
    }
}
