import GatewayCore
import Logging
import NIOCore
import NIOHTTP1

/// What waits behind a request still being answered (HTTP/1.1 pipelining).
enum PipelinedEvent {
    case part(HTTPServerRequestPart)
    case parseError(HTTPParserError)
}

/// Sent to every client connection when the proxy drains (`L7Proxy.drain`).
struct DrainRequested {}

/// What every connection handler of the proxy shares.
struct ConnectionContext {
    var proxyPort: UInt16
    var isTLS: Bool
    var options: ProxyOptions
    var routes: RouteTableHolder
    var metrics: ProxyMetrics
    /// The proxy's connection count; while a connection waits for room, exchanges end with a close.
    var admission: ConnectionAdmission = ConnectionAdmission(limits: ConnectionLimits(maxConnections: .max, maxConnectionsPerClient: .max))
    var pool: UpstreamPool
    var random: @Sendable (UInt64) -> UInt64 = FastRandom.draw
    var logger = Logger(label: "portway.proxy")
}

/// The last handler of a client connection: routes each request, drives `ConnectionStateMachine`
/// and performs its actions against the client channel and the upstream connection.
final class DownstreamHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let shared: ConnectionContext
    /// The TLS connection's SNI (`RoutingRequest.serverName`); nil without TLS.
    private let serverName: TLSServerName?
    private var machine: ConnectionStateMachine
    private var context: ChannelHandlerContext?
    private var started = false

    // The current exchange.
    private var generation = 0
    private var forward: ForwardDecision?
    private var requestMethod: HTTPMethod = .GET
    private var requestVersion: HTTPVersion = .http1_1
    private var endpoint: UpstreamEndpoint?
    /// Index of the chosen backend in `forward.backends`.
    private var backendIndex: Int?
    private var upstream: UpstreamConnection?
    private var upstreamKeepAlive = true
    private var route: RouteLabel = .none
    private var exchangeStart: NIODeadline = .now()
    private var responseStatus = 0
    private var lastActivity: NIODeadline = .now()
    private var requestsSeen = 0
    private var upgradeRequested = false
    /// The current request's mirror copies still taking its body (fed its parts, then forgotten).
    private var mirrors: [MirrorExchange] = []
    /// Set when the proxy stops: close after the current answer instead of keeping alive.
    private var draining = false
    /// The client's address for X-Forwarded-For, formatted at the connection's first request.
    private var clientAddress: String??

    // The connection's deadlines, watched by one timer (`timer`) armed for the earliest of them.
    // Moving a deadline later (every request moves the keep-alive one) re-arms nothing: the timer
    // fires at the earlier time, finds nothing due and is armed for what is left, so a keep-alive
    // request schedules and cancels no task at all.
    private var timer: Scheduled<Void>?
    /// When `timer` fires; nil when it is not armed.
    private var timerDeadline: NIODeadline?
    /// Between requests: the keep-alive wait, or once a head's first bytes came, the request-head
    /// limit (the state machine knows which).
    private var waitDeadline: NIODeadline?
    /// During an exchange: the idle timeout, counted from `lastActivity`.
    private var watchesIdleness = false
    /// The route's (or the proxy's) request timeout of the current exchange.
    private var requestDeadline: NIODeadline?
    /// The route's backendRequest timeout of the current upstream attempt.
    private var backendDeadline: NIODeadline?
    private var retryTimer: Scheduled<Void>?
    private var readHeld = false
    /// Response bytes written to the client and not flushed yet (flushed at the end of the backend's read).
    private var unflushedDownstream = false
    /// HTTP/1.1 pipelining: what the decoder delivered after a request that is still being answered
    /// (the next requests' parts, a parse error), handed to the state machine in order once the
    /// answer ends. While anything waits here the socket is not read further; otherwise it is read
    /// all the time (no read interest dropped and re-armed per request, as NIO's pipelining handler does).
    private var pipelined = CircularBuffer<PipelinedEvent>(initialCapacity: 0)
    private var deliveringPipelined = false
    /// Whether the decoder delivered anything during the current socket read (else the read was a
    /// request head's first bytes, or bytes between requests).
    private var deliveredInThisRead = false
    private var bufferedRequestBytes = 0
    private var bufferedResponseBytes = 0
    private var maxBufferedRequestBytes = 0
    private var maxBufferedResponseBytes = 0

    init(shared: ConnectionContext, serverName: TLSServerName? = nil) {
        self.shared = shared
        self.serverName = serverName
        self.machine = ConnectionStateMachine(
            maxDiscardedBodyBytes: shared.options.maxDiscardedBodyBytes, maxReplayBodyBytes: shared.options.maxRetryBodyBytes)
        shared.metrics.noteDownstreamHandler(alive: 1)
    }

    deinit { shared.metrics.noteDownstreamHandler(alive: -1) }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { startIfNeeded() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelAllTimers()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        startIfNeeded()
        context.fireChannelActive()
    }

    private func startIfNeeded() {
        guard !started else { return }
        started = true
        run(machine.start())
    }

    func channelInactive(context: ChannelHandlerContext) {
        pipelined.removeAll()
        abandonMirrors()
        run(machine.downstreamClosed())
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ReapIfIdle {
            // The proxy is at its connection limit: a connection waiting for a request makes room.
            if machine.waitsForRequest {
                shared.metrics.noteReaped()
                context.close(promise: nil)
            }
        } else if event is DrainRequested {
            // The proxy is stopping: an idle keep-alive connection closes now, a busy one after its
            // answer. A connection that has not brought its first request yet gets a short grace
            // instead: it was accepted just before the listener closed, and its request may already
            // be in the socket buffer, unread; closing over unread bytes resets the connection, and
            // the client never got an answer for a request it had sent (during a take-over too).
            draining = true
            if machine.waitsForRequest {
                if requestsSeen == 0 {
                    let graceEnd = now + Self.firstRequestGraceOnDrain
                    waitDeadline = waitDeadline.map { min($0, graceEnd) } ?? graceEnd
                    deadlinesChanged()
                } else {
                    context.close(promise: nil)
                }
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// How long a draining proxy waits for a new connection's first request (it is then answered
    /// with `Connection: close`); a connection that sends nothing closes when it ends.
    static let firstRequestGraceOnDrain: TimeAmount = .milliseconds(250)

    /// Whether the connection closes once the current exchange ends: the proxy drains, or a new
    /// connection waits for room (an idle keep-alive connection would hold its place).
    private var closesAfterExchange: Bool { draining || shared.admission.hasWaiters }

    /// The loop's clock (virtual on test loops).
    private var now: NIODeadline { context?.eventLoop.now ?? .now() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = now
        deliveredInThisRead = true
        let part = unwrapInboundIn(data)
        if machine.takesNoMoreRequests {
            // Nothing will answer a new request (nor mirror it); the rest of the current one still
            // goes to its mirror copies (the state machine ignores it).
            if case .head = part { return }
            handleRequestPart(part, context: context)
            return
        }
        if !pipelined.isEmpty || machine.awaitsAnswerOnly {
            // A pipelined request: it waits for the answer in progress.
            pipelined.append(.part(part))
            return
        }
        handleRequestPart(part, context: context)
    }

    private func handleRequestPart(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            requestsSeen += 1
            let plan = plan(for: head, context: context)
            let keepAlive = head.isKeepAlive && requestsSeen < shared.options.maxRequestsPerConnection
            run(machine.requestHead(plan, keepAlive: keepAlive, upgrade: upgradeRequested))
        case .body(let bytes):
            for mirror in mirrors { mirror.requestBody(bytes) }
            run(machine.requestBody(bytes))
        case .end:
            for mirror in mirrors { mirror.requestEnd() }
            mirrors = []
            run(machine.requestEnd())
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !deliveredInThisRead && machine.waitsForRequest {
            // Bytes came in while waiting for a request, and no head is complete yet: from now on
            // the request-head (slowloris) limit applies instead of the keep-alive timeout. (The
            // decoder forwards every socket read's end; TLS only reads that yielded plaintext.)
            run(machine.bytesArrived())
        }
        deliveredInThisRead = false
        upstream?.flush()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parseError = error as? HTTPParserError, !pipelined.isEmpty || machine.awaitsAnswerOnly {
            // Bad bytes after a complete request: its answer goes out first, then the 400.
            pipelined.append(.parseError(parseError))
            return
        }
        handleError(error, context: context)
    }

    private func handleError(_ error: any Error, context: ChannelHandlerContext) {
        if let parseError = error as? HTTPParserError {
            shared.logger.debug("rejecting a malformed request", metadata: ["client": "\(context.channel.remoteAddress?.description ?? "?")", "error": "\(parseError)"])
            abandonMirrors()
            run(machine.parseError(headTooLarge: parseError == .headerOverflow))
        } else {
            // Resets, TLS failures: nothing to answer on.
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream?.resumeReads() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if !pipelined.isEmpty || machine.holdsDownstreamReads || (upstream.map { !$0.isWritable } ?? false) {
            readHeld = true
        } else {
            context.read()
        }
    }

    // MARK: routing

    private func plan(for head: HTTPRequestHead, context: ChannelHandlerContext) -> ConnectionStateMachine.RequestPlan {
        generation += 1
        abandonMirrors()
        forward = nil
        endpoint = nil
        backendIndex = nil
        route = .none
        responseStatus = 0
        upstreamKeepAlive = true
        exchangeStart = now
        requestMethod = head.method
        requestVersion = head.version
        upgradeRequested = HeaderRewriting.isUpgrade(head)
        bufferedRequestBytes = 0
        bufferedResponseBytes = 0

        // Everything refused is refused here, before routing, and never forwarded.
        let target: RequestTarget
        do {
            target = try RequestTarget.parse(head, paths: shared.options.pathNormalization)
        } catch {
            shared.logger.debug("rejecting a request", metadata: ["client": "\(context.channel.remoteAddress?.description ?? "?")", "reason": "\(error)"])
            return .reject(.init(status: .badRequest))
        }
        if head.headers.contains(name: "content-length") && head.headers.contains(name: "transfer-encoding") {
            // Request smuggling guard (RFC 9112 §6.1); the decoder rejects most of these already.
            return .reject(.init(status: .badRequest))
        }
        if let status = HeaderRewriting.transferEncodingProblem(head) {
            return .reject(.init(status: status))
        }
        let clientAddress: String?
        if let known = self.clientAddress {
            clientAddress = known
        } else {
            clientAddress = context.channel.remoteAddress?.clientIP
            self.clientAddress = .some(clientAddress)
        }
        let request = RoutingRequest(
            proxyPort: shared.proxyPort, host: target.host, path: target.path, query: target.query,
            method: head.method.rawValue, headers: head.headers, clientAddress: clientAddress, isTLS: shared.isTLS,
            serverName: serverName?.name
        )
        // Read the table once: this request finishes on it whatever is swapped in meanwhile.
        let decision = shared.routes.current.route(request)
        route = decision.route
        switch decision {
        case .respond(let status, _):
            return .local(.init(status: HTTPResponseStatus(statusCode: status), route: route))
        case .redirect(let redirect):
            // The port is the Gateway listener's, carried in the decision: the connection's local
            // port is the NodePort (or the proxy port), which a redirect must never name.
            let location = redirect.location(
                requestScheme: shared.isTLS ? "https" : "http", requestHost: target.host, path: target.path, query: target.query)
            var headers = HTTPHeaders()
            headers.add(name: "location", value: location)
            return .local(.init(status: HTTPResponseStatus(statusCode: redirect.statusCode), headers: headers, route: route))
        case .forward(var forward):
            if let cors = forward.cors, let origin = head.headers.first(name: "origin") {
                if head.method == .OPTIONS, let method = head.headers.first(name: "access-control-request-method") {
                    // A CORS preflight is answered here, never forwarded; an origin not allowed
                    // gets no CORS headers, which the browser takes as a refusal.
                    var headers = HTTPHeaders()
                    if cors.allows(origin: origin) {
                        let asked = head.headers.first(name: "access-control-request-headers")
                        for field in cors.preflightHeaders(origin: origin, method: method, headers: asked) { headers.add(name: field.name, value: field.value) }
                    }
                    return .local(.init(status: .noContent, headers: headers, route: route))
                }
                if cors.allows(origin: origin) {
                    let fields = cors.responseHeaders(origin: origin)
                    forward.responseHeaders = forward.responseHeaders.followed(by: HeaderModifier(
                        set: fields.filter { $0.name != "vary" }, add: fields.filter { $0.name == "vary" }))
                }
            }
            let pick = BackendChoice.pick(from: forward.backends, random: shared.random)
            switch pick.choice {
            case .status(let code):
                return .local(.init(status: HTTPResponseStatus(statusCode: code), route: route))
            case .endpoint(let chosen):
                if let index = pick.backend {
                    // The backendRef's own filters, after the rule's, only for the backend chosen.
                    let backend = forward.backends[index]
                    if !backend.requestHeaders.isEmpty { forward.requestHeaders = forward.requestHeaders.followed(by: backend.requestHeaders) }
                    if !backend.responseHeaders.isEmpty { forward.responseHeaders = forward.responseHeaders.followed(by: backend.responseHeaders) }
                }
                self.forward = forward
                self.backendIndex = pick.backend
                self.endpoint = chosen
                let upstreamHead = HeaderRewriting.upstreamRequestHead(
                    head, target: target, clientAddress: clientAddress, isTLS: shared.isTLS,
                    modifier: forward.requestHeaders, rewrite: forward.rewrite)
                if !forward.mirrors.isEmpty && !upgradeRequested {
                    // The copies take the head as the backend gets it: the rule's filters applied,
                    // the same Host and path (the spec asks for nothing else).
                    mirrors = MirrorExchange.start(
                        forward.mirrors, head: upstreamHead, on: context.eventLoop, pool: shared.pool,
                        metrics: shared.metrics, options: shared.options, random: shared.random)
                }
                return .forward(upstreamHead: upstreamHead, idempotent: head.method.isIdempotent, retry: forward.retry)
            }
        }
    }

    /// The client's request will not end: the copies still taking it are dropped.
    private func abandonMirrors() {
        for mirror in mirrors { mirror.clientGone() }
        mirrors = []
    }

    // MARK: actions

    private func run(_ actions: [ConnectionStateMachine.Action]) {
        for action in actions { perform(action) }
        if !pipelined.isEmpty && !deliveringPipelined && !machine.awaitsAnswerOnly { deliverPipelined() }
    }

    /// Hands the waiting pipelined events to the state machine until one has to wait again (a
    /// request complete, its answer not), then lets the socket be read again once none waits.
    private func deliverPipelined() {
        guard let context else { return }
        deliveringPipelined = true
        defer { deliveringPipelined = false }
        while let next = pipelined.first {
            if machine.takesNoMoreRequests {
                pipelined.removeAll()
                return
            }
            if machine.awaitsAnswerOnly { return }
            pipelined.removeFirst()
            switch next {
            case .part(let part): handleRequestPart(part, context: context)
            case .parseError(let error): handleError(error, context: context)
            }
        }
        resumeDownstreamReadsIfAllowed()
    }

    private func perform(_ action: ConnectionStateMachine.Action) {
        guard let context else { return }
        switch action {
        case .armWaitTimer(let kind):
            // A head's first bytes arrive at the end of a read that did not complete it (`bytesArrived`).
            waitDeadline = now + (kind == .keepAlive ? shared.options.keepAliveTimeout : shared.options.requestHeadTimeout)
            deadlinesChanged()
        case .cancelWaitTimer:
            waitDeadline = nil
        case .startExchangeTimers:
            startExchangeTimers()
        case .cancelExchangeTimers:
            watchesIdleness = false
            requestDeadline = nil
            backendDeadline = nil
            retryTimer?.cancel()
            retryTimer = nil
        case .cancelBackendTimer:
            backendDeadline = nil
        case .scheduleRetry(let seconds):
            let generation = self.generation
            retryTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { [weak self] in
                guard let self, self.generation == generation else { return }
                self.retryTimer = nil
                self.run(self.machine.retryTimerFired())
            }
        case .connectUpstream(let attempt):
            armBackendTimer()
            connectUpstream(attempt: attempt)
        case .writeUpstream(let part):
            writeUpstream(part)
        case .flushUpstream:
            upstream?.flush()
        case .releaseUpstream(let reuse):
            if let upstream {
                self.upstream = nil
                upstream.delegate = nil
                shared.pool.release(upstream, reuse: reuse && upstreamKeepAlive)
            }
            // A read held for this upstream's sake would otherwise wait for a writability change
            // that is no longer reported to us.
            resumeDownstreamReadsIfAllowed()
        case .resumeDownstreamReads:
            resumeDownstreamReadsIfAllowed()
        case .writeResponseHead(let head, let keepAlive):
            responseStatus = Int(head.status.code)
            let out = HeaderRewriting.downstreamResponseHead(
                head, requestVersion: requestVersion, keepAlive: keepAlive && !closesAfterExchange,
                modifier: forward?.responseHeaders ?? HeaderModifier())
            context.write(wrapOutboundOut(.head(out)), promise: nil)
            unflushedDownstream = true
        case .writeInformationalHead(let head):
            var out = HTTPResponseHead(version: requestVersion, status: head.status, headers: head.headers)
            HeaderRewriting.removeHopByHop(&out.headers)
            context.writeAndFlush(wrapOutboundOut(.head(out)), promise: nil)
        case .writeResponseBody(let bytes):
            writeDownstreamBody(bytes, context: context)
        case .writeResponseEnd(let close):
            recordMetrics(status: responseStatus)
            let closing = close || closesAfterExchange
            if closing { LastSegment.carryFIN(context.channel) }
            unflushedDownstream = false
            if closing {
                closeAfter(context.writeAndFlush(wrapOutboundOut(.end(nil))), context: context)
            } else {
                // No promise (and no future) when nothing waits for the write.
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        case .sendLocal(let response, let close):
            sendLocal(response, close: close || closesAfterExchange, context: context)
        case .sendWithoutRequest(let response):
            recordMetrics(status: Int(response.status.code))
            let body = "\(response.status.code) \(response.status.reasonPhrase)\n"
            let text = "HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)\r\n"
                + "content-type: text/plain; charset=utf-8\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n" + body
            writeRawAndClose(context.channel.allocator.buffer(string: text), context: context)
        case .closeDownstream:
            context.close(promise: nil)
        case .startTunnel(let head):
            startTunnel(head, context: context)
        }
    }

    /// After the backend's 101: send it on, then replace the HTTP handlers on both connections by a
    /// byte tunnel. This handler removes itself; the tunnel ends own both connections from here.
    private func startTunnel(_ head: HTTPResponseHead, context: ChannelHandlerContext) {
        guard let upstream else {
            context.close(promise: nil)
            return
        }
        self.upstream = nil
        upstream.delegate = nil
        recordMetrics(status: 101)
        context.write(wrapOutboundOut(.head(HeaderRewriting.switchingProtocolsHead(head, requestVersion: requestVersion))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        let (clientEnd, backendEnd) = TunnelHandler.pair(idleTimeout: shared.options.tunnelIdleTimeout)
        let channel = context.channel
        do {
            let sync = channel.pipeline.syncOperations
            let http = sync.present([ByteToMessageHandler<HTTPRequestDecoder>.self, HTTPResponseEncoder.self])
            try clientEnd.install(on: channel, removing: [self] + http)
            try upstream.becomeTunnel(backendEnd)
        } catch {
            channel.close(promise: nil)
            upstream.channel.close(promise: nil)
            return
        }
        clientEnd.watchIdleness()
        channel.read()
        upstream.channel.read()
    }

    private func startExchangeTimers() {
        watchesIdleness = true
        // The route's timeouts.request wins over the proxy's; "0s" (0) means none at all.
        if let seconds = forward?.requestTimeoutSeconds {
            requestDeadline = seconds > 0 ? now + .nanoseconds(Int64(seconds * 1e9)) : nil
        } else {
            requestDeadline = shared.options.requestTimeout.map { now + $0 }
        }
        deadlinesChanged()
    }

    /// Arms the route's backendRequest timeout for one upstream attempt (from its connect to the
    /// end of the backend's response); a later attempt gets the whole timeout again.
    private func armBackendTimer() {
        if let seconds = forward?.backendRequestTimeoutSeconds, seconds > 0 {
            backendDeadline = now + .nanoseconds(Int64(seconds * 1e9))
            deadlinesChanged()
        } else {
            backendDeadline = nil
        }
    }

    /// The earliest deadline watched now.
    private var earliestDeadline: NIODeadline? {
        var earliest = waitDeadline
        func consider(_ deadline: NIODeadline?) {
            guard let deadline else { return }
            earliest = earliest.map { min($0, deadline) } ?? deadline
        }
        if watchesIdleness { consider(lastActivity + shared.options.idleTimeout) }
        consider(requestDeadline)
        consider(backendDeadline)
        return earliest
    }

    /// Arms the timer when a deadline is now earlier than the one it is armed for (or it is not armed).
    private func deadlinesChanged() {
        guard let context, let earliest = earliestDeadline else { return }
        if let armed = timerDeadline, armed <= earliest { return }
        timer?.cancel()
        timerDeadline = earliest
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: earliest) { [weak self] in
            self?.timerFired()
        }
    }

    /// Acts on the deadlines that passed (in the order the separate timers used to fire: the wait,
    /// the exchange's idle and request timeouts, the attempt's), then re-arms for the rest.
    private func timerFired() {
        timer = nil
        timerDeadline = nil
        guard context != nil else { return }
        let now = self.now
        if let deadline = waitDeadline, deadline <= now {
            waitDeadline = nil
            run(machine.waitTimerFired())
        }
        if watchesIdleness, lastActivity + shared.options.idleTimeout <= now {
            watchesIdleness = false
            run(machine.exchangeTimedOut())
        }
        if let deadline = requestDeadline, deadline <= now {
            requestDeadline = nil
            run(machine.exchangeTimedOut())
        }
        if let deadline = backendDeadline, deadline <= now {
            backendDeadline = nil
            run(machine.backendTimedOut())
        }
        deadlinesChanged()
    }

    private func cancelAllTimers() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        waitDeadline = nil
        watchesIdleness = false
        requestDeadline = nil
        backendDeadline = nil
        retryTimer?.cancel()
        retryTimer = nil
    }

    private func connectUpstream(attempt: Int) {
        guard let forward, let first = endpoint else { return }
        var chosen = first
        if attempt > 1 {
            shared.metrics.noteRetry()
            // Another endpoint of the same backend (its filters are already in the request head).
            if let backendIndex, case .endpoint(let other) = BackendChoice.endpoint(
                of: forward.backends[backendIndex], avoiding: first, random: shared.random)
            {
                chosen = other
            }
            endpoint = chosen
        }
        if attempt == 1, let pooled = shared.pool.takeIdle(chosen) {
            // A pooled connection, handed over at once (no completion closure to allocate).
            upstreamAcquired(pooled, reused: true)
            return
        }
        let generation = self.generation
        // A new connection: the pool was looked at above on the first attempt, and a retry after
        // a failure never takes a pooled one.
        shared.pool.acquire(chosen, fresh: true) { [weak self] result in
            guard let self, self.generation == generation, self.context != nil else {
                if case .success(let (connection, _)) = result { connection.channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let (connection, reused)):
                self.upstreamAcquired(connection, reused: reused)
            case .failure(let error):
                self.shared.logger.notice(
                    "upstream connect failed",
                    metadata: ["endpoint": "\(chosen)", "attempt": "\(attempt)", "route": "\(self.route)", "error": "\(error)"])
                let timedOut: Bool
                if case ChannelError.connectTimeout = error { timedOut = true } else { timedOut = false }
                self.run(self.machine.upstreamConnectFailed(timedOut: timedOut))
            }
        }
    }

    private func upstreamAcquired(_ connection: UpstreamConnection, reused: Bool) {
        shared.metrics.noteUpstream(reused: reused)
        upstream = connection
        connection.delegate = self
        run(machine.upstreamConnected(reused: reused))
    }

    private func writeUpstream(_ part: HTTPClientRequestPart) {
        guard let upstream, let context else { return }
        guard case .body(let body) = part else {
            upstream.write(part, promise: nil)
            return
        }
        upstream.write(part, promise: tracked(body.readableBytes, toward: .upstream, context: context))
    }

    private func writeDownstreamBody(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: tracked(bytes.readableBytes, toward: .downstream, context: context))
        unflushedDownstream = true
    }

    private enum Peer { case upstream, downstream }

    /// Counts `size` bytes handed to a peer's socket but not yet taken by it (backpressure keeps this
    /// bounded; the metrics keep the most ever held), until the returned write promise completes.
    private func tracked(_ size: Int, toward peer: Peer, context: ChannelHandlerContext) -> EventLoopPromise<Void> {
        switch peer {
        case .upstream:
            bufferedRequestBytes += size
            if bufferedRequestBytes > maxBufferedRequestBytes {
                maxBufferedRequestBytes = bufferedRequestBytes
                shared.metrics.noteBuffered(request: bufferedRequestBytes)
            }
        case .downstream:
            bufferedResponseBytes += size
            if bufferedResponseBytes > maxBufferedResponseBytes {
                maxBufferedResponseBytes = bufferedResponseBytes
                shared.metrics.noteBuffered(response: bufferedResponseBytes)
            }
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        let generation = self.generation
        promise.futureResult.assumeIsolated().whenComplete { [weak self] _ in
            guard let self, self.generation == generation else { return }
            switch peer {
            case .upstream: self.bufferedRequestBytes -= size
            case .downstream: self.bufferedResponseBytes -= size
            }
        }
        return promise
    }

    private func resumeDownstreamReadsIfAllowed() {
        guard readHeld, let context, !machine.holdsDownstreamReads, upstream?.isWritable ?? true else { return }
        readHeld = false
        context.read()
    }

    private func sendLocal(_ response: ConnectionStateMachine.LocalResponse, close: Bool, context: ChannelHandlerContext) {
        recordMetrics(status: Int(response.status.code))
        var headers = response.headers
        // A 204 (a CORS preflight's answer) has no body and no Content-Length (RFC 9110 §8.6).
        let bodyless = response.status == .noContent
        let body = bodyless ? "" : response.body.isEmpty ? "\(response.status.code) \(response.status.reasonPhrase)\n" : response.body
        if !bodyless {
            headers.replaceOrAdd(name: "content-type", value: "text/plain; charset=utf-8")
            headers.replaceOrAdd(name: "content-length", value: String(body.utf8.count))
        }
        if close {
            headers.replaceOrAdd(name: "connection", value: "close")
        } else if requestVersion == .http1_0 {
            headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        let version: HTTPVersion = requestVersion == .http1_0 ? .http1_0 : .http1_1
        if close { LastSegment.carryFIN(context.channel) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        if requestMethod != .HEAD && !bodyless {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        if close {
            closeAfter(context.writeAndFlush(wrapOutboundOut(.end(nil))), context: context)
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// Writes already-encoded bytes below the HTTP codec (which has no request to pair them with)
    /// and closes the connection.
    private func writeRawAndClose(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        let channel = context.channel
        guard let below = try? channel.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) else {
            channel.close(promise: nil)
            return
        }
        LastSegment.carryFIN(channel)
        below.writeAndFlush(NIOAny(bytes)).whenComplete { _ in channel.close(promise: nil) }
    }

    private func closeAfter(_ written: EventLoopFuture<Void>, context: ChannelHandlerContext) {
        let channel = context.channel
        written.whenComplete { _ in channel.close(promise: nil) }
    }

    private func recordMetrics(status: Int) {
        let elapsed = now - exchangeStart
        shared.metrics.record(route: route, status: status, latencySeconds: Double(elapsed.nanoseconds) / 1e9)
    }

    // MARK: UpstreamDelegate

    func upstreamRead(_ part: HTTPClientResponsePart) {
        lastActivity = now
        switch part {
        case .head(let head):
            upstreamKeepAlive = head.isKeepAlive
            let allows = HeaderRewriting.responseAllowsKeepAlive(head, requestVersion: requestVersion)
            run(machine.responseHead(head, allowsKeepAlive: allows))
        case .body(let bytes):
            run(machine.responseBody(bytes))
        case .end:
            run(machine.responseEnd(upstreamKeepAlive: upstreamKeepAlive))
        }
    }

    func upstreamReadComplete() {
        // One flush (one writev) per socket read of the backend, not per body part; the response's
        // end flushes what is left itself (so a closing response's last segment can carry the FIN),
        // and a read that wrote nothing since (the response's end came in it) flushes nothing.
        guard unflushedDownstream, let context else { return }
        unflushedDownstream = false
        context.flush()
    }

    func upstreamClosed() {
        // The connection is gone: do not hand it back to the pool.
        upstream = nil
        run(machine.upstreamClosed())
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if writable { resumeDownstreamReadsIfAllowed() }
    }

    var upstreamMayRead: Bool { context?.channel.isWritable ?? false }
}

extension SocketAddress {
    /// The address without port, for X-Forwarded-For; IPv4-mapped IPv6 shown as IPv4.
    var clientIP: String? {
        guard var text = self.ipAddress else { return nil }
        if text.hasPrefix("::ffff:"), text.contains(".") { text = String(text.dropFirst(7)) }
        return text
    }
}

/// Sends a closing response's last bytes and the connection's FIN in one segment.
///
/// A client that reads a `Connection: close` response and closes its socket before the proxy's
/// FIN arrives becomes the side that closes first, and keeps a TIME_WAIT entry for that 4-tuple for
/// 60 s. A client opening connections at a high rate (wrk, a health checker, a `Connection: close`
/// HTTP client) then runs out of ephemeral ports that are free of TIME_WAIT, and every `connect`
/// searches longer: the new-connection benchmark fell from 8,000 to 400 requests/s within three
/// rounds (docs/BENCHMARKS.md). Corking the socket (TCP_CORK) before the last write keeps its
/// partial segment in the kernel until `close`, which sends it with the FIN, as nginx's responses
/// arrive: the client sees the end of the response and the FIN together and closes second.
enum LastSegment {
    private static let cork = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: 3 /* TCP_CORK */))

    /// Corks `channel`'s socket; the caller closes it once the final write completes (the kernel
    /// also sends a corked segment after 200 ms, so a close that never comes delays no bytes for long).
    static func carryFIN(_ channel: any Channel) {
        guard channel.eventLoop.inEventLoop, let options = channel.syncOptions else { return }
        // A channel that is not a TCP socket (a test's embedded channel) has nothing to cork.
        try? options.setOption(cork, value: 1)
    }
}
