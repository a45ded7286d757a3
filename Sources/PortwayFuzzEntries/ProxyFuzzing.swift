import GatewayCore
import L7Proxy
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// What one fuzz input did.
public struct ProxyFuzzOutcome: Sendable, Equatable {
    /// The status codes of the responses the proxy wrote, in order.
    public var statuses: [Int]
    /// Whether the proxy closed the connection.
    public var closed: Bool
}

/// A fuzz entry point for the proxy: feeds `bytes` (split at `splitAt` when given, to exercise
/// partial reads) into a client connection with the real codec, limits and connection state
/// machine, on in-memory channels. Requests for host `backend` are forwarded: without
/// `upstreamResponse` every connect fails (the 504 path); with it, each upstream connection that
/// received a request is answered with those bytes (fuzzing the response side too). `/redirect`
/// redirects; the rest get 404. Must never crash, whatever the bytes.
public func fuzzProxyRequestParser(
    _ bytes: [UInt8], splitAt: Int? = nil, upstreamResponse: [UInt8]? = nil, options: ProxyOptions = ProxyOptions()
) -> ProxyFuzzOutcome {
    let loop = EmbeddedEventLoop()
    let channel = EmbeddedChannel(loop: loop)
    let connector = FuzzConnector(loop: loop, succeed: upstreamResponse != nil)
    let metrics = ProxyMetrics()
    var outcome = ProxyFuzzOutcome(statuses: [], closed: false)
    defer { tearDown(client: channel, upstreams: connector, loop: loop) }
    do {
        try channel.pipeline.syncOperations.addHandler(SocketLikeWrites())
        try L7Proxy.installConnection(
            on: channel, proxyPort: 8080, options: options, routes: RouteTableHolder(FuzzRouter()), metrics: metrics, connector: connector,
            eventLoop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        let cut = min(max(splitAt ?? bytes.count, 0), bytes.count)
        for piece in [bytes[..<cut], bytes[cut...]] where !piece.isEmpty {
            guard channel.isActive else { break }
            _ = try? channel.writeInbound(channel.allocator.buffer(bytes: piece))
            loop.run()
            if let upstreamResponse { connector.answer(with: upstreamResponse) }
        }
        loop.advanceTime(by: .seconds(3600))
        var response = ByteBuffer()
        while let chunk = try channel.readOutbound(as: ByteBuffer.self) { response.writeImmutableBuffer(chunk) }
        outcome.statuses = statusCodes(in: String(buffer: response))
        outcome.closed = !channel.isActive
    } catch {
        outcome.closed = true
    }
    return outcome
}

/// Ends one input as a real event loop would end it: the client connection closes (the proxy's own
/// close path runs), then every upstream connection, then the loop runs what that queued and drops
/// what is still scheduled. An EmbeddedEventLoop runs tasks only when told: a task left queued (the
/// pipeline teardown `close` defers, a timer) holds its channel, which holds the loop — a cycle that
/// kept every such input's channels, handlers and promises alive (LeakSanitizer's report at exit).
private func tearDown(client: EmbeddedChannel, upstreams: FuzzConnector, loop: EmbeddedEventLoop) {
    _ = try? client.finish(acceptAlreadyClosed: true)
    upstreams.finishAll()
    try? loop.syncShutdownGracefully()
}

/// Fails writes that were never flushed when the channel closes, as a socket channel does. An
/// EmbeddedChannel keeps them, promise and all, after it closed; freed unfulfilled, NIO's debug
/// build traps ("leaking promise"). Added first, nearest the head, so it sees every write.
private final class SocketLikeWrites: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny
    private var unflushed: [(data: NIOAny, promise: EventLoopPromise<Void>?)] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        unflushed.append((data, promise))
    }

    func flush(context: ChannelHandlerContext) {
        let writes = unflushed
        unflushed = []
        for write in writes { context.write(write.data, promise: write.promise) }
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        failUnflushed()
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) { failUnflushed() }

    private func failUnflushed() {
        let writes = unflushed
        unflushed = []
        for write in writes { write.promise?.fail(ChannelError.ioOnClosedChannel) }
    }
}

/// Status codes of the HTTP/1.x status lines at line starts in a response stream (a rough scan,
/// for the fuzz outcome).
func statusCodes(in text: String) -> [Int] {
    let bytes = Array(text.utf8)
    let prefix = Array("HTTP/1.".utf8)
    var codes: [Int] = []
    var index = 0
    while index + 12 <= bytes.count {
        let atLineStart = index == 0 || bytes[index - 1] == UInt8(ascii: "\n")
        if atLineStart && Array(bytes[index..<index + prefix.count]) == prefix,
            let code = Int(String(decoding: bytes[index + 9..<index + 12], as: UTF8.self))
        {
            codes.append(code)
        }
        index += 1
    }
    return codes
}

private struct FuzzRouter: RequestRouter {
    func route(_ request: RoutingRequest) -> RoutingDecision {
        if request.path == "/redirect" { return .redirect(RedirectDecision(scheme: "https")) }
        if request.host == "backend" {
            return .forward(ForwardDecision(backends: [.endpoints([UpstreamEndpoint(host: "192.0.2.1", port: 80)])]))
        }
        return .respond(status: 404, route: .none)
    }
}

/// Upstream connections for the fuzz entry: all fail, or in-memory channels answered on demand.
/// Used on the embedded loop's thread only.
private final class FuzzConnector: UpstreamConnector, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    let succeed: Bool
    private var upstreams: [(channel: EmbeddedChannel, answered: Bool)] = []

    init(loop: EmbeddedEventLoop, succeed: Bool) {
        self.loop = loop
        self.succeed = succeed
    }

    func connect(to endpoint: UpstreamEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<any Channel> {
        guard succeed else { return eventLoop.makeFailedFuture(ChannelError.connectTimeout(timeout)) }
        let channel = EmbeddedChannel(loop: loop)
        _ = try? channel.pipeline.syncOperations.addHandler(SocketLikeWrites())
        _ = try? channel.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 80)).wait()
        upstreams.append((channel, false))
        return loop.makeSucceededFuture(channel)
    }

    /// Closes every upstream connection (those the proxy closed already are fine).
    func finishAll() {
        for upstream in upstreams { _ = try? upstream.channel.finish(acceptAlreadyClosed: true) }
        upstreams = []
    }

    /// Answers, once, every upstream connection that has received bytes.
    func answer(with response: [UInt8]) {
        for index in upstreams.indices where !upstreams[index].answered {
            let channel = upstreams[index].channel
            var received = false
            while (try? channel.readOutbound(as: IOData.self)) != nil { received = true }
            guard received, channel.isActive else { continue }
            upstreams[index].answered = true
            _ = try? channel.writeInbound(channel.allocator.buffer(bytes: response))
            loop.run()
        }
    }
}
