import BPFMaps
import GatewayCore
import KubeAPI
import KubeModels
import LoadBalancer
import Logging
import Runtime
import ServiceLifecycle

/// Installs the datapath programs onto the pinned maps, returning a description of what was
/// attached for the log. Blocking: it runs on the blocking executor.
public typealias DatapathInstaller = @Sendable (_ maps: MapSet) throws -> [String]

/// What the reconcile loop is told (the periodic resync is its loop's deadline).
enum PipelineEvent: Sendable {
    /// With when it reached the pipeline (wall clock, for `RouteChangeTrace`).
    case source(SourceEvent, received: Double)
}

/// The node agent's pipeline:
///
///     source events ─▶ inbox (coalesce) ─▶ keys ─▶ translate (per key) ─▶ diff ─▶ allocate ─▶ outputs
///
/// A source sends a complete snapshot once it has synced (the first full sync, which prunes), then
/// changes; each change names the keys it touches and only those are translated again
/// (`L4Reconciler`). The frontend changes go through the allocation stage (proxy ports) to every
/// output, each in its own task with its own retries (`OutputRunner`). Nothing waits on a timer:
/// what arrives while a step runs is taken together in the next step. A periodic resync runs the
/// full path (translation from scratch, compared with the incremental state) and repairs the outputs.
///
/// The long-lived parts run as services of a swift-service-lifecycle `ServiceGroup`; the pinned
/// maps and attached programs stay when the agent stops.
public struct AgentPipeline: Sendable {
    public let options: AgentOptions
    let logger: Logger
    let installer: DatapathInstaller?
    /// Called after every map write (tests and metrics).
    let onSync: (@Sendable (SyncSummary) -> Void)?
    /// The node's L7 proxy, fed the Gateway route tables after each step (nil: none).
    let proxy: L7ProxyOutput?
    /// Called after every build of the Gateway state (tests and metrics).
    let onGatewayBuild: (@Sendable (GatewayState) -> Void)?

    public init(
        options: AgentOptions, logger: Logger = Logger(label: "portway.agent"), installer: DatapathInstaller? = nil,
        onSync: (@Sendable (SyncSummary) -> Void)? = nil, proxy: L7ProxyOutput? = nil,
        onGatewayBuild: (@Sendable (GatewayState) -> Void)? = nil
    ) {
        self.options = options
        self.logger = logger
        self.installer = installer
        self.onSync = onSync
        self.proxy = proxy
        self.onGatewayBuild = onGatewayBuild
    }

    /// The pinned maps; with `waitForPinDirectory`, waits (until cancelled) while another agent holds
    /// them. Proxy sockets pre-opened for the take-over are given up after `takeOverPatience`: while
    /// they listen unserved they hold back their share of new Gateway connections.
    private func openMaps(executor: BlockingExecutor) async throws -> MapSet {
        let options = options
        let started = ContinuousClock.now
        var announced = false
        var released = false
        while true {
            do {
                return try await executor.run { () throws -> MapSet in try MapSet.openOrCreate(bpffs: options.bpffs, sizes: options.mapSizes) }
            } catch BPFMapError.locked(let directory, let holder) where options.waitForPinDirectory {
                if !announced {
                    logger.notice("taking over: waiting for agent \(holder.map { "PID \($0)" } ?? "?") to release \(directory)")
                    announced = true
                }
                if !released, ContinuousClock.now - started > Self.takeOverPatience {
                    logger.warning("taking over: the previous agent did not stop within \(Self.takeOverPatience); closing the proxy ports opened for it (still waiting)")
                    proxy?.releasePreopened()
                    released = true
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// How long a take-over keeps its pre-opened proxy sockets while the previous agent runs on.
    static let takeOverPatience: Duration = .seconds(30)

    /// Opens (or creates) the pinned maps, installs the datapath if an installer is given, re-adopts
    /// the IDs in the pins without writing, and returns the services to run: source, reconciler and
    /// outputs, in start order (a ServiceGroup stops them in reverse: the source first).
    public func services(source: some ClusterStateSource) async throws -> [any ServiceLifecycle.Service] {
        let executor = BlockingExecutor(label: "portway.blocking")
        let maps = try await openMaps(executor: executor)
        logger.info("pinned maps ready in \(maps.directory)")
        if let installer {
            let attached = try await executor.run { () throws -> [String] in try installer(maps) }
            logger.info("datapath attached: \(attached.joined(separator: ", "))")
        }
        let writer = try await executor.run { () throws -> MapWriter in try MapWriter(maps: maps) }
        let adopted = writer.programmed
        logger.info(
            "re-adopted \(adopted.services.values.filter { $0.master != nil }.count) frontends and \(adopted.backends.count) backends from the pins; no change until the first full sync")
        let output = MapWriterOutput(writer: writer, executor: executor, onSync: onSync)
        // Each Gateway listener keeps the proxy port its frontends have in the pins.
        let inherited = adopted.l7ProxyPorts
        if !inherited.isEmpty { logger.info("\(Set(inherited.values).count) proxy ports found in the pins; kept for their Gateways") }
        return services(source: source, outputs: [output], inheritedProxyPorts: inherited)
    }

    /// The services over given outputs (tests use in-memory ones).
    /// - Parameter inheritedProxyPorts: the proxy port of each L7LB frontend already programmed.
    public func services(
        source: some ClusterStateSource, outputs: [any L4MapOutput], inheritedProxyPorts: [Frontend: UInt16] = [:]
    ) -> [any ServiceLifecycle.Service] {
        let loop = CoalescingLoop<PipelineEvent>()
        // The node's report counts a Gateway port as served once the maps hold its redirect too.
        // The first output is the map writer (the only one the agent runs).
        var onRedirects: (@Sendable (RedirectsWritten) -> Void)?
        if let proxy { onRedirects = { @Sendable redirects in proxy.redirectsWritten(redirects) } }
        let runners = outputs.enumerated().map { i, output in
            OutputRunner(output: output, policy: options.retry, logger: logger, onRedirects: i == 0 ? onRedirects : nil)
        }
        if !outputs.isEmpty { proxy?.expectRedirects() }
        let reconciler = ReconcileService(
            options: options, loop: loop, runners: runners, proxy: proxy, onGatewayBuild: onGatewayBuild,
            inheritedProxyPorts: inheritedProxyPorts, logger: logger)
        let proxyServices: [any ServiceLifecycle.Service] = proxy.map { [$0] } ?? []
        return proxyServices + runners.map { OutputService(runner: $0) } + [reconciler, SourceService(source: source, loop: loop)]
    }

    /// Runs the pipeline until the task is cancelled (tests; the agent command runs `services` in
    /// its ServiceGroup with signal handling).
    public func run(source: some ClusterStateSource) async throws {
        let group = ServiceGroup(configuration: .init(services: try await services(source: source).map { .init(service: $0) }, logger: logger))
        try await group.run()
        logger.info("stopped; pinned maps (and attached programs) stay in place")
    }
}

/// Runs a source, its events going straight into the reconciler's loop; stops on graceful
/// shutdown. Like every service of the pipeline it ends only when told to: a ServiceGroup stops its
/// services one by one in reverse order, and one that ended by itself meanwhile would be an error.
struct SourceService<Source: ClusterStateSource>: ServiceLifecycle.Service {
    let source: Source
    let loop: CoalescingLoop<PipelineEvent>

    func run() async throws {
        let loop = loop
        await cancelWhenGracefulShutdown {
            await source.run { loop.send(.source($0, received: RouteChangeTrace.now())) }
        }
    }
}

/// Runs one output until shutdown.
struct OutputService: ServiceLifecycle.Service {
    let runner: OutputRunner

    func run() async throws {
        await cancelWhenGracefulShutdown { await runner.run() }
    }
}

/// The reconcile loop: coalesce → keys → translate → diff → allocate → outputs; its deadline is
/// the next periodic resync.
struct ReconcileService: ServiceLifecycle.Service {
    let options: AgentOptions
    let loop: CoalescingLoop<PipelineEvent>
    let runners: [OutputRunner]
    let proxy: L7ProxyOutput?
    let onGatewayBuild: (@Sendable (GatewayState) -> Void)?
    let inheritedProxyPorts: [Frontend: UInt16]
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await reconcile() }
    }

    private func send(_ message: OutputMessage) {
        for runner in runners { runner.send(message) }
    }

    private func reconcile() async {
        var reconciler = L4Reconciler(options: options.translatorOptions)
        // The Gateway API as this node serves it: tables, status, proxy ports, L7 frontends.
        var gateway = GatewayPlan(options: options.gateway, proxyPortRange: options.proxyPorts, inherited: inheritedProxyPorts)
        var publishedTables: [UInt16: PortRouteTable]?
        // The tables name certificate Secrets only; their bytes change on their own (a rotation).
        var publishedCertificates: [NamespacedName: TLSMaterial] = [:]
        var publishedReport: NodeProgramReport?
        var draft: NodeProgramReport?
        var gatewayWarnings = Set<GatewayWarning>()
        // What the proxy does not serve (listeners left out, ports nothing listens on), logged on change.
        var servingWarnings = Set<GatewayWarning>()
        var synced = false
        var nodeMissing: Bool?
        let clock = ContinuousClock()
        var nextResync: ContinuousClock.Instant?
        await loop.run { batch, deadlinePassed in
            let start = clock.now
            let stepStarted = RouteChangeTrace.now()
            // The step's changes with when each arrived, traced if they change the proxy's tables.
            var arrived: [(ClusterChange, Double)] = []
            var changes: FrontendChanges = [:]
            var pending: [ClusterChange] = []
            var translated = 0
            var fullState: DesiredL4State?
            var resync = false
            // What of the Gateway state must be built again: everything on a full path, else the
            // Gateways a step affected.
            var gatewayWork = GatewayPlan.Work.none

            func flush() {
                guard !pending.isEmpty else { return }
                let step = reconciler.apply(pending)
                gatewayWork.formUnion(gateway.affected(step.touched, index: reconciler.index))
                pending = []
                translated += step.translated.count
                changes.merge(step.changes) { _, new in new }
                for warning in step.newWarnings { logger.warning("\(warning)") }
            }
            for event in batch {
                switch event {
                case .source(.snapshot(let snapshot), _) where !synced:
                    // The first full sync: translated from scratch; prunes what the pins hold beyond it.
                    let step = reconciler.replaceAll(with: snapshot)
                    for warning in step.newWarnings { logger.warning("\(warning)") }
                    translated += step.translated.count
                    changes = [:]
                    fullState = reconciler.state
                    synced = true
                    gatewayWork = .all
                case .source(.snapshot(let snapshot), _):
                    // A whole reload (files): diffed by key against what is indexed.
                    flush()
                    pending = ClusterIndex.changes(from: reconciler.index.snapshot, to: snapshot)
                    flush()
                case .source(.changes(let more), let received):
                    if synced {
                        pending += more
                        if proxy != nil { arrived += more.map { ($0, received) } }
                    }
                }
            }
            if deadlinePassed {
                // The periodic resync: the full path and a repair of every output.
                resync = synced
                if synced { gatewayWork = .all }
                nextResync = nil
            }
            flush()
            let builtGateways = synced && gatewayWork != .none
            if synced && gatewayWork != .none && !gateway.isIdle(index: reconciler.index) {
                // Gateway frontends go to the proxy; a Service port whose Gateway came or went is
                // sent again, marked or not.
                let flipped = gateway.rebuild(gatewayWork, index: reconciler.index)
                onGatewayBuild?(gateway.state)
                if fullState == nil && !flipped.isEmpty {
                    for (frontend, entry) in reconciler.desired where flipped.contains(GatewayPlan.servicePort(of: entry)) {
                        changes[frontend] = .some(entry)
                    }
                }
                for warning in gateway.state.warnings where !gatewayWarnings.contains(warning) { logger.warning("gateway: \(warning)") }
                gatewayWarnings = Set(gateway.state.warnings)
            }
            if let state = fullState {
                send(.sync(gateway.program(state)))
                if !changes.isEmpty { send(.changes(gateway.program(changes))) }
            } else if !changes.isEmpty {
                send(.changes(gateway.program(changes)))
            }
            if resync {
                // The full path: from scratch, it must agree with the incremental state.
                let step = reconciler.replaceAll(with: reconciler.index.snapshot)
                if !step.changes.isEmpty {
                    logger.warning("resync: \(step.changes.count) frontends differed from the incremental state; corrected")
                }
                send(.repair(gateway.program(reconciler.state)))
                logger.info("resync: \(reconciler.desired.count) frontends translated from scratch; repairing the outputs")
            }
            if synced {
                let serving = gateway.servingWarnings
                for warning in serving where !servingWarnings.contains(warning) { logger.warning("gateway: \(warning)") }
                for warning in servingWarnings.subtracting(serving).sorted(by: { $0.description < $1.description }) {
                    logger.notice("gateway: resolved: \(warning)")
                }
                servingWarnings = Set(serving)
            }
            if synced, let proxy {
                let tables = gateway.routeTables
                let certificates = gateway.state.certificates
                // What the proxy is to serve, per Gateway generation: a generation bump that
                // changes no table is news to the leader too (the node's report).
                // Drafted again only after a Gateway build (it reads every route: not per endpoint change).
                if builtGateways || draft == nil { draft = NodeProgramReport.draft(state: gateway.state, index: reconciler.index) }
                var report = draft ?? NodeProgramReport()
                // A listener port whose Service has no frontend here yet has no proxy port: not served.
                for table in gateway.state.tables where gateway.proxyPort(gateway: table.gateway, port: table.port) == nil {
                    let message = "the Gateway's Service has no frontend on this node yet"
                    report.gateways[table.gateway.description]?.wait(for: "port \(table.port)", message)
                    for set in Set(table.listeners.compactMap(\.listenerSet)) { report.listenerSets?[set.description]?.wait(for: "port \(table.port)", message) }
                }
                if tables != publishedTables || certificates != publishedCertificates || report != publishedReport {
                    let trace = RouteChangeTrace(
                        events: arrived.map { $0.traced(received: $1) }, stepStarted: stepStarted, published: RouteChangeTrace.now())
                    proxy.publish(tables, certificates: certificates, report: report, trace: trace)
                    publishedTables = tables
                    publishedCertificates = certificates
                    publishedReport = report
                }
            }
            if synced && reconciler.nodeObjectMissing != nodeMissing {
                let previous = nodeMissing
                nodeMissing = reconciler.nodeObjectMissing
                if reconciler.nodeObjectMissing {
                    logger.warning(
                        "no Node named \(options.nodeName): NodePort frontends on the node's own addresses cannot be made (give --node-ip, or check --node-name)")
                } else if previous != nil {
                    logger.notice("Node \(options.nodeName) found: NodePort frontends on \(reconciler.nodeIPv4.map(\.description).joined(separator: ", "))")
                }
            }
            if synced {
                logger.debug("reconciled \(translated) keys: \(changes.count) frontends changed in \(clock.now - start)")
            }
            // The first resync one interval after the first sync, then one interval after each.
            if synced, nextResync == nil, let interval = options.resyncInterval { nextResync = clock.now + interval }
            return nextResync
        }
    }
}
