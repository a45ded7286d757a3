import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// Binds a listening socket for a proxy port. Injectable: the agent binds transparent sockets
/// (IP_TRANSPARENT, the target of the datapath's L7LB redirect); tests bind plain loopback.
public protocol ListenerBinder: Sendable {
    /// Binds `bootstrap` (already configured with the proxy's handlers) for `port`.
    func bind(_ bootstrap: ServerBootstrap, port: UInt16) async throws -> any Channel
}

/// Plain TCP on one address (loopback by default). Port 0 picks a free port.
public struct AddressBinder: ListenerBinder {
    public var host: String
    public init(host: String = "127.0.0.1") { self.host = host }
    public func bind(_ bootstrap: ServerBootstrap, port: UInt16) async throws -> any Channel {
        try await bootstrap.bind(host: host, port: Int(port)).get()
    }
}

/// Adopts a listening socket opened elsewhere, e.g. the datapath's transparent listener:
/// `BoundSocketBinder { port in try TransparentListener.openTCP(port: port) }`. The proxy owns the
/// descriptor from then on (closing the port closes it).
public struct BoundSocketBinder: ListenerBinder {
    private let openSocket: @Sendable (UInt16) throws -> CInt

    /// `openSocket` returns a bound, listening TCP socket for the port.
    public init(openSocket: @escaping @Sendable (UInt16) throws -> CInt) {
        self.openSocket = openSocket
    }

    public func bind(_ bootstrap: ServerBootstrap, port: UInt16) async throws -> any Channel {
        let descriptor = try openSocket(port)
        return try await bootstrap.withBoundSocket(descriptor).get()
    }
}

/// What a listener needs beyond its port.
public struct ListenerConfiguration: Sendable {
    /// TLS to terminate on this proxy port (its HTTPS listeners' certificates), or nil for plain HTTP.
    public var tls: TLSListener?
    public init(tls: TLSListener? = nil) { self.tls = tls }
}

public enum L7ProxyError: Error, CustomStringConvertible {
    case bindFailed(port: UInt16, underlying: any Error)
    /// The proxy began to stop (`drain`, `shutdown`) while the port was being opened.
    case stopped(port: UInt16)
    public var description: String {
        switch self {
        case .bindFailed(let port, let error): return "proxy port \(port): bind failed: \(error)"
        case .stopped(let port): return "proxy port \(port): not opened, the proxy is stopping"
        }
    }
}

/// The node's L7 proxy: HTTP/1.1 listeners on the proxy ports, each request routed with the current
/// route table and forwarded to pooled upstream connections.
///
/// Ports open and close at runtime without touching the others; closing a port stops accepting,
/// while connections already accepted finish their requests. The route table is swapped with
/// `routes.swap(_:)`. See docs/L7PROXY.md.
public final class L7Proxy: Sendable {
    /// The current route table.
    public let routes: RouteTableHolder
    /// Counters and latency per route and status.
    public let metrics: ProxyMetrics
    public let options: ProxyOptions

    private let group: any EventLoopGroup
    private let binder: any ListenerBinder
    private let connector: any UpstreamConnector
    private let random: @Sendable (UInt64) -> UInt64
    private let logger: Logger
    private let listeners = Mutex<[UInt16: any Channel]>([:])
    /// Client connections open now (all ports).
    private let activeConnections = Mutex<[ObjectIdentifier: any Channel]>([:])
    /// The certificates and TLS contexts of the open HTTPS ports.
    private let certificateStores = Mutex<[UInt16: TLSPort]>([:])
    private let pools = Mutex<[ObjectIdentifier: NIOLoopBound<UpstreamPool>]>([:])
    /// Client connections counted against `options`' limits.
    private let admission: ConnectionAdmission
    /// Set by `drain`/`shutdown`: a listener whose bind completes after that is closed at once.
    private let stopping = Mutex(false)

    /// The connection limits in force (derived from the descriptor limit when not set).
    public var connectionLimits: ConnectionLimits { admission.limits }

    public init(
        group: any EventLoopGroup, routes: RouteTableHolder = RouteTableHolder(), options: ProxyOptions = ProxyOptions(),
        binder: any ListenerBinder = AddressBinder(), connector: any UpstreamConnector = TCPUpstreamConnector(),
        metrics: ProxyMetrics = ProxyMetrics(),
        random: (@Sendable (UInt64) -> UInt64)? = nil,
        logger: Logger = Logger(label: "portway.proxy")
    ) {
        self.logger = logger
        self.group = group
        self.routes = routes
        self.options = options
        self.binder = binder
        self.connector = connector
        self.metrics = metrics
        self.admission = ConnectionAdmission(limits: options.connectionLimits())
        // Uniform in 0..<n; by default a fast generator (the system one costs a system call per draw).
        self.random = random ?? FastRandom.draw
    }

    /// The ports listening now (the bound port for listeners opened with port 0).
    public var ports: [UInt16] { listeners.withLock { $0.keys.sorted() } }

    /// Starts listening on `port` (0 picks a free port) and returns the bound port. Opening a port
    /// that is already open returns it unchanged; once `drain` or `shutdown` began, nothing opens.
    @discardableResult
    public func open(port: UInt16, configuration: ListenerConfiguration = ListenerConfiguration()) async throws -> UInt16 {
        if port != 0, listeners.withLock({ $0[port] != nil }) { return port }
        if stopping.withLock({ $0 }) { throw L7ProxyError.stopped(port: port) }
        // HTTPS: handshakes choose among the store's certificates, replaceable while the port is
        // open; each connection takes the port's context of the moment (client validation changes).
        let store = try configuration.tls.map { try TLSPort($0) }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptGate(admission: admission, metrics: metrics) { [weak self] in
                        self?.underPressure()
                    })
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.initializeConnection(channel, tls: store?.context)
                }
            }
        let channel: any Channel
        do {
            channel = try await binder.bind(bootstrap, port: port)
        } catch {
            logger.error("cannot listen on proxy port", metadata: ["port": "\(port)", "error": "\(error)"])
            throw L7ProxyError.bindFailed(port: port, underlying: error)
        }
        let bound = UInt16(channel.localAddress?.port ?? Int(port))
        // A bind that was slow (a busy event loop) may finish after the proxy began to stop.
        let registered = stopping.withLock { stopping in
            if stopping { return false }
            listeners.withLock { $0[bound] = channel }
            return true
        }
        guard registered else {
            channel.close(promise: nil)
            throw L7ProxyError.stopped(port: port)
        }
        certificateStores.withLock { $0[bound] = store }
        logger.info("listening", metadata: ["port": "\(bound)", "tls": "\(configuration.tls != nil)"])
        return bound
    }

    /// Stops listening on `port`. Connections it accepted finish what they are doing. Waits for
    /// the listener to close until `deadline` (nil: none) or until the task is cancelled: the port
    /// is out of `ports` at once either way, and a busy event loop closes it when it gets to it.
    public func close(port: UInt16, until deadline: ContinuousClock.Instant? = nil) async {
        guard let channel = listeners.withLock({ $0.removeValue(forKey: port) }) else { return }
        certificateStores.withLock { $0[port] = nil }
        let closed = await BoundedWait.until(deadline, channel.close(mode: .all))
        logger.info("stopped listening", metadata: ["port": "\(port)", "closed": "\(closed ? "yes" : "pending (event loop busy)")"])
    }

    /// True when `port` is open and terminates TLS.
    public func terminatesTLS(port: UInt16) -> Bool {
        certificateStores.withLock { $0[port] != nil }
    }

    /// Replaces the certificates (and the client certificate validation) of the open HTTPS port
    /// `port` while it stays open: new handshakes get them, connections already established keep
    /// theirs. False when `port` is not an open HTTPS port (open it with a TLS configuration
    /// instead), or when a context with the new validation could not be made (nothing changed:
    /// close and reopen the port, which fails the same way rather than serve without it).
    @discardableResult
    public func updateCertificates(port: UInt16, tls: TLSListener) -> Bool {
        guard let store = certificateStores.withLock({ $0[port] }), !tls.certificates.isEmpty else { return false }
        do {
            try store.update(tls)
        } catch {
            logger.error("TLS not updated", metadata: ["port": "\(port)", "error": "\(error)"])
            return false
        }
        logger.info("certificates replaced", metadata: [
            "port": "\(port)", "count": "\(tls.certificates.count)", "clientValidation": "\(tls.clientValidation.map { $0.required ? "required" : "off" } ?? "none")",
        ])
        return true
    }

    /// Makes the open ports exactly `ports`: opens the missing ones, closes the others. Every port is
    /// tried; the first bind error is thrown after the rest are done.
    public func setPorts(_ ports: Set<UInt16>) async throws {
        let current = Set(self.ports)
        for port in current.subtracting(ports) { await close(port: port) }
        var firstError: (any Error)?
        for port in ports.subtracting(current).sorted() {
            do { try await open(port: port) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }

    /// Client connections open now, on every port.
    public var connectionCount: Int { activeConnections.withLock { $0.count } }

    /// Stops accepting on every port and closes the idle connections; busy ones close after their
    /// current answer (sent with `Connection: close`). Returns when all are closed or `timeout`
    /// passed (a graceful stop: requests in flight finish), whatever the event loops do: the
    /// deadline is kept on Swift's clock. Call `shutdown()` after it.
    public func drain(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        stopping.withLock { $0 = true }
        // Every listener at once: one busy loop must not hold back the others' closes.
        let closing = ports
        await withTaskGroup(of: Void.self) { group in
            for port in closing { group.addTask { await self.close(port: port, until: deadline) } }
        }
        for channel in activeConnections.withLock({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(DrainRequested())
        }
        while connectionCount > 0, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Closes every listener and every pooled upstream connection; waits for the event loops to
    /// do so until `deadline` (nil: until done or cancelled).
    public func shutdown(until deadline: ContinuousClock.Instant? = nil) async {
        stopping.withLock { $0 = true }
        let closing = ports
        let all = pools.withLock { pools in
            defer { pools = [:] }
            return Array(pools.values)
        }
        await withTaskGroup(of: Void.self) { group in
            for port in closing { group.addTask { await self.close(port: port, until: deadline) } }
            for pool in all {
                group.addTask { await BoundedWait.until(deadline, pool.eventLoop.submit { pool.value.closeAll() }) }
            }
        }
    }

    /// Idle pooled upstream connections on all loops (for tests and diagnostics).
    public func idleUpstreamConnections() async -> Int {
        let all = pools.withLock { Array($0.values) }
        var total = 0
        for pool in all {
            total += (try? await pool.eventLoop.submit { pool.value.idleCount }.get()) ?? 0
        }
        return total
    }

    private func pool(for eventLoop: any EventLoop) -> UpstreamPool {
        let key = ObjectIdentifier(eventLoop)
        let options = self.options
        let connector = self.connector
        let metrics = self.metrics
        let bound = pools.withLock { pools in
            if let existing = pools[key] { return existing }
            let created = NIOLoopBound(UpstreamPool(eventLoop: eventLoop, connector: connector, options: options, metrics: metrics), eventLoop: eventLoop)
            pools[key] = created
            return created
        }
        return bound.value
    }

    /// A new connection waits for room: every connection waiting for its next request closes (at
    /// most every 100 ms), so clients with work get the room idle ones held.
    private func underPressure() {
        guard admission.shouldReap(now: .now()) else { return }
        for channel in activeConnections.withLock({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(ReapIfIdle())
        }
    }

    /// Client connections open now, as counted against the limits.
    public var admittedConnections: Int { admission.openConnections }

    private func initializeConnection(_ channel: any Channel, tls: NIOSSLContext?) throws {
        let port = UInt16(channel.parent?.localAddress?.port ?? 0)
        let key = ObjectIdentifier(channel)
        activeConnections.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in self?.activeConnections.withLock { $0[key] = nil } }
        try Self.configure(
            channel,
            shared: ConnectionContext(
                proxyPort: port, isTLS: tls != nil, options: options, routes: routes, metrics: metrics, admission: admission,
                pool: pool(for: channel.eventLoop), random: random, logger: logger),
            tls: tls)
    }

    /// A client connection's handlers on `channel`, with upstream connections from `connector` on
    /// `eventLoop`: what an accepted socket gets, for a harness's in-memory channel (the fuzz
    /// entries in PortwayFuzzEntries; the package boundary keeps it out of the public API).
    package static func installConnection(
        on channel: any Channel, proxyPort: UInt16, options: ProxyOptions, routes: RouteTableHolder, metrics: ProxyMetrics,
        connector: any UpstreamConnector, eventLoop: any EventLoop
    ) throws {
        let shared = ConnectionContext(
            proxyPort: proxyPort, isTLS: false, options: options, routes: routes, metrics: metrics,
            pool: UpstreamPool(eventLoop: eventLoop, connector: connector, options: options, metrics: metrics))
        try configure(channel, shared: shared, tls: nil)
    }

    /// Installs the proxy's handlers on a client channel: TLS (optional; the ClientHello's server
    /// name read first, for misdirected-request detection), the HTTP/1.1 server codec with its
    /// limits, then the connection handler.
    static func configure(_ channel: any Channel, shared: ConnectionContext, tls: NIOSSLContext?) throws {
        let sync = channel.pipeline.syncOperations
        var serverName: TLSServerName?
        if let tls {
            // NIOSSL does not tell a handler the SNI it chose the certificate by; NIOTLS's
            // SNIHandler reads it from the ClientHello, then leaves the bytes to NIOSSL.
            let eventLoop = channel.eventLoop
            let sni = TLSServerName()
            serverName = sni
            try sync.addHandler(ByteToMessageHandler(SNIHandler { result in
                if case .hostname(let name) = result { sni.name = name }
                return eventLoop.makeSucceededVoidFuture()
            }))
            try sync.addHandler(NIOSSLServerHandler(context: tls))
        }
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = shared.options.maxHeaderBytes
        limits.maxHeaderFieldSize = shared.options.maxHeaderBytes
        limits.maxHeaderFieldCount = shared.options.maxHeaderCount
        // Pipelining is the connection handler's (it queues a request that arrives before the
        // previous answer ended, rather than NIO's handler, which stops reading the socket per request).
        // No outbound header validator (it scanned every header of every response): what the proxy
        // sends is already valid (`HeaderRewriting`'s "What is sent unchecked").
        try sync.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
        try sync.addHandler(DownstreamHandler(shared: shared, serverName: serverName))
    }
}

/// The server name a TLS client asked for (SNI), once its ClientHello is read; nil without TLS or
/// SNI. Lives on the connection's event loop: written by the SNI reader, read by the connection handler.
final class TLSServerName {
    var name: String?
}
