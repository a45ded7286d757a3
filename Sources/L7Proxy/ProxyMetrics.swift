import GatewayCore
import NIOConcurrencyHelpers

/// Request counters and latency histograms per (route, status code), kept for a metrics endpoint.
/// Thread-safe: every event loop records into it.
public final class ProxyMetrics: Sendable {
    /// Upper bounds (seconds) of the latency buckets, Prometheus style; the last bucket is +Inf.
    public static let latencyBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

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

    /// Count, latency sum and cumulative-free bucket counts (index i counts latencies ≤ bucket i; the
    /// extra last slot counts the rest).
    public struct Series: Sendable, Equatable {
        public var count: UInt64 = 0
        public var latencySumSeconds: Double = 0
        public var bucketCounts: [UInt64] = Array(repeating: 0, count: ProxyMetrics.latencyBuckets.count + 1)
    }

    private let series = NIOLockedValueBox<[Key: Series]>([:])
    private let gauges = NIOLockedValueBox(Gauges())
    private let live = NIOLockedValueBox(LiveObjects())

    /// Highest bytes the proxy held at once for one exchange (written to a peer, not yet taken by its
    /// socket): what backpressure keeps bounded.
    public struct Gauges: Sendable, Equatable {
        public var maxBufferedRequestBytes = 0
        public var maxBufferedResponseBytes = 0
        public var upstreamConnectionsOpened = 0
        public var upstreamConnectionsReused = 0
        public var upstreamRetries = 0
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

    public init() {}

    /// Client connection handlers and upstream connections not yet freed.
    public var liveObjects: LiveObjects { live.withLockedValue { $0 } }

    func noteDownstreamHandler(alive delta: Int) { live.withLockedValue { $0.downstreamHandlers += delta } }

    func noteUpstreamConnection(alive delta: Int) { live.withLockedValue { $0.upstreamConnections += delta } }

    /// Records one finished request.
    public func record(route: RouteLabel, status: Int, latencySeconds: Double) {
        let bucket = Self.latencyBuckets.firstIndex { latencySeconds <= $0 } ?? Self.latencyBuckets.count
        series.withLockedValue { all in
            let key = Key(route: route.name, status: status)
            var entry = all[key] ?? Series()
            entry.count += 1
            entry.latencySumSeconds += latencySeconds
            entry.bucketCounts[bucket] += 1
            all[key] = entry
        }
    }

    /// A copy of every series.
    public func snapshot() -> [Key: Series] { series.withLockedValue { $0 } }

    /// Requests counted for a route and status.
    public func count(route: String, status: Int) -> UInt64 {
        series.withLockedValue { $0[Key(route: route, status: status)]?.count ?? 0 }
    }

    public var gaugeSnapshot: Gauges { gauges.withLockedValue { $0 } }

    func noteBuffered(request: Int) {
        gauges.withLockedValue { $0.maxBufferedRequestBytes = max($0.maxBufferedRequestBytes, request) }
    }

    func noteBuffered(response: Int) {
        gauges.withLockedValue { $0.maxBufferedResponseBytes = max($0.maxBufferedResponseBytes, response) }
    }

    func noteUpstream(reused: Bool) {
        gauges.withLockedValue { if reused { $0.upstreamConnectionsReused += 1 } else { $0.upstreamConnectionsOpened += 1 } }
    }

    func noteRetry() { gauges.withLockedValue { $0.upstreamRetries += 1 } }

    func noteRejected(_ verdict: ConnectionAdmission.Verdict) {
        guard verdict == .rejectedPerClient else { return }
        gauges.withLockedValue { $0.connectionsRejectedPerClient += 1 }
    }

    func noteReaped() { gauges.withLockedValue { $0.idleConnectionsReaped += 1 } }

    func noteAcceptPaused() { gauges.withLockedValue { $0.acceptPauses += 1 } }

    /// The series in the Prometheus text format (counter `portway_proxy_requests_total`, histogram
    /// `portway_proxy_request_duration_seconds`).
    public func prometheusText() -> String {
        let all = snapshot().sorted { ($0.key.route, $0.key.status) < ($1.key.route, $1.key.status) }
        var out = "# TYPE portway_proxy_requests_total counter\n"
        for (key, s) in all {
            out += "portway_proxy_requests_total{route=\"\(key.route)\",code=\"\(key.status)\"} \(s.count)\n"
        }
        out += "# TYPE portway_proxy_request_duration_seconds histogram\n"
        for (key, s) in all {
            let labels = "route=\"\(key.route)\",code=\"\(key.status)\""
            var cumulative: UInt64 = 0
            for (i, bound) in Self.latencyBuckets.enumerated() {
                cumulative += s.bucketCounts[i]
                out += "portway_proxy_request_duration_seconds_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
            }
            out += "portway_proxy_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(s.count)\n"
            out += "portway_proxy_request_duration_seconds_sum{\(labels)} \(s.latencySumSeconds)\n"
            out += "portway_proxy_request_duration_seconds_count{\(labels)} \(s.count)\n"
        }
        return out
    }
}
