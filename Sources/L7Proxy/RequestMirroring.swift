import GatewayCore
import NIOCore
import NIOHTTP1

/// The life of one mirrored copy of a request (HTTPRoute RequestMirror), as an explicit state
/// machine with no I/O: events in, actions out.
///
/// ```
///   connecting ──connected──▶ sending ──request end──▶ awaitingResponse ──response end──▶ finished
///       │                        │                           │
///       └── connect failed, body past the limit, client gone before the end, timeout ──▶ dropped
/// ```
/// The copy is fire-and-forget: nothing here ever waits on the client or makes the client wait.
/// Parts that arrive before the mirror's connection are kept, but never more than
/// `maxBodyBytes` of body: a longer body drops the copy (its connection, if any, is closed, so
/// the mirror sees a cut request, never a wrong one). The mirror's answer is read and ignored.
struct MirrorStateMachine {
    enum State: Equatable {
        case connecting
        case sending
        case awaitingResponse
        case finished
        case dropped
    }

    enum Action: Equatable {
        case write(HTTPClientRequestPart)
        case flush
        /// Give the mirror's connection back to the pool (`reuse`) or close it.
        case release(reuse: Bool)
        /// Close the mirror's connection, if any.
        case close
        /// The copy is over (`dropped`: the mirror did not get the whole request).
        case finish(dropped: Bool)
    }

    private(set) var state: State = .connecting
    private var pending: [HTTPClientRequestPart]
    private var bodyBytes = 0
    let maxBodyBytes: Int

    init(head: HTTPRequestHead, maxBodyBytes: Int) {
        pending = [.head(head)]
        self.maxBodyBytes = maxBodyBytes
    }

    var isOver: Bool { state == .finished || state == .dropped }

    mutating func connected() -> [Action] {
        guard state == .connecting else { return [.release(reuse: false)] }
        let complete: Bool
        if case .end = pending.last { complete = true } else { complete = false }
        state = complete ? .awaitingResponse : .sending
        let actions = pending.map { Action.write($0) } + [.flush]
        pending = []
        return actions
    }

    mutating func connectFailed() -> [Action] {
        guard state == .connecting else { return [] }
        return drop()
    }

    mutating func requestBody(_ bytes: ByteBuffer) -> [Action] {
        guard state == .connecting || state == .sending else { return [] }
        bodyBytes += bytes.readableBytes
        if bodyBytes > maxBodyBytes { return drop() }
        if state == .connecting {
            pending.append(.body(.byteBuffer(bytes)))
            return []
        }
        return [.write(.body(.byteBuffer(bytes))), .flush]
    }

    mutating func requestEnd() -> [Action] {
        switch state {
        case .connecting:
            pending.append(.end(nil))
            return []
        case .sending:
            state = .awaitingResponse
            return [.write(.end(nil)), .flush]
        case .awaitingResponse, .finished, .dropped:
            return []
        }
    }

    /// The client went away (or its request broke) before its request ended.
    mutating func clientGone() -> [Action] {
        guard state == .connecting || state == .sending else { return [] }
        if state == .connecting, case .end = pending.last { return [] }
        return drop()
    }

    mutating func responseEnd(keepAlive: Bool) -> [Action] {
        switch state {
        case .awaitingResponse:
            state = .finished
            return [.release(reuse: keepAlive), .finish(dropped: false)]
        case .sending:
            // The mirror answered before the request was complete: the connection is not reusable.
            return drop()
        case .connecting, .finished, .dropped:
            return []
        }
    }

    mutating func connectionClosed() -> [Action] {
        switch state {
        case .awaitingResponse:
            // The mirror had the whole request; its answer does not matter.
            state = .finished
            return [.close, .finish(dropped: false)]
        case .sending:
            return drop()
        case .connecting, .finished, .dropped:
            return []
        }
    }

    mutating func timedOut() -> [Action] {
        switch state {
        case .awaitingResponse:
            state = .finished
            return [.close, .finish(dropped: false)]
        case .connecting, .sending:
            return drop()
        case .finished, .dropped:
            return []
        }
    }

    private mutating func drop() -> [Action] {
        state = .dropped
        pending = []
        return [.close, .finish(dropped: true)]
    }
}

/// One mirrored copy of a request: drives `MirrorStateMachine` against a pooled upstream
/// connection of the client connection's event loop. It keeps itself alive through its timeout
/// task (cancelled when the copy is over), so the client's exchange can forget it.
final class MirrorExchange: UpstreamDelegate {
    private var machine: MirrorStateMachine
    private let pool: UpstreamPool
    private let metrics: ProxyMetrics
    private var connection: UpstreamConnection?
    private var timer: Scheduled<Void>?
    private var keepAlive = true

    private init(head: HTTPRequestHead, pool: UpstreamPool, metrics: ProxyMetrics, maxBodyBytes: Int) {
        machine = MirrorStateMachine(head: head, maxBodyBytes: maxBodyBytes)
        self.pool = pool
        self.metrics = metrics
    }

    /// Starts the copies of a request for the mirrors that fire (one draw each from `random`),
    /// each to one endpoint of its backend. None when the declared body is over the limit, or
    /// the proxy has `maxMirrorsInFlight` copies going.
    static func start(
        _ targets: [MirrorTarget], head: HTTPRequestHead, on eventLoop: any EventLoop, pool: UpstreamPool,
        metrics: ProxyMetrics, options: ProxyOptions, random: (UInt64) -> UInt64
    ) -> [MirrorExchange] {
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > options.maxMirroredBodyBytes {
            return []
        }
        var started: [MirrorExchange] = []
        for target in targets where target.fires(random: random) {
            guard case .endpoint(let endpoint) = BackendChoice.endpoint(of: target.upstream, random: random) else { continue }
            guard metrics.startMirror(limit: options.maxMirrorsInFlight) else { continue }
            let exchange = MirrorExchange(head: head, pool: pool, metrics: metrics, maxBodyBytes: options.maxMirroredBodyBytes)
            exchange.begin(endpoint, on: eventLoop, timeout: options.mirrorTimeout)
            started.append(exchange)
        }
        return started
    }

    private func begin(_ endpoint: UpstreamEndpoint, on eventLoop: any EventLoop, timeout: TimeAmount) {
        // The task holds the exchange until it fires or the copy is over.
        timer = eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            timer = nil
            run(machine.timedOut())
        }
        pool.acquire(endpoint, fresh: false) { [self] result in
            switch result {
            case .success(let (connection, _)):
                self.connection = connection
                connection.delegate = self
                run(machine.connected())
            case .failure:
                run(machine.connectFailed())
            }
        }
    }

    func requestBody(_ bytes: ByteBuffer) { run(machine.requestBody(bytes)) }
    func requestEnd() { run(machine.requestEnd()) }
    func clientGone() { run(machine.clientGone()) }

    private func run(_ actions: [MirrorStateMachine.Action]) {
        for action in actions {
            switch action {
            case .write(let part):
                connection?.write(part, promise: nil)
            case .flush:
                connection?.flush()
            case .release(let reuse):
                if let connection {
                    self.connection = nil
                    pool.release(connection, reuse: reuse && keepAlive)
                }
            case .close:
                if let connection {
                    self.connection = nil
                    connection.delegate = nil
                    connection.channel.close(promise: nil)
                }
            case .finish(let dropped):
                timer?.cancel()
                timer = nil
                metrics.finishMirror(dropped: dropped)
            }
        }
    }

    // MARK: UpstreamDelegate

    func upstreamRead(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head):
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            run(machine.responseEnd(keepAlive: keepAlive))
        }
    }

    func upstreamReadComplete() {}

    func upstreamClosed() {
        connection = nil
        run(machine.connectionClosed())
    }

    func upstreamWritabilityChanged(_ writable: Bool) {}

    /// The answer is read (and dropped) as fast as it comes.
    var upstreamMayRead: Bool { true }
}
