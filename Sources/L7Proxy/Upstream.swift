import NIOCore
import NIOHTTP1
import NIOPosix

/// Opens a raw connection to a backend. The proxy adds the HTTP handlers itself.
/// Injectable so tests can hand out in-memory channels.
public protocol UpstreamConnector: Sendable {
    func connect(to endpoint: UpstreamEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<any Channel>
}

/// TCP to the backend's address, with the connect timeout.
public struct TCPUpstreamConnector: UpstreamConnector {
    public init() {}

    public func connect(to endpoint: UpstreamEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: endpoint.host, port: endpoint.port)
    }
}

/// Receives what an upstream connection reports while it serves an exchange.
protocol UpstreamDelegate: AnyObject {
    func upstreamRead(_ part: HTTPClientResponsePart)
    /// The end of one socket read's worth of response parts: time to flush them to the client.
    func upstreamReadComplete()
    func upstreamClosed()
    func upstreamWritabilityChanged(_ writable: Bool)
    /// Whether the upstream may read more: false while the client connection cannot take more bytes.
    var upstreamMayRead: Bool { get }
}

/// One HTTP/1.1 connection to a backend, owned by the pool when idle and by one exchange when busy.
/// Confined to its event loop.
final class UpstreamConnection {
    let channel: any Channel
    let endpoint: UpstreamEndpoint
    fileprivate let handler: UpstreamHandler
    /// When it last went back to the pool.
    fileprivate var idleSince: NIODeadline = .distantPast
    private let metrics: ProxyMetrics

    fileprivate init(channel: any Channel, endpoint: UpstreamEndpoint, handler: UpstreamHandler, metrics: ProxyMetrics) {
        self.channel = channel
        self.endpoint = endpoint
        self.handler = handler
        self.metrics = metrics
        metrics.noteUpstreamConnection(alive: 1)
    }

    deinit { metrics.noteUpstreamConnection(alive: -1) }

    var delegate: (any UpstreamDelegate)? {
        get { handler.delegate }
        set { handler.delegate = newValue }
    }

    var isWritable: Bool { channel.isWritable }

    /// Lets a held read go ahead (the client connection drained).
    func resumeReads() { handler.resumeReads() }

    /// Writes from the connection's own handler down (not from the pipeline's tail through it).
    func write(_ part: HTTPClientRequestPart, promise: EventLoopPromise<Void>?) {
        handler.write(part, promise: promise)
    }

    /// Flushes what was written since the last flush; nothing written, nothing done (the client
    /// connection's every read ends with a flush of its upstream, usually already flushed).
    func flush() { handler.flushWritten() }

    /// Replaces the HTTP handlers by a tunnel end (after a 101). The connection leaves the pool for good.
    func becomeTunnel(_ end: TunnelHandler) throws {
        handler.delegate = nil
        let sync = channel.pipeline.syncOperations
        let http = sync.present([HTTPRequestEncoder.self, ByteToMessageHandler<HTTPResponseDecoder>.self])
        try end.install(on: channel, removing: [handler] + http)
    }
}

/// The last handler of an upstream channel: hands response parts to the exchange and holds reads
/// while the client cannot take more (backpressure towards the backend).
private final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    weak var delegate: (any UpstreamDelegate)?
    /// Called when the connection closes while it sits in the pool.
    var onIdleClose: (() -> Void)?
    private var readHeld = false
    private var context: ChannelHandlerContext?
    /// Something was written since the last flush.
    private var unflushed = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func write(_ part: HTTPClientRequestPart, promise: EventLoopPromise<Void>?) {
        guard let context else {
            // Removed from the pipeline (closed, or a tunnel now): as a write to a closed channel.
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        unflushed = true
        context.write(wrapOutboundOut(part), promise: promise)
    }

    func flushWritten() {
        guard unflushed, let context else { return }
        unflushed = false
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let delegate {
            delegate.upstreamRead(part)
        } else {
            // Bytes on an idle pooled connection: the backend broke the protocol; drop the connection.
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let delegate {
            self.delegate = nil
            delegate.upstreamClosed()
        } else {
            onIdleClose?()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A response the decoder rejects, or a reset: the connection is unusable either way.
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let delegate, !delegate.upstreamMayRead {
            readHeld = true
        } else {
            context.read()
        }
    }

    func resumeReads() {
        guard readHeld, let context else { return }
        readHeld = false
        context.read()
    }
}

/// Idle upstream connections per backend endpoint, one pool per event loop (so an exchange and its
/// upstream connection share a loop and never hop threads).
///
/// A connection idle for `upstreamIdleTimeout` is closed. Rather than one timer per release (armed and
/// cancelled for every request), one sweep timer per pool is armed for the oldest idle connection's
/// deadline: each endpoint's list is in release order and `acquire` takes the most recently released.
final class UpstreamPool {
    private let eventLoop: any EventLoop
    private let connector: any UpstreamConnector
    private let options: ProxyOptions
    private let metrics: ProxyMetrics
    private var idle: [UpstreamEndpoint: [UpstreamConnection]] = [:]
    private var sweepTimer: Scheduled<Void>?
    private var sweepDeadline: NIODeadline?

    init(eventLoop: any EventLoop, connector: any UpstreamConnector, options: ProxyOptions, metrics: ProxyMetrics) {
        self.eventLoop = eventLoop
        self.connector = connector
        self.options = options
        self.metrics = metrics
    }

    /// Number of idle pooled connections (for tests).
    var idleCount: Int { idle.values.reduce(0) { $0 + $1.count } }

    /// The most recently released idle connection to `endpoint` that is still open, taken out of
    /// the pool; nil when there is none. (The endpoint's list stays in the dictionary, emptied, so
    /// the next release appends without allocating; the sweep drops empty lists.)
    func takeIdle(_ endpoint: UpstreamEndpoint) -> UpstreamConnection? {
        while let connection = idle[endpoint]?.popLast() {
            // Its onIdleClose stays: while an exchange holds it, its delegate is told of a close
            // instead, and `remove` finds nothing to remove.
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// Calls `completion` on the pool's loop with a pooled connection when one is alive (`reused`
    /// true), else a new one. `fresh` skips the pool (the retry after a failure).
    func acquire(
        _ endpoint: UpstreamEndpoint, fresh: Bool,
        completion: @escaping (Result<(UpstreamConnection, reused: Bool), any Error>) -> Void
    ) {
        if !fresh, let connection = takeIdle(endpoint) {
            completion(.success((connection, true)))
            return
        }
        var connected = connector.connect(to: endpoint, on: eventLoop, timeout: options.connectTimeout).hop(to: eventLoop)
        if let tls = endpoint.tls {
            // TLS to the backend: the connection is handed out only once the handshake is done and
            // the backend's certificate verified (nothing is written to it before).
            let timeout = options.connectTimeout
            connected = connected.assumeIsolated().flatMap { tls.secure($0, timeout: timeout) }.nonisolated()
        }
        connected
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    do {
                        let handler = UpstreamHandler()
                        let sync = channel.pipeline.syncOperations
                        // As addHTTPClientHandlers, but 1xx heads are forwarded (relayed to the client) and
                        // bytes after a 101 stay in the decoder until the tunnel replaces it.
                        let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .forward)
                        // No NIOHTTPRequestHeadersValidator: what the proxy sends is already valid
                        // (`HeaderRewriting`'s "What is sent unchecked").
                        try sync.addHandlers([HTTPRequestEncoder(), ByteToMessageHandler(decoder)])
                        try sync.addHandler(handler)
                        let connection = UpstreamConnection(channel: channel, endpoint: endpoint, handler: handler, metrics: self.metrics)
                        // Set once: a connection that closes while it sits in the pool leaves it.
                        handler.onIdleClose = { [weak self, weak connection] in
                            guard let self, let connection else { return }
                            self.remove(connection)
                        }
                        completion(.success((connection, false)))
                    } catch {
                        channel.close(promise: nil)
                        completion(.failure(error))
                    }
                case .failure(let error):
                    completion(.failure(error))
                }
            }
    }

    /// Takes a connection back after a complete exchange, or closes it when the pool is full or it is closing.
    func release(_ connection: UpstreamConnection, reuse: Bool) {
        connection.delegate = nil
        guard reuse, connection.channel.isActive,
            (idle[connection.endpoint]?.count ?? 0) < options.maxIdleConnectionsPerBackend
        else {
            connection.channel.close(promise: nil)
            return
        }
        connection.idleSince = eventLoop.now
        connection.handler.resumeReads()
        idle[connection.endpoint, default: []].append(connection)
        if sweepDeadline == nil { armSweep(at: connection.idleSince + options.upstreamIdleTimeout) }
    }

    private func remove(_ connection: UpstreamConnection) {
        idle[connection.endpoint]?.removeAll { $0 === connection }
        if idle[connection.endpoint]?.isEmpty == true { idle[connection.endpoint] = nil }
    }

    private func armSweep(at deadline: NIODeadline) {
        sweepDeadline = deadline
        sweepTimer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            self?.sweep()
        }
    }

    /// Closes the connections idle for the timeout, then arms the timer for the oldest one left.
    private func sweep() {
        sweepTimer = nil
        sweepDeadline = nil
        let now = eventLoop.now
        var oldest: NIODeadline?
        for endpoint in Array(idle.keys) {
            guard var list = idle[endpoint] else { continue }
            let expired = Array(list.prefix { $0.idleSince + options.upstreamIdleTimeout <= now })
            list.removeFirst(expired.count)
            idle[endpoint] = list.isEmpty ? nil : list
            for connection in expired {
                connection.handler.onIdleClose = nil
                connection.channel.close(promise: nil)
            }
            if let first = list.first { oldest = min(oldest ?? first.idleSince, first.idleSince) }
        }
        if let oldest { armSweep(at: oldest + options.upstreamIdleTimeout) }
    }

    /// Closes every idle connection.
    func closeAll() {
        sweepTimer?.cancel()
        sweepTimer = nil
        sweepDeadline = nil
        let all = idle.values.joined()
        idle = [:]
        for connection in all {
            connection.handler.onIdleClose = nil
            connection.channel.close(promise: nil)
        }
    }
}
