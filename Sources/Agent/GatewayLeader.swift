import Foundation
import KubeAPI
import KubeModels
import LoadBalancer
import Logging
import ServiceLifecycle

/// What the leader's Gateway controller is told.
public enum GatewayControllerEvent: Sendable {
    /// The cluster state, as the pipeline gets it (a `ForwardingSource` copies it here).
    case source(SourceEvent)
    /// This agent became (true) or stopped being (false) the leader.
    case leadership(Bool)
    /// A write failed: try the whole pass again.
    case retry
}

/// The Gateway control plane's leader-only half: while this agent holds the Lease, it keeps the
/// Gateways' Services and the Gateway API status (`GatewayWriters`) in line with the cluster
/// state. Every agent runs it and folds the state; only the leader writes. A pass runs when this
/// agent becomes leader and after each batch of changes that touch a Gateway (or one of the
/// `portway-gw-` Services); a pass with failed writes is retried after `retryDelay`.
public struct GatewayLeaderController: ServiceLifecycle.Service {
    public let inbox: Inbox<GatewayControllerEvent>
    public let writers: GatewayWriters
    let logger: Logger
    let retryDelay: Duration
    /// Called after each pass (tests, metrics).
    let onPass: (@Sendable (GatewayWriteReport) -> Void)?

    public init(
        inbox: Inbox<GatewayControllerEvent>, writers: GatewayWriters, logger: Logger = Logger(label: "portway.gateway.leader"),
        retryDelay: Duration = .seconds(5), onPass: (@Sendable (GatewayWriteReport) -> Void)? = nil
    ) {
        self.inbox = inbox
        self.writers = writers
        self.logger = logger
        self.retryDelay = retryDelay
        self.onPass = onPass
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await loop() }
    }

    private func loop() async {
        var index = ClusterIndex()
        var synced = false
        var leading = false
        var retry: Task<Void, Never>?
        defer { retry?.cancel() }
        while let batch = await inbox.next() {
            var due = false
            for event in batch {
                switch event {
                case .source(.snapshot(let snapshot)):
                    index = ClusterIndex(snapshot)
                    synced = true
                    due = true
                case .source(.changes(let changes)):
                    for change in changes {
                        let touched = index.apply(change)
                        if !touched.gateways.isEmpty || touched.services.contains(where: { $0.name.hasPrefix(GatewayServices.namePrefix) }) {
                            due = true
                        }
                    }
                case .leadership(let now):
                    guard now != leading else { continue }
                    leading = now
                    // A new term starts from what the objects hold, not from what an earlier term wrote.
                    if now { writers.reset() }
                    due = now
                case .retry:
                    due = true
                }
            }
            guard due, synced, leading else { continue }
            let report = await writers.write(index.snapshot)
            for error in report.errors { logger.warning("\(error)") }
            onPass?(report)
            if !report.errors.isEmpty {
                retry?.cancel()
                let inbox = inbox, delay = retryDelay
                retry = Task {
                    do { try await Task.sleep(for: delay) } catch { return }
                    inbox.push(.retry)
                }
            }
        }
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

    public func run(sink: Inbox<SourceEvent>) async {
        let relay = Inbox<SourceEvent>()
        let inner = inner, copy = copy
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await inner.run(sink: relay) }
            group.addTask {
                while let batch = await relay.next() {
                    for event in batch {
                        copy(event)
                        sink.push(event)
                    }
                }
            }
            await group.next()
            group.cancelAll()
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
/// `ForwardingSource(source) { leadership.controller.inbox.push(.source($0)) }`.
public struct GatewayLeadership: Sendable {
    public let controller: GatewayLeaderController
    public let election: LeaderElectionService

    public init(
        client: KubeClient, identity: String, settings: GatewayLeaderSettings, logger: Logger = Logger(label: "portway.gateway.leader"),
        onPass: (@Sendable (GatewayWriteReport) -> Void)? = nil
    ) {
        let writers = GatewayWriters(
            client: client, options: GatewayOptions(controllerName: settings.controllerName), serviceType: settings.serviceType, logger: logger)
        controller = GatewayLeaderController(inbox: Inbox(), writers: writers, logger: logger, onPass: onPass)
        let config = LeaderElectionConfig(
            namespace: settings.leaseNamespace, name: settings.leaseName, identity: identity, leaseDuration: settings.leaseDuration,
            renewDeadline: settings.renewDeadline, retryPeriod: settings.retryPeriod)
        let inbox = controller.inbox
        election = LeaderElectionService(client: client, config: config, logger: logger) { inbox.push(.leadership($0)) }
    }

    /// With the client of the cluster source (one connection setup for both).
    public init(source: KubeClusterSource, identity: String, settings: GatewayLeaderSettings) {
        self.init(client: source.client, identity: identity, settings: settings)
    }
}
