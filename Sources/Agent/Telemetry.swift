import BPFMaps
import CoreMetrics
import KubeAPI
import L7Proxy
import Logging
import Prometheus
import Synchronization

/// The agent's health, readiness and metrics, fed by the pipeline's hooks (map writes, informer
/// states, leadership, proxy ports) and read by the health listener (`/healthz`, `/readyz`,
/// `/metrics`). Every metric goes through swift-metrics into one Prometheus registry, which the
/// proxy's `ProxyMetrics` shares; handles are made once and kept.
///
/// Readiness, phase by phase:
/// - `standby` (a `--take-over` waiting for the previous agent on this node to release the pin
///   directory, with the proxy ports it programmed already listening): **ready**. A DaemonSet
///   rolling update with `maxSurge: 1, maxUnavailable: 0` starts the new pod beside the old one
///   and stops the old one only once the new one is ready; were a standby not ready, the rollout
///   would wait forever for a pod that waits for the old one. Nothing is dropped meanwhile: the
///   old agent serves, then the kernel queues new Gateway connections on the standby's sockets.
/// - `starting` (pins taken, first full sync not yet programmed): not ready.
/// - `serving`: ready when the first full sync is programmed and every proxy port a Gateway wants
///   is listening.
///
/// Health (liveness) fails only for what a restart can cure: an informer stuck in backoff for
/// longer than `stuckAfter`, or, with periodic resyncs on, no successful map write for two resync
/// intervals plus a minute (a wedged writer). It never fails while standing by or starting.
public final class AgentTelemetry: Sendable {
    /// Where the agent is in its life (see the type's documentation).
    public enum Phase: String, Sendable {
        case standby, starting, serving
    }

    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    /// The proxy's metrics, in the same registry.
    public let proxyMetrics: ProxyMetrics
    private let factory: PrometheusMetricsFactory
    private let nodeName: String
    private let resyncInterval: Duration?
    private let stuckAfter: Duration
    private let clock = ContinuousClock()

    private struct State {
        var phase = Phase.starting
        var firstSync = false
        var lastWrite: ContinuousClock.Instant?
        /// Resources whose informer is backing off, since when.
        var backingOffSince: [String: ContinuousClock.Instant] = [:]
        /// Resources that have been watching once (a later watch is a restart).
        var watched: Set<String> = []
        var generation = 0
        /// Proxy ports wanted but not listening, as the proxy output last reported.
        var proxyPending: Set<UInt16> = []
    }
    private let state = Mutex(State())
    private let handles = Mutex<[String: CoreMetrics.Counter]>([:])

    private let frontends: CoreMetrics.Gauge
    private let backends: CoreMetrics.Gauge
    private let generation: CoreMetrics.Gauge
    private let leader: CoreMetrics.Gauge
    private let syncDuration: CoreMetrics.Timer
    private let mapEntries: [MapKind: CoreMetrics.Gauge]
    private let mapCapacity: [MapKind: CoreMetrics.Gauge]
    private let syncFailures: CoreMetrics.Counter
    private let routeChange: CoreMetrics.Timer

    /// Buckets of `portway_sync_duration_seconds` (map writes take microseconds to seconds).
    static let syncBuckets: [Duration] = [.microseconds(100), .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
                                          .milliseconds(500), .seconds(1), .seconds(5), .seconds(30)]

    /// Buckets of `portway_route_change_seconds` (informer event → route table swapped: milliseconds
    /// on a quiet node, more under load or with a large Gateway to build).
    static let routeChangeBuckets: [Duration] = [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                                 .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5)]

    /// - Parameters:
    ///   - version, commit: for `portway_build_info`.
    ///   - stuckAfter: how long an informer may back off without a watch before `/healthz` fails.
    public init(
        nodeName: String, version: String, commit: String, resyncInterval: Duration?, stuckAfter: Duration = .seconds(300),
        accessLog: Logger? = nil
    ) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["portway_sync_duration_seconds"] = Self.syncBuckets
        factory.durationHistogramBuckets["portway_route_change_seconds"] = Self.routeChangeBuckets
        self.factory = factory
        self.nodeName = nodeName
        self.resyncInterval = resyncInterval
        self.stuckAfter = stuckAfter
        proxyMetrics = ProxyMetrics(registry: registry, accessLog: accessLog)
        CoreMetrics.Gauge(label: "portway_build_info", dimensions: [("version", version), ("commit", commit)], factory: factory).record(1)
        frontends = CoreMetrics.Gauge(label: "portway_frontends", dimensions: [], factory: factory)
        backends = CoreMetrics.Gauge(label: "portway_backends", dimensions: [], factory: factory)
        generation = CoreMetrics.Gauge(label: "portway_programmed_generation", dimensions: [("node", nodeName)], factory: factory)
        leader = CoreMetrics.Gauge(label: "portway_gateway_leader", dimensions: [("node", nodeName)], factory: factory)
        leader.record(0)
        syncDuration = CoreMetrics.Timer(label: "portway_sync_duration_seconds", dimensions: [], factory: factory)
        syncFailures = CoreMetrics.Counter(label: "portway_sync_failures_total", dimensions: [], factory: factory)
        routeChange = CoreMetrics.Timer(label: "portway_route_change_seconds", dimensions: [], factory: factory)
        var entries: [MapKind: CoreMetrics.Gauge] = [:], capacity: [MapKind: CoreMetrics.Gauge] = [:]
        for kind in [MapKind.services, .backends, .reverseNAT] {
            entries[kind] = CoreMetrics.Gauge(label: "portway_map_entries", dimensions: [("map", kind.pinName)], factory: factory)
            capacity[kind] = CoreMetrics.Gauge(label: "portway_map_capacity", dimensions: [("map", kind.pinName)], factory: factory)
        }
        mapEntries = entries
        mapCapacity = capacity
    }

    // MARK: - what the agent reports

    public func setPhase(_ phase: Phase) { state.withLock { $0.phase = phase } }

    public var phase: Phase { state.withLock { $0.phase } }

    /// After every map write (the pipeline's `onSync`).
    public func mapsWritten(_ summary: SyncSummary) {
        let now = clock.now
        let generation = state.withLock { s -> Int in
            s.firstSync = true
            if s.phase == .starting { s.phase = .serving }
            if summary.failures.isEmpty { s.lastWrite = now }
            s.generation += 1
            return s.generation
        }
        self.generation.record(Double(generation))
        frontends.record(Double(summary.frontends))
        backends.record(Double(summary.backends))
        syncDuration.recordNanoseconds(Int64(summary.duration.components.seconds) * 1_000_000_000 + summary.duration.components.attoseconds / 1_000_000_000)
        if !summary.failures.isEmpty { syncFailures.increment(by: summary.failures.count) }
        for (kind, count) in summary.entries { mapEntries[kind]?.record(Double(count)) }
        for (kind, count) in summary.capacity { mapCapacity[kind]?.record(Double(count)) }
    }

    /// Every informer state change (`KubeClusterSource`'s `onStateChange`).
    public func informer(_ resource: String, _ informerState: InformerState) {
        let now = clock.now
        switch informerState {
        case .backingOff:
            state.withLock { if $0.backingOffSince[resource] == nil { $0.backingOffSince[resource] = now } }
        case .watching:
            let restart = state.withLock { s -> Bool in
                s.backingOffSince[resource] = nil
                return !s.watched.insert(resource).inserted
            }
            if restart { counter("portway_watch_restarts_total", resource).increment() }
        case .relisting:
            counter("portway_relists_total", resource).increment()
        case .absent:
            state.withLock { $0.backingOffSince[resource] = nil }
        default:
            break
        }
    }

    /// A change applied to the proxy's route table (`L7ProxyOutput`'s `onRouteChange`): per event
    /// of it, informer event → table swapped into `portway_route_change_seconds`.
    public func routeChanged(_ trace: RouteChangeTrace) {
        guard let swapped = trace.swapped else { return }
        for event in trace.events { routeChange.recordNanoseconds(Int64(max(0, swapped - event.received) * 1e9)) }
    }

    /// The Gateway leader election's role changes.
    public func leadership(_ leading: Bool) { leader.record(leading ? 1 : 0) }

    /// The proxy ports wanted but not listening after the proxy output's last step.
    public func proxyPortsPending(_ pending: Set<UInt16>) { state.withLock { $0.proxyPending = pending } }

    private func counter(_ name: String, _ resource: String) -> CoreMetrics.Counter {
        handles.withLock { all in
            let key = name + "|" + resource
            if let counter = all[key] { return counter }
            let counter = CoreMetrics.Counter(label: name, dimensions: [("resource", resource)], factory: factory)
            all[key] = counter
            return counter
        }
    }

    // MARK: - what the health listener answers

    /// A verdict with its reasons (the body of `/healthz` and `/readyz`).
    public struct Verdict: Sendable, Equatable {
        public var ok: Bool
        public var reasons: [String]
    }

    /// `/healthz`.
    public func health() -> Verdict {
        let now = clock.now
        return state.withLock { s in
            var reasons: [String] = []
            for (resource, since) in s.backingOffSince.sorted(by: { $0.key < $1.key }) where now - since > stuckAfter {
                reasons.append("\(resource): informer backing off for \((now - since).components.seconds) s")
            }
            if s.phase == .serving, let interval = resyncInterval, let last = s.lastWrite, now - last > interval * 2 + .seconds(60) {
                reasons.append("no successful map write for \((now - last).components.seconds) s (resync every \(interval.components.seconds) s)")
            }
            return Verdict(ok: reasons.isEmpty, reasons: reasons.isEmpty ? ["ok (\(s.phase.rawValue))"] : reasons)
        }
    }

    /// `/readyz`.
    public func readiness() -> Verdict {
        state.withLock { s in
            switch s.phase {
            case .standby:
                return Verdict(ok: true, reasons: ["standing by to take over: the proxy ports listen, the previous agent serves until it stops"])
            case .starting:
                return Verdict(ok: false, reasons: ["the first full sync is not programmed yet"])
            case .serving:
                if !s.firstSync { return Verdict(ok: false, reasons: ["the first full sync is not programmed yet"]) }
                if !s.proxyPending.isEmpty {
                    return Verdict(ok: false, reasons: ["proxy ports not listening: \(s.proxyPending.sorted().map(String.init).joined(separator: ", "))"])
                }
                return Verdict(ok: true, reasons: ["ok: generation \(s.generation) programmed"])
            }
        }
    }

    /// `/metrics`.
    public func metricsText() -> String { registry.emitToString() }
}
