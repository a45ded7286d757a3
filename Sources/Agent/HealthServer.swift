import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The agent's one HTTP listener: `GET /healthz`, `/readyz` (200 or 503, with the reasons as the
/// body) and `/metrics` (the Prometheus text format), served on a TCP port (`--health-port`, for
/// scrapes) and on a Unix socket (`--health-socket`, for the kubelet's probes through `portway
/// probe`). Why both: the agent runs in the node's network namespace, so during a rolling update
/// the new pod and the old one share every TCP port; the socket lives in the pod's own filesystem,
/// so each pod's probes reach that pod's agent. The TCP port is taken when it is free: a new agent
/// taking over retries every second until the old one has let it go.
///
/// It starts before the pipeline (`start()`; a take-over stands by and must answer its probes) and
/// is the first service of the agent's ServiceGroup, so it stops last.
public final class HealthServer: ServiceLifecycle.Service, Sendable {
    private let telemetry: AgentTelemetry
    private let host: String
    private let port: Int?
    private let socketPath: String?
    private let logger: Logger
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channels = Mutex<[any Channel]>([])
    private let stopped = Mutex(false)
    private let binder = Mutex<Task<Void, Never>?>(nil)

    /// - Parameters:
    ///   - port: the TCP port (nil: none); 0 picks a free one (tests).
    ///   - socketPath: the Unix socket (nil: none); a stale socket file there is replaced.
    public init(telemetry: AgentTelemetry, host: String = "0.0.0.0", port: Int?, socketPath: String?, logger: Logger = Logger(label: "portway.health")) {
        self.telemetry = telemetry
        self.host = host
        self.port = port
        self.socketPath = socketPath
        self.logger = logger
    }

    /// The TCP port bound (nil until bound, or without one).
    public var boundPort: Int? {
        channels.withLock { $0.compactMap { $0.localAddress?.port }.first }
    }

    /// Binds the Unix socket now and the TCP port as soon as it is free.
    public func start() async throws {
        if let socketPath {
            try? FileManager.default.createDirectory(atPath: (socketPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            unlink(socketPath)
            let channel = try await bootstrap().bind(unixDomainSocketPath: socketPath).get()
            channels.withLock { $0.append(channel) }
        }
        guard let port else { return }
        do {
            try await bindTCP(port)
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            logger.notice("health/metrics port \(port) in use (the agent being taken over?); retrying every second")
            let task = Task { [self] in
                while !Task.isCancelled && !stopped.withLock({ $0 }) {
                    do { try await Task.sleep(for: .seconds(1)) } catch { return }
                    do {
                        try await bindTCP(port)
                        logger.notice("health/metrics listening on \(host):\(port)")
                        return
                    } catch {}
                }
            }
            binder.withLock { $0 = task }
        }
    }

    private func bindTCP(_ port: Int) async throws {
        let channel = try await bootstrap().serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port).get()
        if stopped.withLock({ $0 }) {
            try? await channel.close()
            return
        }
        channels.withLock { $0.append(channel) }
    }

    private func bootstrap() -> ServerBootstrap {
        let telemetry = telemetry
        return ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HealthHandler(telemetry: telemetry))
                }
            }
    }

    public func run() async throws {
        // Serves until the group shuts down (or is cancelled), then closes.
        try? await gracefulShutdown()
        await close()
    }

    /// Closes the sockets and the event loop (after `stop()`, or when the agent never got its group running).
    public func close() async {
        stopped.withLock { $0 = true }
        binder.withLock { $0?.cancel() }
        for channel in channels.withLock({ all in defer { all = [] }; return all }) { try? await channel.close() }
        if let socketPath { unlink(socketPath) }
        try? await group.shutdownGracefully()
    }
}

/// Answers one request per call: the path decides, everything else is 404.
final class HealthHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let telemetry: AgentTelemetry
    private var head: HTTPRequestHead?

    init(telemetry: AgentTelemetry) { self.telemetry = telemetry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let (status, contentType, body) = answer(head)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: contentType)
            headers.add(name: "content-length", value: String(body.utf8.count))
            let keepAlive = head.isKeepAlive
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                let channel = context.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    private func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, String) {
        guard head.method == .GET || head.method == .HEAD else { return (.methodNotAllowed, "text/plain", "GET only\n") }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch path {
        case "/healthz", "/livez":
            let verdict = telemetry.health()
            return (verdict.ok ? .ok : .serviceUnavailable, "text/plain", verdict.reasons.joined(separator: "\n") + "\n")
        case "/readyz":
            let verdict = telemetry.readiness()
            return (verdict.ok ? .ok : .serviceUnavailable, "text/plain", verdict.reasons.joined(separator: "\n") + "\n")
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", telemetry.metricsText())
        default:
            return (.notFound, "text/plain", "not found: /healthz, /readyz, /metrics\n")
        }
    }
}
