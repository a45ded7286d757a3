import Foundation
import GatewayCore
import Logging
import PortwayTestSupport
import ServiceLifecycle
import Synchronization
import Testing
@testable import Agent

/// A take-over's pre-opened proxy ports (`portway agent --take-over`) are held until the agent's
/// first route tables say which ports it serves.
@Suite struct TakeOverAdoptionTests {
    /// A listening socket on 127.0.0.1 (an ephemeral port), as the take-over pre-opens one; nothing accepts on it.
    static func listeningSocket() throws -> (fd: CInt, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound && listen(fd, 64) == 0)
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// The map writer's report of the redirects can reach the proxy output before the first
    /// tables. It used to run a step with no tables, which closed every pre-opened port as
    /// "wanted by no Gateway" and reset the connections queued on it (the agent-restart e2e test's
    /// take-over failures); then the tables came and the port was bound anew.
    @Test("a report of the redirects before the first tables closes no pre-opened port; the connection queued on it is answered once the tables come")
    func redirectsBeforeTheFirstTablesKeepThePreopenedPorts() async throws {
        let (fd, port) = try Self.listeningSocket()
        let steps = Mutex(0)
        let log = LogLines()
        var logger = Logger(label: "test.proxy") { _ in CapturingLogHandler(sink: log) }
        logger.logLevel = .debug
        let output = L7ProxyOutput(
            mode: .transparent, threads: 1, preopened: [port: fd], logger: logger, onPending: { _ in steps.withLock { $0 += 1 } })
        let group = ServiceGroup(configuration: .init(services: [.init(service: output)], logger: Logger(label: "test.group")))
        let run = Task { try? await group.run() }

        // A client queued on the pre-opened port, its request sent; nothing has accepted it yet.
        let client = try RawSocketClient(port: port)
        try client.send("GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n")
        // The map writer's report first, in a step of its own (the old code closed the pre-opened
        // port in it; the output now says it waits for tables); then the tables (no routes: 404).
        output.redirectsWritten(RedirectsWritten(written: [port: 1]))
        try await eventually("the report's step done") {
            log.lines.withLock { $0.contains { $0.contains("waiting for the first route tables") || $0.contains("pre-opened proxy port") } }
        }
        let web = NamespacedName(namespace: "demo", name: "web")
        output.publish([port: PortRouteTable(gateway: web, port: 80, listeners: [ListenerRouteTable(name: "http", hostname: nil, protocol: .http, rules: [])])], certificates: [:])
        try await eventually("the tables applied") { steps.withLock { $0 } >= 1 && output.proxy.ports == [port] }

        let answer = try await onDedicatedThread { try client.readAll() }
        #expect(answer.hasPrefix("HTTP/1.1 404"), "the queued connection is answered by the adopting proxy, not reset: \(answer.debugDescription)")
        await group.triggerGracefulShutdown()
        await run.value
    }
}

/// A blocking TCP client on 127.0.0.1 (Glibc sockets; read on a thread of its own).
final class RawSocketClient: Sendable {
    let fd: CInt

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0, "connect: errno \(errno)")
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        try #require(Glibc.send(fd, bytes, bytes.count, 0) == bytes.count)
    }

    /// Everything until the peer closes (or resets: what came before, then `<errno N>`).
    func readAll() throws -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 { return String(decoding: received, as: UTF8.self) + "<errno \(errno)>" }
            if n == 0 { break }
            received += buffer[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
