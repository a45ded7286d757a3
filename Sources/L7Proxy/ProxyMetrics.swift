import CoreMetrics
import GatewayCore
import Logging
import NIOConcurrencyHelpers
import Prometheus
import Synchronization

/// The proxy's metrics, recorded through swift-metrics into a Prometheus registry (the agent's
/// `/metrics` renders the same registry): requests and latency per (route, status code),
/// requests rejected before routing by reason, open client connections. Thread-safe: every event
/// loop records into it. The handles of a series are made once, on its first request, and cached:
/// a request costs one dictionary lookup under a lock and the handles' atomic updates, no string
/// formatting.
public final class ProxyMetrics: Sendable {
    /// Upper bounds (seconds) of the latency buckets, Prometheus style; the last bucket is +Inf.
    public static let latencyBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// Metric names (stable: dashboards and docs/OPERATING.md use them).
    public enum Name {
        public static let requests = "portway_proxy_requests_total"
        public static let duration = "portway_proxy_request_duration_seconds"
        public static let rejected = "portway_proxy_requests_rejected_total"
        public static let openConnections = "portway_proxy_open_connections"
        public static let connectionsRejected = "portway_proxy_connections_rejected_total"
        public static let idleReaped = "portway_proxy_idle_connections_reaped_total"
        public static let acceptPauses = "portway_proxy_accept_pauses_total"
    }

    /// The connection limits' counters (`ConnectionLimits`: docs/L7PROXY.md).
    private struct LimitCounters: Sendable {
        let rejectedPerClient: CoreMetrics.Counter
        let reaped: CoreMetrics.Counter
        let acceptPauses: CoreMetrics.Counter
    }

    /// One series: a route and the status code the client got.
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        public var route: String
        public var status: Int
        public init(route: String, status: Int) {
            self.route = route
            self.status = status
        }
        public var description: String { "\(route) \(status)" }
    }

    private struct Handles: Sendable {
        let requests: CoreMetrics.Counter
        let duration: CoreMetrics.Timer
    }

    /// The registry the series live in (`prometheusText()` renders it).
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let series = Mutex<[Key: Handles]>([:])
    private let rejectedByStatus = Mutex<[Int: CoreMetrics.Counter]>([:])
    private let openConnections: CoreMetrics.Meter
    private let connectionLimits: LimitCounters
    private let gauges = Mutex(Gauges())
    private let live = Mutex(LiveObjects())
    /// With a logger: one access-log line per finished request (`--proxy-access-log`).
    private let accessLog: Logger?

    /// Highest bytes the proxy held at once for one exchange (written to a peer, not yet taken by its
    /// socket): what backpressure keeps bounded.
    public struct Gauges: Sendable, Equatable {
        public var maxBufferedRequestBytes = 0
        public var maxBufferedResponseBytes = 0
        public var upstreamConnectionsOpened = 0
        public var upstreamConnectionsReused = 0
        public var upstreamRetries = 0
        /// RequestMirror copies started, and those dropped (over the body limit, the in-flight
        /// limit, a mirror that failed or was too slow); `mirrorsInFlight` are not finished yet.
        public var mirrorsStarted = 0
        public var mirrorsDropped = 0
        public var mirrorsInFlight = 0
        /// Connections closed at once because their client address had too many open.
        public var connectionsRejectedPerClient = 0
        /// Idle client connections closed to make room at the limit.
        public var idleConnectionsReaped = 0
        /// Times a listener stopped accepting at the limit (a connection waited for room).
        public var acceptPauses = 0
    }

    /// Connection objects alive in memory: counted when created and when freed (deinit), so a
    /// connection whose objects are kept alive by a reference cycle stays counted after it closed.
    public struct LiveObjects: Sendable, Equatable {
        /// Client connection handlers (one per accepted connection).
        public var downstreamHandlers = 0
        /// Upstream connections (pooled or serving an exchange).
        public var upstreamConnections = 0
    }

    /// - Parameters:
    ///   - registry: where the series are kept (the agent passes the one its `/metrics` renders).
    ///   - accessLog: a logger for one line per request (nil: no access log).
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), accessLog: Logger? = nil) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[Name.duration] = Self.latencyBuckets.map { .nanoseconds(Int64($0 * 1e9)) }
        self.factory = factory
        self.accessLog = accessLog
        openConnections = CoreMetrics.Meter(label: Name.openConnections, dimensions: [], factory: factory)
        connectionLimits = LimitCounters(
            rejectedPerClient: CoreMetrics.Counter(label: Name.connectionsRejected, dimensions: [("reason", "per_client_limit")], factory: factory),
            reaped: CoreMetrics.Counter(label: Name.idleReaped, dimensions: [], factory: factory),
            acceptPauses: CoreMetrics.Counter(label: Name.acceptPauses, dimensions: [], factory: factory))
    }

    /// Client connection handlers and upstream connections not yet freed.
    public var liveObjects: LiveObjects { live.withLock { $0 } }

    func noteDownstreamHandler(alive delta: Int) {
        live.withLock { $0.downstreamHandlers += delta }
        if delta > 0 { openConnections.increment(by: Double(delta)) } else { openConnections.decrement(by: Double(-delta)) }
    }

    func noteUpstreamConnection(alive delta: Int) { live.withLock { $0.upstreamConnections += delta } }

    /// Records one finished request. A request that matched no route (`RouteLabel.none`) and got
    /// an error status was rejected before routing: it also counts in `portway_proxy_requests_rejected_total`
    /// with its reason.
    public func record(route: RouteLabel, status: Int, latencySeconds: Double) {
        let key = Key(route: route.name, status: status)
        let handles = series.withLock { all in
            if let handles = all[key] { return handles }
            let labels = [("route", key.route), ("code", String(status))]
            let made = Handles(
                requests: CoreMetrics.Counter(label: Name.requests, dimensions: labels, factory: factory),
                duration: CoreMetrics.Timer(label: Name.duration, dimensions: labels, factory: factory))
            all[key] = made
            return made
        }
        handles.requests.increment()
        handles.duration.recordNanoseconds(Int64(latencySeconds * 1e9))
        if route == .none && status >= 400 {
            rejectedCounter(status: status).increment()
        }
        accessLog?.info("\(key.route) \(status) \(Int64(latencySeconds * 1e6))us")
    }

    private func rejectedCounter(status: Int) -> CoreMetrics.Counter {
        rejectedByStatus.withLock { all in
            if let counter = all[status] { return counter }
            let counter = CoreMetrics.Counter(label: Name.rejected, dimensions: [("reason", Self.rejectionReason(status: status))], factory: factory)
            all[status] = counter
            return counter
        }
    }

    /// The reason label of a request answered before any route took it, from its status code.
    public static func rejectionReason(status: Int) -> String {
        switch status {
        case 400: "bad_request"
        case 404: "no_route"
        case 408: "request_timeout"
        case 413: "body_too_large"
        case 414: "uri_too_long"
        case 421: "misdirected"
        case 431: "headers_too_large"
        case 501: "not_implemented"
        case 505: "http_version"
        default: "status_\(status)"
        }
    }

    /// Requests counted for a route and status (read from the rendered registry: for tests and
    /// diagnostics, not for a hot path).
    public func count(route: String, status: Int) -> UInt64 {
        let prefix = "\(Name.requests){route=\"\(route)\",code=\"\(status)\"} "
        for line in prometheusText().split(separator: "\n") where line.hasPrefix(prefix) {
            return UInt64(line.dropFirst(prefix.count)) ?? 0
        }
        return 0
    }

    public var gaugeSnapshot: Gauges { gauges.withLock { $0 } }

    func noteBuffered(request: Int) {
        gauges.withLock { $0.maxBufferedRequestBytes = max($0.maxBufferedRequestBytes, request) }
    }

    func noteBuffered(response: Int) {
        gauges.withLock { $0.maxBufferedResponseBytes = max($0.maxBufferedResponseBytes, response) }
    }

    func noteUpstream(reused: Bool) {
        gauges.withLock { if reused { $0.upstreamConnectionsReused += 1 } else { $0.upstreamConnectionsOpened += 1 } }
    }

    func noteRetry() { gauges.withLock { $0.upstreamRetries += 1 } }

    /// Counts a mirror in flight when fewer than `limit` are; false (counted as dropped) otherwise.
    func startMirror(limit: Int) -> Bool {
        gauges.withLock {
            guard $0.mirrorsInFlight < limit else {
                $0.mirrorsDropped += 1
                return false
            }
            $0.mirrorsInFlight += 1
            $0.mirrorsStarted += 1
            return true
        }
    }

    /// A mirror started with `startMirror` finished (`dropped`: before its whole request was sent).
    func finishMirror(dropped: Bool) {
        gauges.withLock {
            $0.mirrorsInFlight -= 1
            if dropped { $0.mirrorsDropped += 1 }
        }
    }

    func noteRejected(_ verdict: ConnectionAdmission.Verdict) {
        guard verdict == .rejectedPerClient else { return }
        gauges.withLock { $0.connectionsRejectedPerClient += 1 }
        connectionLimits.rejectedPerClient.increment()
    }

    func noteReaped() {
        gauges.withLock { $0.idleConnectionsReaped += 1 }
        connectionLimits.reaped.increment()
    }

    func noteAcceptPaused() {
        gauges.withLock { $0.acceptPauses += 1 }
        connectionLimits.acceptPauses.increment()
    }

    /// The registry in the Prometheus text format (counter `portway_proxy_requests_total`, histogram
    /// `portway_proxy_request_duration_seconds`, ...; with the agent's registry, every agent metric too).
    public func prometheusText() -> String { registry.emitToString() }
}
