import NIOConcurrencyHelpers
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How many client connections the proxy keeps open, in all and per client address.
///
/// Every client connection costs a file descriptor, and usually a second one for its upstream. The
/// agent's other work (pinned maps, the API connection, the files it reads) needs descriptors too:
/// a proxy that accepts until `accept` fails with EMFILE starves them (issue 16: a flood of idle
/// connections once made the file source read an empty directory and wipe the node's maps). So
/// the proxy stops accepting before the process limit: at `maxConnections` it pauses `accept` (the
/// kernel queues new connections in the listen backlog) and closes idle keep-alive connections to
/// make room; one client address may hold at most `maxConnectionsPerClient`, beyond which its new
/// connections are closed at once.
public struct ConnectionLimits: Sendable, Equatable, CustomStringConvertible {
    /// Client connections open at once, all ports together.
    public var maxConnections: Int
    /// Client connections open at once from one client address.
    public var maxConnectionsPerClient: Int

    public init(maxConnections: Int, maxConnectionsPerClient: Int) {
        self.maxConnections = max(1, maxConnections)
        self.maxConnectionsPerClient = max(1, min(maxConnectionsPerClient, self.maxConnections))
    }

    /// The limits for a process allowed `fileDescriptorLimit` descriptors that keeps `reserve` of
    /// them for itself: half of the rest for client connections (each may pair with an upstream
    /// connection), and per client a quarter of that, at most 1,024. Explicit values win.
    public static func derived(
        fileDescriptorLimit: Int, reserve: Int, maxConnections: Int? = nil, maxConnectionsPerClient: Int? = nil
    ) -> ConnectionLimits {
        let total = maxConnections ?? max(16, (fileDescriptorLimit - reserve) / 2)
        let perClient = maxConnectionsPerClient ?? max(1, min(1024, total / 4))
        return ConnectionLimits(maxConnections: total, maxConnectionsPerClient: perClient)
    }

    /// The soft RLIMIT_NOFILE of this process (1,024 if it cannot be read; `Int.max` if unlimited).
    public static var processFileDescriptorLimit: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur == rlim_t.max ? Int.max / 4 : Int(clamping: limit.rlim_cur)
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit (what nginx's `worker_rlimit_nofile` and Go's
    /// runtime do); returns the soft limit in force afterwards.
    @discardableResult
    public static func raiseFileDescriptorLimit() -> Int {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return processFileDescriptorLimit
    }

    public var description: String {
        "at most \(maxConnections) client connections, \(maxConnectionsPerClient) per client address"
    }
}

/// Counts the proxy's client connections against its `ConnectionLimits` (shared by every listener
/// and event loop; one lock, held for a few instructions per accept and per close).
final class ConnectionAdmission: Sendable {
    let limits: ConnectionLimits

    enum Verdict: Equatable {
        case admitted
        /// Over the per-client limit: closed at once.
        case rejectedPerClient
        /// The proxy is full: the connection waits (parked by its listener) for room.
        case full
    }

    private struct State {
        var total = 0
        var perClient: [String: Int] = [:]
        /// Listeners holding connections that wait for room, woken (on their loops) when one closes.
        var waiting: [ObjectIdentifier: @Sendable () -> Void] = [:]
        /// When idle connections were last reaped (pressure is answered at most every 100 ms).
        var lastReap: NIODeadline = .distantPast
    }

    private let state = Mutex(State())
    /// Connections waiting for room, read by every response to decide whether to keep its
    /// connection alive (so it is one atomic load, not a lock).
    private let waiters = Atomic<Int>(0)

    init(limits: ConnectionLimits) { self.limits = limits }

    /// Client connections open now.
    var openConnections: Int { state.withLock { $0.total } }

    /// True while a connection waits for room: a connection finishing an exchange closes instead of
    /// staying idle, so the waiting one gets its place.
    var hasWaiters: Bool { waiters.load(ordering: .relaxed) > 0 }

    /// Counts a new connection from `client` (nil: an address the proxy cannot read, counted in
    /// all only), or says why not.
    func admit(client: String?) -> Verdict {
        state.withLock { state in
            if let client, state.perClient[client, default: 0] >= limits.maxConnectionsPerClient { return .rejectedPerClient }
            if state.total >= limits.maxConnections { return .full }
            if let client { state.perClient[client, default: 0] += 1 }
            state.total += 1
            return .admitted
        }
    }

    /// Uncounts a connection that `admit` admitted; wakes the waiting listeners when there is room.
    func release(client: String?) {
        let wake: [@Sendable () -> Void] = state.withLock { state in
            state.total -= 1
            if let client, let current = state.perClient[client] {
                if current <= 1 { state.perClient[client] = nil } else { state.perClient[client] = current - 1 }
            }
            guard state.total < limits.maxConnections, !state.waiting.isEmpty else { return [] }
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for resume in wake { resume() }
    }

    /// Registers a listener with `count` connections waiting for room (0: none any more). Returns
    /// false when there is room already: the listener should admit them now.
    func wait(_ listener: ObjectIdentifier, count: Int, resume: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state in
            guard count > 0, state.total >= limits.maxConnections else {
                state.waiting[listener] = nil
                return false
            }
            state.waiting[listener] = resume
            return true
        }
    }

    /// Adds `delta` to the number of connections waiting for room.
    func noteWaiting(_ delta: Int) { waiters.add(delta, ordering: .relaxed) }

    /// Whether idle connections should be reaped now (at most every 100 ms).
    func shouldReap(now: NIODeadline) -> Bool {
        state.withLock { state in
            guard now - state.lastReap >= .milliseconds(100) else { return false }
            state.lastReap = now
            return true
        }
    }
}

/// Sent to every client connection when a new one waits for room: one waiting for its next request
/// (an idle keep-alive connection, or one that has not sent a byte) closes.
struct ReapIfIdle {}

/// The first handler of a listening channel: counts each accepted connection against the limits
/// (on the listener's loop, before the next `accept`) and closes one over its client's limit.
/// When the proxy is full it keeps the accepted connection waiting (not registered, so not read),
/// stops accepting (the kernel queues the next ones in the listen backlog), asks idle connections to
/// make room, and admits the waiting ones when connections close.
final class AcceptGate: ChannelDuplexHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel
    typealias OutboundIn = Never

    private let admission: ConnectionAdmission
    private let metrics: ProxyMetrics
    private let onPressure: @Sendable () -> Void
    private var context: ChannelHandlerContext?
    private var readHeld = false
    /// Accepted connections waiting for room, oldest first (one accept batch at most).
    private var parked: [(channel: any Channel, client: String?)] = []

    init(admission: ConnectionAdmission, metrics: ProxyMetrics, onPressure: @escaping @Sendable () -> Void) {
        self.admission = admission
        self.metrics = metrics
        self.onPressure = onPressure
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        admission.noteWaiting(-parked.count)
        for waiting in parked { waiting.channel.close(promise: nil) }
        parked = []
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        let client = child.remoteAddress?.clientIP
        if !parked.isEmpty {
            // The proxy is full and this accept batch goes on: wait behind the others.
            park(child, client: client)
            return
        }
        switch admission.admit(client: client) {
        case .admitted:
            forward(child, client: client, context: context)
        case .rejectedPerClient:
            metrics.noteRejected(.rejectedPerClient)
            child.close(promise: nil)
        case .full:
            park(child, client: client)
            metrics.noteAcceptPaused()
            waitForRoom(context: context)
            onPressure()
        }
    }

    func read(context: ChannelHandlerContext) {
        if parked.isEmpty {
            context.read()
        } else {
            readHeld = true
        }
    }

    private func park(_ child: any Channel, client: String?) {
        parked.append((child, client))
        admission.noteWaiting(1)
    }

    private func forward(_ child: any Channel, client: String?, context: ChannelHandlerContext) {
        let admission = self.admission
        child.closeFuture.whenComplete { _ in admission.release(client: client) }
        context.fireChannelRead(wrapInboundOut(child))
    }

    private func waitForRoom(context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let gate = NIOLoopBound(self, eventLoop: loop)
        let waiting = admission.wait(ObjectIdentifier(self), count: parked.count) {
            loop.execute { gate.value.admitParked() }
        }
        // Room appeared between the verdict and the registration: admit now.
        if !waiting { loop.execute { gate.value.admitParked() } }
    }

    /// Admits the waiting connections while there is room, then accepts again.
    private func admitParked() {
        guard let context else { return }
        while let first = parked.first {
            let verdict = admission.admit(client: first.client)
            if verdict == .full { break }
            parked.removeFirst()
            admission.noteWaiting(-1)
            if verdict == .admitted {
                forward(first.channel, client: first.client, context: context)
            } else {
                metrics.noteRejected(verdict)
                first.channel.close(promise: nil)
            }
        }
        if !parked.isEmpty {
            waitForRoom(context: context)
            onPressure()
        } else if readHeld {
            readHeld = false
            context.read()
        }
    }
}
