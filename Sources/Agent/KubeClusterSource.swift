import Foundation
import KubeAPI
import Runtime
import Synchronization
import KubeModels
import LoadBalancer
import Logging

/// A ClusterStateSource backed by informers on the Kubernetes API, one per kind of
/// `ResourceRegistry` watched in this scope (Services, EndpointSlices or Endpoints, the agent's own
/// Node unless `--node-ip` is given, the Gateway API kinds and Namespaces). A Gateway API kind whose
/// CRD is not installed counts as empty (one warning) and is looked for again every minute. A complete snapshot is sent once every informer has synced;
/// after it each informer event is sent at once as a change of its key (no debounce: the pipeline
/// takes together what arrives while it works). When the API server goes away the informers back
/// off and nothing is sent, so the datapath keeps its last state; when it returns they resync
/// (relisting if needed) and what changed meanwhile arrives as changes.
public struct KubeClusterSource: ClusterStateSource {
    public let client: KubeClient
    public let scope: WatchScope
    /// Base informer options (timeouts, backoff); list selectors come from the registry.
    public let informerOptions: InformerOptions
    public let onStateChange: @Sendable (String, InformerState) -> Void

    public init(
        client: KubeClient, scope: WatchScope, informerOptions: InformerOptions = InformerOptions(),
        onStateChange: @escaping @Sendable (String, InformerState) -> Void = { _, _ in }
    ) {
        self.client = client
        self.scope = scope
        self.informerOptions = informerOptions
        self.onStateChange = onStateChange
    }

    /// One running informer, with its kind's type erased.
    struct WatchedInformer: Sendable {
        let run: @Sendable () async -> Void
        let waitForSync: @Sendable () async -> Void
        let fill: @Sendable (inout ClusterSnapshot) -> Void
    }

    public func run(sink: @escaping SourceSink) async {
        // Serializes pushes with the building of the first snapshot: an event sent before the
        // snapshot is in it (stores are updated before handlers run), one sent after follows it.
        let gate = SnapshotGate()
        let informers = ResourceRegistry.kinds.compactMap { watched($0, sink: sink, gate: gate) }
        await withTaskGroup(of: Void.self) { group in
            for informer in informers { group.addTask { await informer.run() } }
            group.addTask {
                for informer in informers { await informer.waitForSync() }
                guard !Task.isCancelled else { return }
                gate.started.withLock { started in
                    var snapshot = ClusterSnapshot()
                    for informer in informers { informer.fill(&snapshot) }
                    sink(.snapshot(snapshot))
                    started = true
                }
            }
            await group.waitForAll()
        }
    }

    private func watched<K: AnyResourceKind>(_ kind: K, sink: @escaping SourceSink, gate: SnapshotGate) -> WatchedInformer? {
        let declaration = kind.declaration
        guard let selectors = declaration.selectors(scope) else { return nil }
        var options = informerOptions
        options.absentIsEmpty = declaration.optional
        options.forbiddenIsEmpty = declaration.forbiddenIsNone
        options.list = ListOptions(labelSelector: selectors.labelSelector, fieldSelector: selectors.fieldSelector)
        let name = K.Resource.resource.plural
        let report = onStateChange
        let informer = Informer<K.Resource>(
            client: client, options: options, onStateChange: { report(name, $0) },
            handler: { event in
                let change: ClusterChange?
                switch event {
                case .added(let object), .updated(_, let object): change = declaration.change(object.metadata, [object])
                case .deleted(let object): change = declaration.change(object.metadata, [])
                }
                guard let change else { return }
                // Before the first snapshot, changes are in it already: not sent.
                gate.started.withLock { started in if started { sink(.changes([change])) } }
            })
        return WatchedInformer(
            run: { await informer.run() }, waitForSync: { await informer.waitForSync() },
            fill: { snapshot in
                for object in informer.store.items.sorted(by: { $0.storeKey < $1.storeKey }) { declaration.store(&snapshot, object) }
            })
    }
}

extension KubeClusterSource {
    /// The source `portway agent` uses without `--from-dir`: an explicit kubeconfig (and context),
    /// else in-cluster config when running in a pod, else `$KUBECONFIG` / ~/.kube/config.
    /// Informer trouble is logged: each backoff as a warning with its reason (RBAC errors name
    /// the verb and resource refused), the return to watching after it as a notice.
    public static func fromConfiguration(
        kubeconfig: String?, context: String?, scope: WatchScope,
        logger: Logger = Logger(label: "portway.source.kube"), observe: @escaping @Sendable (String, InformerState) -> Void = { _, _ in }
    ) throws -> KubeClusterSource {
        let config = try ClusterConfig.load(kubeconfig: kubeconfig, context: context)
        logger.info("using the Kubernetes API at \(config.server)")
        let troubled = StateLog()
        let absent = StateLog()
        return KubeClusterSource(
            client: KubeClient(config: config), scope: scope,
            onStateChange: { resource, state in
                observe(resource, state)
                switch state {
                case .backingOff(let next, let delay, let reason):
                    troubled.set(resource, true)
                    logger.warning("\(resource): \(reason); retrying (\(next == .relist ? "relist" : "watch")) in \(delay.shortDescription)")
                case .absent(let retry, let reason):
                    // Once, not at every retry: a cluster without the Gateway API CRDs is a normal setup.
                    if !absent.set(resource, true) {
                        let hint = reason.contains("forbidden") || reason.contains("403")
                            ? "not readable (\(reason)); is the RBAC rule of manifests/portway.yaml granted?"
                            : "not served (\(reason)); are the Gateway API CRDs installed?"
                        logger.warning("\(resource): \(hint) Taken as none; checked again every \(retry.shortDescription)")
                    }
                case .watching:
                    if troubled.set(resource, false) { logger.notice("\(resource): watching again") }
                    if absent.set(resource, false) { logger.notice("\(resource): now served; watching") }
                case .relisting:
                    logger.info("\(resource): relisting")
                default: break
                }
            })
    }
}

/// Whether the first snapshot has been sent; its lock orders pushes around it.
final class SnapshotGate: Sendable {
    let started = Mutex(false)
}

/// Which informers are currently in trouble (so recovery is logged once).
private final class StateLog: Sendable {
    private let troubled = Mutex<Set<String>>([])

    /// Sets the flag; returns whether it was set before.
    @discardableResult
    func set(_ resource: String, _ value: Bool) -> Bool {
        troubled.withLock { troubled in
            let was = troubled.contains(resource)
            if value { troubled.insert(resource) } else { troubled.remove(resource) }
            return was
        }
    }
}
