import GatewayCore
import NIOCore
import NIOHTTP1

/// The life of one client connection, as an explicit state machine with no I/O: events in, actions out.
///
/// ```
///            bytes            head(local)          end
///   idle ───────────▶ idle ──────────────▶ discarding ─────▶ idle | closed
///  (no bytes)      (head started)   │
///                                   │ head(forward)
///                                   ▼
///                              forwarding ── response end ──▶ idle | closed
///                    (upstream: connecting → connected [→ backingOff → connecting: a retry];
///                     request: streaming → complete; response: awaitingHead → streaming → complete)
/// ```
/// With a route `retry`, an attempt that answers a listed code, fails to connect, is reset or closed
/// before a response head, or runs past the backendRequest timeout is released and, after the
/// backoff (`backingOff`), sent again — only while no byte of the response reached the client and
/// the request's body so far is kept (`replayBody`, at most `maxReplayBodyBytes`).
/// Any state goes to `closed` on a parse error, a timeout or the client going away. The handler
/// (`DownstreamHandler`) performs the actions in order; the state is updated before actions are
/// returned, so re-entrant events caused by an action (a pipelined request delivered when the
/// response ends) see the new state.
struct ConnectionStateMachine {
    enum WaitTimer: Equatable {
        /// Between requests, nothing received yet: the keep-alive timeout; firing closes silently.
        case keepAlive
        /// A request head has started but is not complete: the slowloris limit; firing answers 408.
        case requestHead
    }

    /// An answer the proxy produces itself.
    struct LocalResponse: Equatable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders = [:]
        var body: String = ""
        var route: RouteLabel = .none
    }

    /// What the handler decided a request head means.
    enum RequestPlan {
        /// Forward to a backend with this upstream head (and the route's retry, if any).
        case forward(upstreamHead: HTTPRequestHead, idempotent: Bool, retry: RouteRetry? = nil)
        /// Answer locally once the request body has been read (and dropped).
        case local(LocalResponse)
        /// Answer locally right away and close (the request is unusable).
        case reject(LocalResponse)
    }

    enum UpstreamPhase: Equatable {
        case connecting
        case connected(reused: Bool)
        /// Between two attempts of a route retry: the backoff timer runs.
        case backingOff
    }

    enum ResponsePhase: Equatable {
        case awaitingHead
        /// A 101 for an upgrade request arrived; the tunnel starts at its end (the decoder has then
        /// delivered its last HTTP event).
        case switching(HTTPResponseHead)
        case streaming
    }

    struct Exchange {
        var upstreamHead: HTTPRequestHead
        var idempotent: Bool
        var keepAlive: Bool
        /// The client asked to switch protocols (`Upgrade`): a 101 turns the exchange into a tunnel.
        var upgrade = false
        var upstream: UpstreamPhase = .connecting
        var attempts = 1
        var requestComplete = false
        var requestBodyBytes = 0
        var response: ResponsePhase = .awaitingHead
        /// Request parts received while the upstream connection is being opened.
        var pending: [HTTPClientRequestPart] = []
        /// The route's retry policy; nil: only the proxy's own replays (a failed connect, a stale
        /// pooled connection).
        var retry: RouteRetry?
        /// Retries of the route's policy used so far.
        var retriesUsed = 0
        /// With a retry policy: the request's body parts (and end) so far, to send again; nil once
        /// the body outgrew `maxReplayBodyBytes` (then no retry after a byte of it was sent).
        var replayBody: [HTTPClientRequestPart]?
    }

    enum State {
        case idle(headStarted: Bool)
        case discarding(LocalResponse, keepAlive: Bool, discarded: Int)
        case forwarding(Exchange)
        /// After a 101: raw bytes both ways, owned by the tunnel handlers.
        case tunneling
        case closed
    }

    enum Action: Equatable {
        case armWaitTimer(WaitTimer)
        case cancelWaitTimer
        /// Start the exchange's idle and request timers.
        case startExchangeTimers
        case cancelExchangeTimers
        /// Obtain an upstream connection (pooled or new) for this attempt (1, 2, …).
        case connectUpstream(attempt: Int)
        /// Wait `seconds` (the route's retry backoff), then report `retryTimerFired`.
        case scheduleRetry(after: Double)
        /// Stop the backendRequest timer of the attempt that ended.
        case cancelBackendTimer
        case writeUpstream(HTTPClientRequestPart)
        case flushUpstream
        /// Give the upstream connection back to the pool (`reuse`) or close it.
        case releaseUpstream(reuse: Bool)
        /// Let the client connection read again (it was held while the upstream was not ready).
        case resumeDownstreamReads
        case writeResponseHead(HTTPResponseHead, keepAlive: Bool)
        /// A 1xx other than 101 (`100 Continue`, `103 Early Hints`): relayed, the final head follows.
        case writeInformationalHead(HTTPResponseHead)
        case writeResponseBody(ByteBuffer)
        /// The last action of an exchange: write the end, then close if `close`.
        case writeResponseEnd(close: Bool)
        /// The last action of a local answer: write it, then close if `close`.
        case sendLocal(LocalResponse, close: Bool)
        /// An answer when no request head was received (a head that never completed): written
        /// below the HTTP codec, which has no request to pair it with, then close.
        case sendWithoutRequest(LocalResponse)
        /// Send the backend's 101 to the client and splice the two connections into a byte tunnel.
        case startTunnel(HTTPResponseHead)
        case closeDownstream
    }

    private(set) var state: State = .idle(headStarted: false)
    let maxDiscardedBodyBytes: Int
    let maxReplayBodyBytes: Int

    init(maxDiscardedBodyBytes: Int = 1 << 20, maxReplayBodyBytes: Int = 64 * 1024) {
        self.maxDiscardedBodyBytes = maxDiscardedBodyBytes
        self.maxReplayBodyBytes = maxReplayBodyBytes
    }

    /// The first actions for a new connection.
    func start() -> [Action] { [.armWaitTimer(.keepAlive)] }

    /// Whether reads from the client should wait: the upstream is not there yet to take the body.
    var holdsDownstreamReads: Bool {
        if case .forwarding(let exchange) = state, exchange.upstream == .connecting || exchange.upstream == .backingOff,
           !exchange.requestComplete
        {
            return true
        }
        return false
    }

    var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// Waiting for the next request, not a byte of it received: the keep-alive wait.
    var waitsForRequest: Bool {
        if case .idle(headStarted: false) = state { return true }
        return false
    }

    /// The request is complete and its answer is not: a request that arrives now (HTTP/1.1
    /// pipelining) waits until the answer ends.
    var awaitsAnswerOnly: Bool {
        if case .forwarding(let exchange) = state { return exchange.requestComplete }
        return false
    }

    /// No more requests on this connection: closed, or a byte tunnel.
    var takesNoMoreRequests: Bool {
        switch state {
        case .closed, .tunneling: return true
        case .idle, .discarding, .forwarding: return false
        }
    }

    // MARK: client events

    /// Bytes arrived while waiting for a request head.
    mutating func bytesArrived() -> [Action] {
        guard case .idle(false) = state else { return [] }
        state = .idle(headStarted: true)
        return [.armWaitTimer(.requestHead)]
    }

    mutating func requestHead(_ plan: RequestPlan, keepAlive: Bool, upgrade: Bool = false) -> [Action] {
        guard case .idle = state else {
            // The handler delivers a request only once the previous one is answered; anything else is a bug: stop.
            state = .closed
            return [.closeDownstream]
        }
        switch plan {
        case .reject(let response):
            state = .closed
            return [.cancelWaitTimer, .sendLocal(response, close: true)]
        case .local(let response):
            state = .discarding(response, keepAlive: keepAlive, discarded: 0)
            return [.cancelWaitTimer, .startExchangeTimers]
        case .forward(let head, let idempotent, let retry):
            var exchange = Exchange(upstreamHead: head, idempotent: idempotent, keepAlive: keepAlive, upgrade: upgrade)
            exchange.retry = retry
            if retry != nil && !upgrade { exchange.replayBody = [] }
            state = .forwarding(exchange)
            return [.cancelWaitTimer, .startExchangeTimers, .connectUpstream(attempt: 1)]
        }
    }

    mutating func requestBody(_ bytes: ByteBuffer) -> [Action] {
        switch state {
        case .discarding(let response, let keepAlive, let discarded):
            let total = discarded + bytes.readableBytes
            if total > maxDiscardedBodyBytes {
                state = .closed
                return [.cancelExchangeTimers, .sendLocal(response, close: true)]
            }
            state = .discarding(response, keepAlive: keepAlive, discarded: total)
            return []
        case .forwarding(var exchange):
            exchange.requestBodyBytes += bytes.readableBytes
            if exchange.replayBody != nil {
                if exchange.requestBodyBytes > maxReplayBodyBytes {
                    exchange.replayBody = nil
                } else {
                    exchange.replayBody!.append(.body(.byteBuffer(bytes)))
                }
            }
            switch exchange.upstream {
            case .connecting, .backingOff:
                // Sent with the rest when the (next) attempt is connected; reads are held meanwhile.
                exchange.pending.append(.body(.byteBuffer(bytes)))
                state = .forwarding(exchange)
                return []
            case .connected:
                state = .forwarding(exchange)
                return [.writeUpstream(.body(.byteBuffer(bytes)))]
            }
        case .idle, .tunneling, .closed:
            return []
        }
    }

    mutating func requestEnd() -> [Action] {
        switch state {
        case .discarding(let response, let keepAlive, _):
            if keepAlive {
                state = .idle(headStarted: false)
                return [.cancelExchangeTimers, .armWaitTimer(.keepAlive), .sendLocal(response, close: false)]
            }
            state = .closed
            return [.cancelExchangeTimers, .sendLocal(response, close: true)]
        case .forwarding(var exchange):
            exchange.requestComplete = true
            exchange.replayBody?.append(.end(nil))
            switch exchange.upstream {
            case .connecting, .backingOff:
                exchange.pending.append(.end(nil))
                state = .forwarding(exchange)
                return []
            case .connected:
                state = .forwarding(exchange)
                return [.writeUpstream(.end(nil)), .flushUpstream]
            }
        case .idle, .tunneling, .closed:
            return []
        }
    }

    /// The request could not be parsed: 400, or 431 when its head is too large.
    mutating func parseError(headTooLarge: Bool) -> [Action] {
        let status: HTTPResponseStatus = headTooLarge ? .requestHeaderFieldsTooLarge : .badRequest
        switch state {
        case .idle, .discarding:
            state = .closed
            return [.cancelWaitTimer, .cancelExchangeTimers, .sendLocal(LocalResponse(status: status), close: true)]
        case .forwarding(let exchange):
            // A broken body (bad chunk) mid-request: the backend got a truncated request.
            state = .closed
            if exchange.response == .awaitingHead {
                return [.cancelExchangeTimers, .releaseUpstream(reuse: false), .sendLocal(LocalResponse(status: status), close: true)]
            }
            return [.cancelExchangeTimers, .releaseUpstream(reuse: false), .closeDownstream]
        case .tunneling, .closed:
            return []
        }
    }

    /// The client closed or the connection failed.
    mutating func downstreamClosed() -> [Action] {
        let wasForwarding: Bool
        if case .forwarding = state { wasForwarding = true } else { wasForwarding = false }
        if case .closed = state, !wasForwarding { return [.cancelWaitTimer, .cancelExchangeTimers] }
        state = .closed
        var actions: [Action] = [.cancelWaitTimer, .cancelExchangeTimers]
        if wasForwarding { actions.append(.releaseUpstream(reuse: false)) }
        return actions
    }

    // MARK: timers

    mutating func waitTimerFired() -> [Action] {
        guard case .idle(let headStarted) = state else { return [] }
        state = .closed
        if headStarted {
            return [.sendWithoutRequest(LocalResponse(status: .requestTimeout))]
        }
        return [.closeDownstream]
    }

    /// The exchange's idle or request timer fired.
    mutating func exchangeTimedOut() -> [Action] {
        switch state {
        case .discarding:
            state = .closed
            return [.sendLocal(LocalResponse(status: .requestTimeout), close: true)]
        case .forwarding(let exchange):
            state = .closed
            if exchange.response == .awaitingHead {
                // Still waiting for the client's body: the client is slow (408); else the backend (504).
                let status: HTTPResponseStatus = exchange.requestComplete ? .gatewayTimeout : .requestTimeout
                return [.releaseUpstream(reuse: false), .sendLocal(LocalResponse(status: status), close: true)]
            }
            return [.releaseUpstream(reuse: false), .closeDownstream]
        case .idle, .tunneling, .closed:
            return []
        }
    }

    /// The current upstream attempt ran past the route's backendRequest timeout: 504 while no
    /// response head was sent (whatever the client's body is doing: the backend is what is late),
    /// else the response is cut by closing.
    mutating func backendTimedOut() -> [Action] {
        guard case .forwarding(var exchange) = state, exchange.upstream != .backingOff else { return [] }
        if canRetry(exchange, sentRequest: true) { return retry(&exchange) }
        state = .closed
        if exchange.response == .awaitingHead {
            return [.cancelExchangeTimers, .releaseUpstream(reuse: false), .sendLocal(LocalResponse(status: .gatewayTimeout), close: true)]
        }
        return [.cancelExchangeTimers, .releaseUpstream(reuse: false), .closeDownstream]
    }

    // MARK: upstream events

    mutating func upstreamConnected(reused: Bool) -> [Action] {
        guard case .forwarding(var exchange) = state, exchange.upstream == .connecting else {
            return [.releaseUpstream(reuse: true)]
        }
        exchange.upstream = .connected(reused: reused)
        var actions: [Action] = [.writeUpstream(.head(exchange.upstreamHead))]
        actions += exchange.pending.map { .writeUpstream($0) }
        actions += [.flushUpstream, .resumeDownstreamReads]
        exchange.pending = []
        state = .forwarding(exchange)
        return actions
    }

    /// Opening the upstream connection failed (`timedOut` for the connect timeout). Nothing was sent,
    /// so the first failure is retried once on a fresh connection.
    mutating func upstreamConnectFailed(timedOut: Bool) -> [Action] {
        guard case .forwarding(var exchange) = state, exchange.upstream == .connecting else { return [] }
        if exchange.retry != nil {
            // Nothing was sent: the parts waiting in `pending` go with the next attempt.
            if canRetry(exchange, sentRequest: false) { return retry(&exchange, rebuildPending: false) }
            return fail(exchange, status: timedOut ? .gatewayTimeout : .badGateway)
        }
        if exchange.attempts < 2 {
            exchange.attempts += 1
            state = .forwarding(exchange)
            return [.connectUpstream(attempt: exchange.attempts)]
        }
        return fail(exchange, status: timedOut ? .gatewayTimeout : .badGateway)
    }

    /// The upstream connection closed or failed during the exchange.
    mutating func upstreamClosed() -> [Action] {
        guard case .forwarding(var exchange) = state, case .connected(let reused) = exchange.upstream else { return [] }
        switch exchange.response {
        case .awaitingHead:
            // A pooled connection the backend had already closed: the request is replayed once on a
            // fresh connection, but only when it can be sent again as it was (complete, no body, idempotent).
            // With a route retry, its policy alone decides (one count of attempts, as configured).
            if exchange.retry == nil && reused && exchange.attempts < 2 && exchange.requestComplete && exchange.requestBodyBytes == 0
                && exchange.idempotent
            {
                exchange.attempts += 1
                exchange.upstream = .connecting
                exchange.pending = [.end(nil)]
                state = .forwarding(exchange)
                return [.releaseUpstream(reuse: false), .connectUpstream(attempt: exchange.attempts)]
            }
            // Reset or closed before a response head: the route's retry, if the request can be sent again.
            if canRetry(exchange, sentRequest: true) { return retry(&exchange) }
            return fail(exchange, status: .badGateway)
        case .switching:
            return fail(exchange, status: .badGateway)
        case .streaming:
            // The response was cut short: the client must see the connection end too.
            state = .closed
            return [.cancelExchangeTimers, .releaseUpstream(reuse: false), .closeDownstream]
        }
    }

    mutating func responseHead(_ head: HTTPResponseHead, allowsKeepAlive: Bool) -> [Action] {
        guard case .forwarding(var exchange) = state, exchange.response == .awaitingHead else { return [] }
        if head.status.code >= 100 && head.status.code < 200 && head.status != .switchingProtocols {
            return [.writeInformationalHead(head)]
        }
        if let retry = exchange.retry, retry.codes.contains(Int(head.status.code)), canRetry(exchange, sentRequest: true) {
            // Nothing of this answer reaches the client: the attempt is dropped (its connection too).
            return self.retry(&exchange)
        }
        if exchange.upgrade {
            if head.status == .switchingProtocols {
                exchange.response = .switching(head)
                state = .forwarding(exchange)
                return [.cancelExchangeTimers]
            }
            // Upgrade refused: the client's codec stopped at the upgrade request, so this is the last response.
            exchange.keepAlive = false
        }
        exchange.response = .streaming
        // A backend that answers before the request body is complete: the client connection closes after.
        exchange.keepAlive = exchange.keepAlive && allowsKeepAlive
        state = .forwarding(exchange)
        return [.writeResponseHead(head, keepAlive: exchange.keepAlive)]
    }

    mutating func responseBody(_ bytes: ByteBuffer) -> [Action] {
        guard case .forwarding(let exchange) = state, exchange.response == .streaming else { return [] }
        return [.writeResponseBody(bytes)]
    }

    mutating func responseEnd(upstreamKeepAlive: Bool) -> [Action] {
        guard case .forwarding(let exchange) = state else { return [] }
        if case .switching(let head) = exchange.response {
            state = .tunneling
            return [.startTunnel(head)]
        }
        guard exchange.response == .streaming else { return [] }
        if exchange.requestComplete && exchange.keepAlive {
            state = .idle(headStarted: false)
            return [
                .cancelExchangeTimers, .releaseUpstream(reuse: upstreamKeepAlive), .armWaitTimer(.keepAlive),
                .writeResponseEnd(close: false),
            ]
        }
        state = .closed
        return [
            .cancelExchangeTimers, .releaseUpstream(reuse: upstreamKeepAlive && exchange.requestComplete),
            .writeResponseEnd(close: true),
        ]
    }

    /// The backoff ended: the next attempt of the route's retry, on a fresh connection.
    mutating func retryTimerFired() -> [Action] {
        guard case .forwarding(var exchange) = state, exchange.upstream == .backingOff else { return [] }
        exchange.attempts += 1
        exchange.upstream = .connecting
        state = .forwarding(exchange)
        return [.connectUpstream(attempt: exchange.attempts)]
    }

    /// Whether the route's retry may send the request again: attempts left, no byte of the response
    /// sent to the client, and (when some of the request was sent) all of it kept.
    private func canRetry(_ exchange: Exchange, sentRequest: Bool) -> Bool {
        guard let retry = exchange.retry, exchange.retriesUsed < retry.attempts, exchange.response == .awaitingHead else { return false }
        return !sentRequest || exchange.replayBody != nil
    }

    /// Ends the current attempt and waits the backoff; the next one sends the head and the kept
    /// body again (`rebuildPending`; else the unsent `pending` parts stay).
    private mutating func retry(_ exchange: inout Exchange, rebuildPending: Bool = true) -> [Action] {
        exchange.retriesUsed += 1
        exchange.upstream = .backingOff
        if rebuildPending { exchange.pending = exchange.replayBody ?? [] }
        state = .forwarding(exchange)
        return [.cancelBackendTimer, .releaseUpstream(reuse: false), .scheduleRetry(after: exchange.retry?.backoffSeconds ?? 0)]
    }

    private mutating func fail(_ exchange: Exchange, status: HTTPResponseStatus) -> [Action] {
        if exchange.response == .streaming {
            state = .closed
            return [.cancelExchangeTimers, .releaseUpstream(reuse: false), .closeDownstream]
        }
        let response = LocalResponse(status: status)
        if exchange.requestComplete && exchange.keepAlive {
            state = .idle(headStarted: false)
            return [
                .cancelExchangeTimers, .releaseUpstream(reuse: false), .armWaitTimer(.keepAlive),
                .sendLocal(response, close: false),
            ]
        }
        state = .closed
        return [.cancelExchangeTimers, .releaseUpstream(reuse: false), .sendLocal(response, close: true)]
    }
}

