import GatewayCore
import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import L7Proxy

/// Issue 16, item 1: the proxy must never run the agent out of file descriptors. Real loopback
/// sockets; the limits are set small so a handful of connections reach them.
@Suite struct ConnectionLimitTests {
    func withProxy(
        maxConnections: Int, perClient: Int,
        _ body: (_ proxy: L7Proxy, _ port: UInt16, _ group: any EventLoopGroup, _ a: TestBackend) async throws -> Void
    ) async throws {
        var options = ProxyOptions()
        options.maxConnections = maxConnections
        options.maxConnectionsPerClient = perClient
        try await withHostRoutedProxy(options: options) { proxy, port, a, _, group in try await body(proxy, port, group, a) }
    }

    @Test("the limits derive from the descriptor limit minus the reserve; explicit values win")
    func derivedLimits() {
        #expect(ConnectionLimits.derived(fileDescriptorLimit: 1100, reserve: 256) == ConnectionLimits(maxConnections: 422, maxConnectionsPerClient: 105))
        #expect(ConnectionLimits.derived(fileDescriptorLimit: 1 << 20, reserve: 256).maxConnectionsPerClient == 1024)
        #expect(ConnectionLimits.derived(fileDescriptorLimit: 100, reserve: 256).maxConnections == 16, "never below 16")
        #expect(ConnectionLimits.derived(fileDescriptorLimit: 1100, reserve: 256, maxConnections: 10, maxConnectionsPerClient: 50)
            == ConnectionLimits(maxConnections: 10, maxConnectionsPerClient: 10), "per client never above the total")
    }

    @Test("at the limit, idle connections are closed to make room: a new client is served, not refused")
    func idleConnectionsAreReapedAtTheLimit() async throws {
        try await withProxy(maxConnections: 4, perClient: 4) { proxy, port, group, a in
            var idle: [RawClient] = []
            for _ in 0..<4 { idle.append(try await RawClient(port: port, group: group)) }
            #expect(await idle[0].wait { _ in proxy.admittedConnections == 4 }, "four idle connections admitted")
            #expect(proxy.metrics.gaugeSnapshot.idleConnectionsReaped == 0, "nothing is reaped while nobody waits")
            let late = try await RawClient(port: port, group: group, source: "127.0.0.2")
            try await late.send("GET /late HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            let answer = await late.responses(1).first
            #expect(answer?.status == 200 && answer?.body == "A GET /late")
            #expect(proxy.metrics.gaugeSnapshot.idleConnectionsReaped >= 1)
            #expect(proxy.metrics.gaugeSnapshot.acceptPauses >= 1)
            #expect(proxy.admittedConnections <= 4)
            #expect(await idle[0].wait { $0.isClosed }, "the idle connections made room")
            for client in idle { await client.close() }
            await late.close()
        }
    }

    @Test("at the limit with every connection busy, accept waits (the connection is queued, not reset) until one finishes")
    func acceptPausesWhileAllAreBusy() async throws {
        try await withProxy(maxConnections: 2, perClient: 2) { proxy, port, group, a in
            // Two uploads in flight: neither is idle, so neither may be reaped.
            var busy: [RawClient] = []
            for source in ["127.0.0.1", "127.0.0.3"] {
                let client = try await RawClient(port: port, group: group, source: source)
                try await client.send("POST /upload HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 10\r\n\r\nhello")
                busy.append(client)
            }
            // Both heads read and forwarded (a connection whose first bytes are not read yet counts as idle).
            #expect(await busy[0].wait { _ in a.accepted.withLockedValue { $0 } == 2 })
            let waiting = try await RawClient(port: port, group: group, source: "127.0.0.4")
            try await waiting.send("GET /queued HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            // It is in the listen backlog: not admitted, not answered, not closed.
            #expect(await waiting.wait(seconds: 1) { _ in proxy.metrics.gaugeSnapshot.acceptPauses >= 1 })
            #expect(waiting.text.isEmpty && !waiting.isClosed)
            #expect(proxy.admittedConnections == 2)
            // One upload finishes: with a connection waiting, its answer ends the connection (instead of
            // keeping it idle in the way), and the queued connection is accepted and served.
            try await busy[0].send("world")
            let finished = await busy[0].responses(1).first
            #expect(finished?.body == "10" && finished?.header("connection") == "close")
            #expect(await busy[0].wait { $0.isClosed })
            let answer = await waiting.responses(1).first
            #expect(answer?.status == 200 && answer?.body == "A GET /queued")
            #expect(answer?.header("connection") != "close", "nobody waits any more: keep-alive again")
            try await busy[1].send("world")
            #expect(await busy[1].responses(1).first?.body == "10")
            await busy[1].close()
            await waiting.close()
        }
    }

    @Test("one client address is held to its limit; other clients still get in")
    func perClientLimit() async throws {
        try await withProxy(maxConnections: 100, perClient: 3) { proxy, port, group, a in
            var mine: [RawClient] = []
            for _ in 0..<3 { mine.append(try await RawClient(port: port, group: group, source: "127.0.0.5")) }
            #expect(await mine[0].wait { _ in proxy.admittedConnections == 3 })
            let fourth = try await RawClient(port: port, group: group, source: "127.0.0.5")
            #expect(await fourth.wait { $0.isClosed }, "the fourth connection from one address is closed at once")
            #expect(proxy.metrics.gaugeSnapshot.connectionsRejectedPerClient == 1)
            let other = try await RawClient(port: port, group: group, source: "127.0.0.6")
            try await other.send("GET /other HTTP/1.1\r\nHost: b.example.com\r\n\r\n")
            #expect(await other.responses(1).first?.body == "B GET /other")
            // The first three still work.
            try await mine[2].send("GET /mine HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await mine[2].responses(1).first?.body == "A GET /mine")
            // One leaves: the address may connect again.
            await mine[0].close()
            #expect(await other.wait { _ in proxy.admittedConnections == 3 })
            let again = try await RawClient(port: port, group: group, source: "127.0.0.5")
            try await again.send("GET /again HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await again.responses(1).first?.body == "A GET /again")
            for client in mine + [fourth, other, again] { await client.close() }
        }
    }
}
