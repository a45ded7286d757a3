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
    let shared = ConnectionContext(
        proxyPort: 8080, isTLS: false, options: options, routes: RouteTableHolder(FuzzRouter()), metrics: ProxyMetrics(),
        pool: UpstreamPool(eventLoop: loop, connector: connector, options: options))
    var outcome = ProxyFuzzOutcome(statuses: [], closed: false)
    do {
        try L7Proxy.configure(channel, shared: shared, tls: nil)
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
        _ = try? channel.finish()
    } catch {
        outcome.closed = true
    }
    return outcome
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
        _ = try? channel.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 80)).wait()
        upstreams.append((channel, false))
        return loop.makeSucceededFuture(channel)
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
