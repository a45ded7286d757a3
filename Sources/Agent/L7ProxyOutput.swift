import Datapath
import Dispatch
import GatewayCore
import L7Proxy
import LoadBalancer
import Logging
import NIOCore
import NIOPosix
import Runtime
import ServiceLifecycle
import Synchronization

/// How the agent's L7 proxy binds its proxy ports (`--proxy-listen`).
public enum ProxyListenMode: String, Sendable, CaseIterable {
    /// IP_TRANSPARENT sockets on 0.0.0.0 (`TransparentListener`): the target of the datapath's
    /// L7LB redirect, which keeps the client's address and the original destination.
    case transparent
    /// Plain sockets on 0.0.0.0 (no datapath; tests and `--no-datapath`).
    case plain
    /// Plain sockets on 127.0.0.1 (tests).
    case loopback
    /// No proxy: the route tables are built but nothing listens.
    case off
}

/// The node's L7 proxy as an output of the pipeline: the reconciler publishes, after each step,
/// every proxy port with its Gateway route table; this service swaps the proxy's router atomically
/// (a keep-alive connection picks up the new table at its next request) and makes the open
/// listeners exactly those ports (new ones opened, gone ones closed, the others untouched).
/// Ports that fail to bind are retried with the pipeline's backoff.
public final class L7ProxyOutput: ServiceLifecycle.Service, Sendable {
    /// The proxy (its `ports` and `routes` for tests and diagnostics).
    public let proxy: L7Proxy
    private let group: MultiThreadedEventLoopGroup
    private let loop = CoalescingLoop<Message>()
    private let retry: BackoffPolicy
    /// Pre-opened listening sockets not adopted yet.
    private let preopened: PreopenedSockets
    private let drainTimeout: Duration
    private let logger: Logger
    /// Called after each step with the ports listening (tests).
    private let onApplied: (@Sendable ([UInt16]) -> Void)?
    /// Called after each step with the ports wanted but not listening (readiness).
    private let onPending: (@Sendable (Set<UInt16>) -> Void)?
    /// Called after each step with what the proxy serves now (the node's report to the leader):
    /// the pipeline's draft with the listeners whose certificate did not load or whose port did not open.
    private let onProgrammed: (@Sendable (NodeProgramReport) -> Void)?
    /// Called after each swap of the router with the hops of the changes it was built from
    /// (`RouteChangeTrace`, swapped time set; metrics and tests).
    private let onRouteChange: (@Sendable (RouteChangeTrace) -> Void)?

    /// Whether the node's report waits for the map writer's redirects (`redirectsWritten`): set
    /// by the pipeline that has a map output, before it runs.
    private let redirectsExpected = Atomic<Bool>(false)

    enum Message: Sendable {
        case tables([UInt16: PortRouteTable], certificates: [NamespacedName: TLSMaterial], report: NodeProgramReport?, trace: RouteChangeTrace?)
        case redirects(RedirectsWritten)
    }

    /// - Parameters:
    ///   - mode: how proxy ports are bound (not `.off`).
    ///   - threads: the proxy's event loops (nil: one per core).
    ///   - preopened: transparent listening sockets opened before the agent could serve (a takeover:
    ///     bound with SO_REUSEPORT while the previous agent still listens, so the kernel queues new
    ///     connections for this agent); each is adopted when its port opens, the others closed.
    ///   - drainTimeout: on shutdown, how long connections already accepted may go on after the
    ///     listeners close (requests in flight finish).
    ///   - listeners: where transparent listeners are registered for the datapath's sk_lookup
    ///     program as their ports open (nil: not registered; the tc programs assign them instead).
    ///   - onRouteChange: told each traced change once its table is swapped in (also logged at debug level).
    public init(
        mode: ProxyListenMode, threads: Int? = nil, options: ProxyOptions = ProxyOptions(), retry: BackoffPolicy = .retries(),
        preopened: [UInt16: CInt] = [:], drainTimeout: Duration = .seconds(1), listeners: L7ListenerMap? = nil,
        logger: Logger = Logger(label: "portway.proxy"), onApplied: (@Sendable ([UInt16]) -> Void)? = nil,
        metrics: ProxyMetrics = ProxyMetrics(), onPending: (@Sendable (Set<UInt16>) -> Void)? = nil,
        onProgrammed: (@Sendable (NodeProgramReport) -> Void)? = nil, onRouteChange: (@Sendable (RouteChangeTrace) -> Void)? = nil
    ) {
        let binder: any ListenerBinder
        let waiting = PreopenedSockets(preopened)
        self.preopened = waiting
        self.drainTimeout = drainTimeout
        switch mode {
        case .transparent:
            // SO_REUSEPORT: the next agent can take the ports over before this one closes them.
            binder = BoundSocketBinder { port in
                let fd = try waiting.take(port) ?? TransparentListener.openTCP(port: port, reusePort: true)
                // The kernel drops the entry when the socket closes: nothing to undo on close.
                do { try listeners?.register(port: port, listener: fd) } catch {
                    logger.warning("proxy port \(port): served through bpf_sk_assign only (a client port reused while the node holds its TIME_WAIT socket stalls): \(error)")
                }
                return fd
            }
        case .plain: binder = AddressBinder(host: "0.0.0.0")
        case .loopback, .off: binder = AddressBinder(host: "127.0.0.1")
        }
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads ?? System.coreCount))
        proxy = L7Proxy(group: group, options: options, binder: binder, metrics: metrics, logger: logger)
        self.retry = retry
        self.logger = logger
        self.onApplied = onApplied
        self.onPending = onPending
        self.onProgrammed = onProgrammed
        self.onRouteChange = onRouteChange
    }

    /// Hands the proxy the tables to serve (later calls replace earlier ones not yet applied), with
    /// the report of what they are (`NodeProgramReport.draft`), told to `onProgrammed` once applied,
    /// and the hops of the changes they come from, completed at the swap.
    func publish(
        _ tables: [UInt16: PortRouteTable], certificates: [NamespacedName: TLSMaterial], report: NodeProgramReport? = nil,
        trace: RouteChangeTrace? = nil
    ) {
        loop.send(.tables(tables, certificates: certificates, report: report, trace: trace))
    }

    /// From now on a Gateway port counts as served in the node's report only once the map
    /// writer says its L7LB redirect is written (`redirectsWritten`).
    func expectRedirects() { redirectsExpected.store(true, ordering: .relaxed) }

    /// What the map writer holds of the L7LB redirects now (its `OutputRunner`).
    func redirectsWritten(_ redirects: RedirectsWritten) { loop.send(.redirects(redirects)) }

    /// How long the stop may take after the drain: closing what is left and stopping the event
    /// loops. The whole shutdown takes at most `drainTimeout` + this, busy event loops or not.
    public static let stopTimeout: Duration = .seconds(1)

    /// The event loops the proxy runs on (tests, diagnostics).
    public var eventLoops: any EventLoopGroup { group }

    /// Serves until graceful shutdown (or cancellation), then drains and stops within
    /// `drainTimeout` + `stopTimeout`. The work on the proxy's event loops never holds the
    /// lifecycle: every wait of the shutdown has a deadline kept on Swift's clock, and a step of
    /// the loop below still waiting on a busy event loop is left behind (cancelled, not awaited).
    public func run() async throws {
        let work = Task { await self.serve() }
        try? await gracefulShutdown()
        work.cancel()
        let stopBy = ContinuousClock.now + drainTimeout + Self.stopTimeout
        closeUnadopted()
        await proxy.drain(timeout: drainTimeout)
        await proxy.shutdown(until: stopBy)
        let group = group
        let stopped = await BoundedWait.until(stopBy) { done in group.shutdownGracefully(queue: .global()) { _ in done() } }
        if !stopped { logger.warning("proxy: event loops still busy at shutdown; not waiting for them") }
    }

    /// A step function of the output's loop: the newest tables, then the ports; a port that failed
    /// to bind makes the step ask to be woken when its retry is due.
    private func serve() async {
        var wanted: [UInt16: PortRouteTable] = [:]
        var certificates: [NamespacedName: TLSMaterial] = [:]
        var attempt = 0
        var appliedTLS: [UInt16: PortTLSSource] = [:]
        var draft: NodeProgramReport?
        // Per port: listener → why the proxy does not serve it (a certificate, the port itself).
        var portFailures: [UInt16: [String: String]] = [:]
        var redirects = RedirectsWritten()
        // Until the first tables come there is nothing to serve, nor to close: a take-over's
        // pre-opened ports hold the connections queued for this agent (the map writer's report
        // can come first, and closing them then reset every connection in their queues).
        var tablesArrived = false
        await loop.run { batch, _ in
            var changed = false
            // Every publication the new router answers for (a later one carries the earlier's changes).
            var traces: [RouteChangeTrace] = []
            for message in batch {
                switch message {
                case .tables(let tables, let certs, let report, let trace):
                    tablesArrived = true
                    wanted = tables
                    certificates = certs
                    draft = report
                    changed = true
                    attempt = 0
                    if let trace, !trace.events.isEmpty { traces.append(trace) }
                case .redirects(let written):
                    redirects = written
                }
            }
            guard tablesArrived else {
                logger.debug("proxy: waiting for the first route tables (\(preopened.count) pre-opened ports held)")
                return nil
            }
            // The router first: a port opened next serves its table from its first connection.
            if changed {
                let router = GatewayRouteTableRouter(tables: wanted)
                for problem in router.problems { logger.warning("\(problem)") }
                proxy.routes.swap(router)
                let swapped = RouteChangeTrace.now()
                for var trace in traces {
                    trace.swapped = swapped
                    if logger.logLevel <= .debug { for line in trace.logLines { logger.debug("\(line)") } }
                    onRouteChange?(trace)
                }
            }
            let failed = await apply(wanted, certificates: certificates, applied: &appliedTLS, failures: &portFailures)
            closeUnadopted()
            onApplied?(proxy.ports)
            onPending?(failed)
            if let draft, let onProgrammed {
                let report = Self.report(draft, tables: wanted, failures: portFailures, failedPorts: failed)
                onProgrammed(redirectsExpected.load(ordering: .relaxed) ? Self.report(report, tables: wanted, redirects: redirects) : report)
            }
            if !failed.isEmpty {
                attempt += 1
                let delay = retry.retryDelay(attempt: attempt)
                logger.warning("proxy ports \(failed.sorted()) not listening; retrying in \(delay)")
                return ContinuousClock.now + delay
            }
            if attempt > 0 {
                logger.notice("proxy ports listening after \(attempt) retries")
                attempt = 0
            }
            return nil
        }
    }

    /// `draft` with what the proxy failed to serve: per Gateway (or its ListenerSet, for a
    /// listener of one), the listeners of a port whose certificate did not load, and every
    /// listener of a port that is not listening.
    static func report(
        _ draft: NodeProgramReport, tables: [UInt16: PortRouteTable], failures: [UInt16: [String: String]], failedPorts: Set<UInt16>
    ) -> NodeProgramReport {
        var out = draft
        for (port, table) in tables.sorted(by: { $0.key < $1.key }) {
            let listenerSets = Dictionary(table.listeners.map { ($0.name, $0.listenerSet) }, uniquingKeysWith: { first, _ in first })
            for (listener, message) in (failures[port] ?? [:]).sorted(by: { $0.key < $1.key }) {
                out.fail(gateway: table.gateway, listenerSet: listenerSets[listener] ?? nil, listener: listener, message)
            }
            if failedPorts.contains(port) {
                for listener in table.listeners {
                    out.fail(gateway: table.gateway, listenerSet: listener.listenerSet, listener: listener.name, "proxy port \(port) is not listening")
                }
            }
        }
        return out
    }

    /// `report` with the map writer's half: a Gateway port whose redirect to its proxy port
    /// failed to be written is a failure of each of its listeners (a full map, a failed write);
    /// one whose redirect is not written yet keeps its Gateway (and ListenerSets) pending.
    static func report(_ report: NodeProgramReport, tables: [UInt16: PortRouteTable], redirects: RedirectsWritten) -> NodeProgramReport {
        var out = report
        for (proxyPort, table) in tables.sorted(by: { $0.key < $1.key }) {
            if let why = redirects.failed[proxyPort] {
                for listener in table.listeners {
                    out.fail(gateway: table.gateway, listenerSet: listener.listenerSet, listener: listener.name, "redirect to proxy port \(proxyPort) not written to the maps: \(why)")
                }
            } else if redirects.written[proxyPort, default: 0] == 0 {
                let message = "the redirect to proxy port \(proxyPort) is not in the maps yet"
                out.gateways[table.gateway.description]?.wait(for: "port \(table.port)", message)
                for set in Set(table.listeners.compactMap(\.listenerSet)) { out.listenerSets?[set.description]?.wait(for: "port \(table.port)", message) }
            }
        }
        return out
    }

    /// Closes the pre-opened sockets not adopted yet (a take-over given up); ports open later bind anew.
    func releasePreopened() { closeUnadopted(why: "the take-over was given up") }

    /// Closes the pre-opened sockets no wanted port took (a Gateway gone while the agents changed).
    private func closeUnadopted(why: String = "no Gateway wants it") {
        for (port, fd) in preopened.takeAll() {
            logger.info("pre-opened proxy port \(port) closed: \(why)")
            close(fd)
        }
    }

    /// What a port's TLS was built from: each HTTPS listener hostname with a certificate's bytes.
    struct TLSSource: Hashable {
        var hostname: String?
        var material: TLSMaterial
    }

    /// A port's certificates and its client certificate validation (a CA bundle or mode change is
    /// a TLS change as a rotated Secret is).
    struct PortTLSSource: Hashable {
        var certificates: [TLSSource]
        var clientValidation: FrontendValidation?
    }

    static func tlsSources(_ table: PortRouteTable, certificates: [NamespacedName: TLSMaterial]) -> PortTLSSource {
        PortTLSSource(
            certificates: table.listeners.filter { $0.protocol == .https }.flatMap { listener in
                listener.certificates.compactMap { certificates[$0] }.map { TLSSource(hostname: listener.hostname, material: $0) }
            },
            clientValidation: table.clientValidation)
    }

    /// Closes the ports no longer wanted and opens the missing ones; an open port whose
    /// certificates changed gets them in place (new handshakes only), or is reopened when TLS was
    /// turned on or off. A certificate that does not load is skipped and logged with its listener
    /// and Secret: the port serves its other listeners. An HTTPS port with no usable certificate
    /// is not opened (never served as plain HTTP), or keeps its previous certificates if open.
    /// Returns the ports that failed.
    private func apply(
        _ wanted: [UInt16: PortRouteTable], certificates: [NamespacedName: TLSMaterial], applied: inout [UInt16: PortTLSSource],
        failures: inout [UInt16: [String: String]]
    ) async -> Set<UInt16> {
        let open = Set(proxy.ports)
        for port in open.subtracting(wanted.keys).sorted() {
            await proxy.close(port: port)
            applied[port] = nil
        }
        for port in failures.keys where wanted[port] == nil { failures[port] = nil }
        var failed = Set<UInt16>()
        for port in wanted.keys.sorted() {
            guard let table = wanted[port] else { continue }
            let sources = Self.tlsSources(table, certificates: certificates)
            if open.contains(port) && applied[port] == sources { continue }
            let label = "proxy port \(port) (\(table.gateway):\(table.port))"
            var unusable: [UnusableCertificate] = []
            let tls = TLSListener(table: table, certificates: certificates, unusable: &unusable)
            for skipped in unusable {
                logger.error("\(label): certificate skipped, the port's other listeners are served: \(skipped)")
            }
            failures[port] = unusable.isEmpty ? nil : Dictionary(
                unusable.map { ($0.listener, "certificate failed to load: \($0.kind) \($0.secret): \($0.problem)") }, uniquingKeysWith: { old, _ in old })
            let https = table.listeners.contains { $0.protocol == .https }
            if https && tls == nil {
                // Nothing to terminate TLS with: never answer an HTTPS listener in plain text, nor
                // with the previous TLS when the port now asks for client certificates.
                if open.contains(port) && proxy.terminatesTLS(port: port) && table.clientValidation == nil {
                    logger.error("\(label): no usable certificate; keeping the previous ones")
                } else {
                    logger.error("\(label): no usable certificate; not listening")
                    if open.contains(port) { await proxy.close(port: port) }
                }
                applied[port] = sources
                continue
            }
            if open.contains(port) {
                if let tls, proxy.terminatesTLS(port: port) {
                    if proxy.updateCertificates(port: port, tls: tls) {
                        applied[port] = sources
                        continue
                    }
                    // Not taken (a context with the new validation failed): reopened below.
                }
                if tls == nil, !proxy.terminatesTLS(port: port) {
                    applied[port] = sources
                    continue
                }
                // TLS turned on or off: only a new listener can say so.
                logger.notice("\(label): reopening, TLS \(tls == nil ? "off" : "on")")
                await proxy.close(port: port)
            }
            do {
                try await proxy.open(port: port, configuration: ListenerConfiguration(tls: tls))
                applied[port] = sources
            } catch {
                logger.error("\(label): \(error)")
                failed.insert(port)
            }
        }
        return failed
    }
}

/// Listening sockets opened before the proxy could serve them, each adopted at most once.
final class PreopenedSockets: Sendable {
    private let sockets: Mutex<[UInt16: CInt]>

    init(_ sockets: [UInt16: CInt]) { self.sockets = Mutex(sockets) }

    /// The socket for `port`, removed from the set.
    func take(_ port: UInt16) -> CInt? { sockets.withLock { $0.removeValue(forKey: port) } }
    /// How many are held.
    var count: Int { sockets.withLock { $0.count } }

    /// Every socket left, the set emptied.
    func takeAll() -> [UInt16: CInt] {
        sockets.withLock { sockets in
            defer { sockets = [:] }
            return sockets
        }
    }
}
