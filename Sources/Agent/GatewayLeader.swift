import Foundation
import GatewayCore
import KubeAPI
import KubeModels
import LoadBalancer
import Logging
import Runtime
import ServiceLifecycle
import Synchronization

/// What the leader's Gateway controller is told.
public enum GatewayControllerEvent: Sendable {
    /// The cluster state, as the pipeline gets it (a `ForwardingSource` copies it here).
    case source(SourceEvent)
    /// This agent became (true) or stopped being (false) the leader.
    case leadership(Bool)
    /// Every Node, from the Node informer the controller runs while leading (term `term`): the
    /// agents' own sources see only their own Node, the Gateways' NodePort addresses need all.
    case nodes(term: Int, [Node])
    /// Every node report Lease (`NodeProgramReport`), from the informer the controller runs while
    /// leading (term `term`), after its list and after each change.
    case reports(term: Int, [Lease])
}

/// The Gateway control plane's leader-only half: while this agent holds the Lease, it keeps the
/// Gateways' Services and the Gateway API status (`GatewayWriters`) in line with the cluster
/// state. Every agent runs it and folds the state; only the leader writes. While leading it also
/// watches every Node (the NodePort Gateways' `status.addresses`; followers do not pay for that
/// watch). A pass runs when this agent becomes leader (once its Node list is in), after each batch
/// of changes that touch a Gateway (or one of the `portway-gw-` Services) and when a Node's
/// InternalIP changes; a pass with failed writes is retried after `retryDelay`.
public struct GatewayLeaderController: ServiceLifecycle.Service {
    /// Its loop: a failed pass is its deadline (tried again after `retryDelay`).
    let loop: CoalescingLoop<GatewayControllerEvent>
    public let writers: GatewayWriters
    let logger: Logger
    let retryDelay: Duration
    /// The leader's Node informer (every Node; list selectors are ignored).
    let nodeInformerOptions: InformerOptions
    /// Called after each pass (tests, metrics).
    let onPass: (@Sendable (GatewayWriteReport) -> Void)?
    /// Where the nodes' report Leases are (the agents' namespace); nil: not watched, the status is
    /// the build's alone.
    let reportNamespace: String?

    public init(
        writers: GatewayWriters, logger: Logger = Logger(label: "portway.gateway.leader"),
        retryDelay: Duration = .seconds(5), nodeInformerOptions: InformerOptions = InformerOptions(),
        reportNamespace: String? = nil, onPass: (@Sendable (GatewayWriteReport) -> Void)? = nil
    ) {
        self.reportNamespace = reportNamespace
        self.loop = CoalescingLoop()
        self.writers = writers
        self.logger = logger
        self.retryDelay = retryDelay
        var options = nodeInformerOptions
        options.list = ListOptions()
        self.nodeInformerOptions = options
        self.onPass = onPass
    }

    /// Tells the controller something (from any task or thread).
    public func send(_ event: GatewayControllerEvent) { loop.send(event) }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await control() }
    }

    private func control() async {
        var index = ClusterIndex()
        var synced = false
        var leading = false
        // The Node informer of the current term, and what it last reported (nil: not listed yet).
        var term = 0
        var nodeWatch: Task<Void, Never>?
        var allNodes: [Node]?
        // The nodes' reports of this term (nil: not listed yet), each with when this agent saw it
        // change (its own clock: a node's clock may differ) and how long it lives unrenewed.
        var reportWatch: Task<Void, Never>?
        var reports: [String: ObservedReport]?
        // The live reports the last pass wrote from: a pass is due when they change (a report, a
        // node joining, a report going stale).
        var passLive: [String: NodeProgramReport] = [:]
        var retryAt: ContinuousClock.Instant?
        defer {
            nodeWatch?.cancel()
            reportWatch?.cancel()
        }
        await loop.run { batch, deadlinePassed in
            let now = ContinuousClock.now
            // The deadline is a retry (or a report going stale: see `live` below).
            var due = false
            if deadlinePassed, let at = retryAt, at <= now {
                due = true
                retryAt = nil
            }
            for event in batch {
                switch event {
                case .reports(let from, let leases):
                    guard from == term, leading else { continue }
                    var next: [String: ObservedReport] = [:]
                    let wallNow = Date()
                    for lease in leases {
                        guard let node = lease.metadata.labels?[NodeProgramReport.label] ?? lease.spec?.holderIdentity else { continue }
                        let lifetime = Duration.seconds(lease.spec?.leaseDurationSeconds ?? 40)
                        let seenAt: ContinuousClock.Instant
                        if let seen = reports?[node] {
                            // A change seen in this term: now, on this agent's clock.
                            seenAt = seen.version == lease.metadata.resourceVersion ? seen.seenAt : now
                        } else {
                            // First seen in this term (its list): aged by its renewTime on the wall
                            // clock, so a node dead before this term is not taken as live for a whole lifetime.
                            seenAt = now - Self.age(renewTime: lease.spec?.renewTime, wallNow: wallNow, atMost: lifetime)
                        }
                        next[node] = ObservedReport(
                            report: NodeProgramReport(lease: lease), version: lease.metadata.resourceVersion, seenAt: seenAt, lifetime: lifetime)
                    }
                    if reports == nil { due = true }
                    reports = next
                case .nodes(let from, let nodes):
                    guard from == term, leading else { continue }  // From an earlier term.
                    if allNodes.map(Self.internalIPs) != Self.internalIPs(nodes) { due = true }
                    allNodes = nodes
                case .source(.snapshot(let snapshot)):
                    index = ClusterIndex(Self.leaderInput(snapshot))
                    synced = true
                    due = true
                case .source(.changes(let changes)):
                    for change in changes where Self.isLeaderInput(change) {
                        let touched = index.apply(change)
                        if !touched.gateways.isEmpty || touched.services.contains(where: { $0.name.hasPrefix(GatewayServices.namePrefix) }) {
                            due = true
                        }
                        // The leader writes every Portway GatewayClass's status, with or without
                        // Gateways of that class (a new class, a generation bump).
                        if case .gatewayClasses = change { due = true }
                        // A BackendTLSPolicy's status (and its CA ConfigMaps') is the leader's too;
                        // they touch Services, not Gateways.
                        switch change {
                        case .backendTLSPolicies: due = true
                        case .configMaps where !touched.services.isEmpty: due = true
                        default: break
                        }
                    }
                case .leadership(let now):
                    guard now != leading else { continue }
                    leading = now
                    // A new term starts from what the objects hold, not from what an earlier term wrote.
                    if now { writers.reset() }
                    term += 1
                    nodeWatch?.cancel()
                    nodeWatch = now ? watchNodes(term: term) : nil
                    allNodes = nil
                    reportWatch?.cancel()
                    reportWatch = now ? reportNamespace.map { watchReports(term: term, namespace: $0) } : nil
                    reports = nil
                    passLive = [:]
                    retryAt = nil
                    due = now
                }
            }
            // A report that changed, or a node that joined or left the live set.
            let live = Self.live(reports, nodes: allNodes, now: now)
            if live != passLive { due = true }
            let listed = reportNamespace == nil || reports != nil
            guard leading else { return nil }
            if due, synced, listed, let allNodes {
                var snapshot = index.snapshot
                snapshot.nodes = allNodes
                let report = await writers.write(snapshot, reports: live)
                passLive = live
                for error in report.errors { logger.warning("\(error)") }
                onPass?(report)
                // A pass with failed writes is tried again (whole) after the delay.
                retryAt = report.errors.isEmpty ? nil : ContinuousClock.now + retryDelay
            }
            return [retryAt, Self.expiry(of: reports)].compactMap { $0 }.min()
        }
    }
}

extension GatewayLeaderController {
    /// What the leader's passes read of the cluster: everything but the endpoints (EndpointSlices,
    /// Endpoints). The status and Services it writes depend on the Gateway API objects, the
    /// Services (a backendRef's Service and port exist or not; the Gateways' own Services) and the
    /// Nodes, never on a Service's endpoints, which are most of a cluster's objects: the pipeline
    /// indexes them already, a second index of them cost every agent ~3 MB per 10k Services.
    static func leaderInput(_ snapshot: ClusterSnapshot) -> ClusterSnapshot {
        var out = snapshot
        out.endpointSlices = []
        out.endpoints = []
        return out
    }

    /// Whether `change` is of a kind `leaderInput` keeps.
    static func isLeaderInput(_ change: ClusterChange) -> Bool {
        switch change {
        case .endpointSlices, .endpoints: false
        default: true
        }
    }
}

/// A node's report as the leader saw it.
struct ObservedReport: Hashable {
    /// nil: the Lease carries no report this agent can read.
    var report: NodeProgramReport?
    var version: String?
    /// When the Lease last changed, on this agent's clock.
    var seenAt: ContinuousClock.Instant
    /// Its `leaseDurationSeconds`: stale when not renewed within it.
    var lifetime: Duration

    var expiry: ContinuousClock.Instant { seenAt + lifetime }
}

extension GatewayLeaderController {
    /// The reports of the nodes that should serve the Gateways: every Node the leader knows whose
    /// agent's report is not stale (renewed within its lifetime). With the Node list not in yet, the
    /// live reports alone.
    static func live(_ reports: [String: ObservedReport]?, nodes: [Node]?, now: ContinuousClock.Instant) -> [String: NodeProgramReport] {
        guard let reports else { return [:] }
        let known = nodes.map { Set($0.map(\.metadata.name)) }
        var out: [String: NodeProgramReport] = [:]
        for (node, observed) in reports where observed.expiry > now && known?.contains(node) ?? true {
            if let report = observed.report { out[node] = report }
        }
        return out
    }

    /// How long ago `renewTime` (a Lease MicroTime) was by `wallNow`, between 0 (unknown, in the
    /// future: clocks differ) and `limit`.
    static func age(renewTime: String?, wallNow: Date, atMost limit: Duration) -> Duration {
        guard let renewTime, let renewed = Self.date(rfc3339: renewTime) else { return .zero }
        let seconds = wallNow.timeIntervalSince(renewed)
        guard seconds > 0 else { return .zero }
        return min(.milliseconds(Int64(seconds * 1000)), limit)
    }

    /// A Lease time (RFC 3339, with or without fractional seconds) as a Date.
    static func date(rfc3339 text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    /// When the next live report goes stale (a pass is due then).
    static func expiry(of reports: [String: ObservedReport]?) -> ContinuousClock.Instant? {
        let now = ContinuousClock.now
        return reports?.values.map(\.expiry).filter { $0 > now }.min()
    }

    /// Runs an informer on the nodes' report Leases (label `portway.io/node-report`) in
    /// `namespace` until cancelled; once listed, reports them all after the list and each change.
    /// A refusal to list (RBAC of an older release) counts as no reports.
    private func watchReports(term: Int, namespace: String) -> Task<Void, Never> {
        let loop = loop, logger = logger
        var options = nodeInformerOptions
        options.list = ListOptions(namespace: namespace, labelSelector: NodeProgramReport.label)
        options.forbiddenIsEmpty = true
        // The informer's objects by name, kept from its events; reported whole once it has listed.
        let leases = Mutex<(listed: Bool, byName: [String: Lease])>((false, [:]))
        let report: @Sendable () -> Void = {
            let all = leases.withLock { $0.byName.values.sorted { $0.metadata.name < $1.metadata.name } }
            loop.send(.reports(term: term, all))
        }
        let informer = Informer<Lease>(
            client: writers.client, options: options,
            onStateChange: { state in
                if case .backingOff(_, _, let reason) = state { logger.warning("node reports (Leases in \(namespace)): \(reason)") }
            },
            handler: { event in
                // Every change counts, a renewal too: it keeps the report live.
                let listed = leases.withLock { state in
                    switch event {
                    case .added(let lease), .updated(_, let lease): state.byName[lease.metadata.name] = lease
                    case .deleted(let lease): state.byName[lease.metadata.name] = nil
                    }
                    return state.listed
                }
                if listed { report() }
            })
        return Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await informer.run() }
                await informer.waitForSync()
                guard !Task.isCancelled else { return }
                leases.withLock { $0 = (true, Dictionary(informer.store.items.map { ($0.metadata.name, $0) }, uniquingKeysWith: { $1 })) }
                report()
                await group.waitForAll()
            }
        }
    }
}

extension GatewayLeaderController {
    /// Runs an informer on every Node until cancelled; once it has listed, reports the whole set
    /// after the list and after each change.
    private func watchNodes(term: Int) -> Task<Void, Never> {
        let loop = loop, logger = logger
        // The informer's objects by name, kept from its events; reported whole once it has listed.
        let nodes = Mutex<(listed: Bool, byName: [String: Node])>((false, [:]))
        let report: @Sendable () -> Void = {
            let all = nodes.withLock { $0.byName.values.sorted { $0.metadata.name < $1.metadata.name } }
            loop.send(.nodes(term: term, all))
        }
        let informer = Informer<Node>(
            client: writers.client, options: nodeInformerOptions,
            onStateChange: { state in
                if case .backingOff(_, _, let reason) = state { logger.warning("nodes (the Gateways' NodePort addresses): \(reason)") }
            },
            handler: { event in
                // Nodes update their status often; only a change of their InternalIPs is news here.
                var relevant = true
                if case .updated(let old, let new) = event { relevant = Self.internalIPs([old]) != Self.internalIPs([new]) }
                let listed = nodes.withLock { state in
                    switch event {
                    case .added(let node), .updated(_, let node): state.byName[node.metadata.name] = node
                    case .deleted(let node): state.byName[node.metadata.name] = nil
                    }
                    return state.listed
                }
                if listed && relevant { report() }
            })
        return Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await informer.run() }
                await informer.waitForSync()
                guard !Task.isCancelled else { return }
                // From now on the handler reports; start from the store as listed.
                nodes.withLock { $0 = (true, Dictionary(informer.store.items.map { ($0.metadata.name, $0) }, uniquingKeysWith: { $1 })) }
                report()
                await group.waitForAll()
            }
        }
    }

    /// The addresses a NodePort Gateway's status takes from Nodes: a pass is due when they change.
    static func internalIPs(_ nodes: [Node]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for node in nodes { out[node.metadata.name] = (node.status?.addresses ?? []).filter { $0.type == "InternalIP" }.map(\.address) }
        return out
    }
}

/// Leader election as a service: runs a `LeaderElector` on the Lease of `config`, reporting each
/// change of role; on graceful shutdown it finishes its round and releases the Lease, so another
/// agent takes over at once instead of after the lease duration.
public struct LeaderElectionService: ServiceLifecycle.Service {
    public let elector: LeaderElector

    public init(
        client: KubeClient, config: LeaderElectionConfig, logger: Logger = Logger(label: "portway.leader"),
        onChange: @escaping @Sendable (Bool) -> Void
    ) {
        let lease = "\(config.namespace)/\(config.name)"
        elector = LeaderElector(client: client, config: config, onChange: { role in
            switch role {
            case .leader:
                logger.notice("leading (Lease \(lease)): writing the Gateway Services and status")
                onChange(true)
            case .follower(let holder):
                logger.info("following (Lease \(lease), held by \(holder ?? "nobody"))")
                onChange(false)
            case .stopped:
                logger.info("left the election (Lease \(lease))")
                onChange(false)
            }
        }, onError: { status in
            // Once per change of the API's answer, not per retry: the elector keeps it in `status`.
            guard let error = status.error else {
                logger.notice("leader election: the Lease \(lease) can be read and written again")
                return
            }
            let hint = status.namespaceMissing
                ? "; create the namespace \(config.namespace) or pass --lease-namespace" : ""
            logger.warning("leader election: cannot take part, the API server refuses the Lease \(lease): \(error)\(hint); this agent cannot lead (write the Gateways' Services and status) until it can")
        })
    }

    public func run() async throws {
        let elector = elector
        await withGracefulShutdownHandler {
            await elector.run()
        } onGracefulShutdown: {
            Task { await elector.stop() }
        }
    }
}

/// A source that passes everything its inner source sends to the pipeline and also to a second
/// consumer (the leader's Gateway controller), so both see one set of informers.
public struct ForwardingSource<Inner: ClusterStateSource>: ClusterStateSource {
    public let inner: Inner
    public let copy: @Sendable (SourceEvent) -> Void

    public init(_ inner: Inner, copy: @escaping @Sendable (SourceEvent) -> Void) {
        self.inner = inner
        self.copy = copy
    }

    public func run(sink: @escaping SourceSink) async {
        let copy = copy
        await inner.run { event in
            copy(event)
            sink(event)
        }
    }
}

/// The leader's settings (`portway agent` flags).
public struct GatewayLeaderSettings: Sendable {
    public var leaseName: String
    public var leaseNamespace: String
    public var leaseDuration: Duration
    public var renewDeadline: Duration
    public var retryPeriod: Duration
    /// The `spec.controllerName` of Portway's GatewayClasses.
    public var controllerName: String
    /// NodePort or LoadBalancer: the type of the Gateways' Services.
    public var serviceType: String

    public init(
        leaseName: String = "portway-gateway-leader", leaseNamespace: String = "portway-system", leaseDuration: Duration = .seconds(15),
        renewDeadline: Duration = .seconds(10), retryPeriod: Duration = .seconds(2),
        controllerName: String = GatewayOptions.defaultControllerName, serviceType: String = "NodePort"
    ) {
        self.leaseName = leaseName
        self.leaseNamespace = leaseNamespace
        self.leaseDuration = leaseDuration
        self.renewDeadline = renewDeadline
        self.retryPeriod = retryPeriod
        self.controllerName = controllerName
        self.serviceType = serviceType
    }
}

/// The controller and the election of one agent, wired together: the election tells the
/// controller its role. Add `controller` then `election` to the ServiceGroup after the pipeline's
/// services (stopped in reverse: the Lease is released first), and feed the controller with
/// `ForwardingSource(source) { leadership.controller.send(.source($0)) }`.
public struct GatewayLeadership: Sendable {
    public let controller: GatewayLeaderController
    public let election: LeaderElectionService

    public init(
        client: KubeClient, identity: String, settings: GatewayLeaderSettings, logger: Logger = Logger(label: "portway.gateway.leader"),
        onPass: (@Sendable (GatewayWriteReport) -> Void)? = nil, onLeadership: (@Sendable (Bool) -> Void)? = nil
    ) {
        let writers = GatewayWriters(
            client: client, options: .node(controllerName: settings.controllerName), serviceType: settings.serviceType, logger: logger)
        // The nodes publish their reports beside the election's Lease (`NodeReportPublisher`).
        controller = GatewayLeaderController(writers: writers, logger: logger, reportNamespace: settings.leaseNamespace, onPass: onPass)
        let config = LeaderElectionConfig(
            namespace: settings.leaseNamespace, name: settings.leaseName, identity: identity, leaseDuration: settings.leaseDuration,
            renewDeadline: settings.renewDeadline, retryPeriod: settings.retryPeriod)
        let controller = controller
        election = LeaderElectionService(client: client, config: config, logger: logger) { leading in
            controller.send(.leadership(leading))
            onLeadership?(leading)
        }
    }

    /// With the client of the cluster source (one connection setup for both).
    public init(source: KubeClusterSource, identity: String, settings: GatewayLeaderSettings, onLeadership: (@Sendable (Bool) -> Void)? = nil) {
        self.init(client: source.client, identity: identity, settings: settings, onLeadership: onLeadership)
    }
}
