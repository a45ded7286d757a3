import GatewayCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing
@testable import L7Proxy

/// A real HTTP/1.1 backend on 127.0.0.1 for integration tests. Paths:
/// - `/upload`: reads the body (slowly with `x-read-delay-ms`), answers with the byte count;
/// - `/download?bytes=N`: streams N bytes, honouring the socket's writability;
/// - `/hang`: never answers; `/close`: closes without answering;
/// - anything else: `<name> <method> <path>` and the request headers echoed as `x-echo-<name>`.
final class TestBackend: Sendable {
    let name: String
    let channel: any Channel
    let port: Int
    /// Connections accepted so far (to see pooling).
    let accepted = NIOLockedValueBox(0)

    /// `tls`: serve HTTPS with this context (a BackendTLSPolicy's backend).
    init(name: String, group: any EventLoopGroup, tls: NIOSSLContext? = nil) async throws {
        self.name = name
        let accepted = self.accepted
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(BackendHandler(name: name))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
    }

    var endpoint: UpstreamEndpoint { UpstreamEndpoint(host: "127.0.0.1", port: port) }

    func close() async { try? await channel.close() }
}

private final class BackendHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let name: String
    private var head: HTTPRequestHead?
    private var received = 0
    private var readDelay: TimeAmount?
    private var downloadLeft = 0
    private var context: ChannelHandlerContext?

    init(name: String) { self.name = name }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func read(context: ChannelHandlerContext) {
        guard let delay = readDelay else { return context.read() }
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self, let context = self.context else { return }
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            received = 0
            if let ms = head.headers.first(name: "x-read-delay-ms").flatMap(Int64.init) { readDelay = .milliseconds(ms) }
        case .body(let bytes):
            received += bytes.readableBytes
        case .end:
            readDelay = nil
            guard let head else { return }
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(head.uri.prefix { $0 != "?" })
        switch path {
        case "/hang":
            return
        case "/close":
            context.close(promise: nil)
        case "/upload":
            send(status: .ok, body: "\(received)", context: context)
        case "/download":
            let bytes = head.uri.split(separator: "=").last.flatMap { Int($0) } ?? 0
            downloadLeft = bytes
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "\(bytes)"]))), promise: nil)
            pump(context: context)
        default:
            var headers = HTTPHeaders()
            for (k, v) in head.headers { headers.add(name: "x-echo-\(k)", value: v) }
            headers.add(name: "x-backend", value: name)
            send(status: .ok, body: "\(name) \(head.method.rawValue) \(head.uri)", headers: headers, context: context)
        }
    }

    private func pump(context: ChannelHandlerContext) {
        while downloadLeft > 0 && context.channel.isWritable {
            let n = min(downloadLeft, 64 * 1024)
            downloadLeft -= n
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(repeating: UInt8(ascii: "d"), count: n)))), promise: nil)
        }
        if downloadLeft == 0 {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            context.flush()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && downloadLeft > 0 { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func send(status: HTTPResponseStatus, body: String, headers: HTTPHeaders = [:], context: ChannelHandlerContext) {
        var headers = headers
        headers.replaceOrAdd(name: "content-length", value: "\(body.utf8.count)")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// Runs `body` with two backends (A and B), a proxy routing by Host (`HostRouter`) with `options`,
/// and one open listener on loopback; shuts everything down after.
func withHostRoutedProxy(
    options: ProxyOptions = ProxyOptions(),
    _ body: (_ proxy: L7Proxy, _ port: UInt16, _ a: TestBackend, _ b: TestBackend, _ group: any EventLoopGroup) async throws -> Void
) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let a = try await TestBackend(name: "A", group: group)
    let b = try await TestBackend(name: "B", group: group)
    let proxy = L7Proxy(group: group, routes: RouteTableHolder(HostRouter(a: [a.endpoint], b: [b.endpoint])), options: options)
    do {
        let port = try await proxy.open(port: 0)
        try await body(proxy, port, a, b, group)
    } catch {
        Issue.record("unexpected error: \(error)")
    }
    await proxy.shutdown()
    await a.close()
    await b.close()
    try await group.shutdownGracefully()
}

/// A raw TCP client: sends bytes as given, collects everything received.
final class RawClient: Sendable {
    let channel: any Channel
    private let received: NIOLockedValueBox<ByteBuffer>
    private let closed: NIOLockedValueBox<Bool>
    /// When set, the client stops reading (to make the proxy hold back a download).
    let paused: NIOLockedValueBox<Bool>

    /// `source`: the local address to connect from (another loopback address is another client).
    init(port: UInt16, group: any EventLoopGroup, paused: Bool = false, tls: (NIOSSLContext, String)? = nil, source: String? = nil) async throws {
        let received = NIOLockedValueBox(ByteBuffer())
        let closed = NIOLockedValueBox(false)
        let pausedBox = NIOLockedValueBox(paused)
        self.received = received
        self.closed = closed
        self.paused = pausedBox
        var bootstrap = ClientBootstrap(group: group)
        if let source { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0)) }
        channel = try await bootstrap
            .channelOption(.autoRead, value: !paused)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let (context, serverName) = tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(Collector(received: received, closed: closed))
                }
            }
            .connect(host: "127.0.0.1", port: Int(port)).get()
    }

    func send(_ text: String) async throws { try await channel.writeAndFlush(ByteBuffer(string: text)) }
    func send(_ buffer: ByteBuffer) async throws { try await channel.writeAndFlush(buffer) }

    /// Starts reading (after a paused start).
    func resume() async throws {
        try await channel.setOption(.autoRead, value: true).get()
        channel.read()
    }

    var text: String { received.withLockedValue { String(buffer: $0) } }
    var byteCount: Int { received.withLockedValue { $0.readableBytes } }
    var isClosed: Bool { closed.withLockedValue { $0 } }

    /// Waits (bounded) until `condition` holds on what was received; returns whether it did. The
    /// default bound is generous: the full parallel run can keep the concurrency pool busy for tens
    /// of seconds on 2 cores, and only a failing test waits it out.
    @discardableResult
    func wait(seconds: Double = 60, until condition: (RawClient) -> Bool) async -> Bool {
        await waitUntil(timeout: .milliseconds(Int(seconds * 1000))) { condition(self) }
    }

    /// Waits for `count` complete responses and returns them.
    func responses(_ count: Int, seconds: Double = 60) async -> [ParsedResponse] {
        await wait(seconds: seconds) { client in
            let parsed = parseResponses(client.text)
            return parsed.count >= count && (parsed.last.map { r in
                guard let length = r.header("content-length").flatMap(Int.init) else { return true }
                return r.body.utf8.count >= length
            } ?? false)
        }
        return parseResponses(text)
    }

    func close() async { try? await channel.close() }
}

private final class Collector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let received: NIOLockedValueBox<ByteBuffer>
    let closed: NIOLockedValueBox<Bool>
    init(received: NIOLockedValueBox<ByteBuffer>, closed: NIOLockedValueBox<Bool>) {
        self.received = received
        self.closed = closed
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        _ = received.withLockedValue { $0.writeBuffer(&buffer) }
    }
    func channelInactive(context: ChannelHandlerContext) {
        closed.withLockedValue { $0 = true }
        context.fireChannelInactive()
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// A backend that accepts any request as a protocol switch: answers 101 plus a greeting in the same
/// write, then echoes every byte back.
final class UpgradeEchoBackend: Sendable {
    let channel: any Channel
    var endpoint: UpstreamEndpoint { UpstreamEndpoint(host: "127.0.0.1", port: channel.localAddress!.port!) }

    init(group: any EventLoopGroup) async throws {
        channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(UpgradeEchoHandler()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func close() async { try? await channel.close() }
}

private final class UpgradeEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var head = ""
    private var switched = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if switched {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
            return
        }
        head += String(buffer: bytes)
        if head.contains("\r\n\r\n") {
            switched = true
            let reply = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello\n"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply)), promise: nil)
        }
    }
}
