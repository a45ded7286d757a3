import Foundation
import KubeAPI
import KubeModels
import LoadBalancer
import Logging

/// A ClusterStateSource backed by informers on the Kubernetes API: Services, EndpointSlices (or
/// Endpoints) and the agent's own Node. Snapshots start only after every informer has synced once,
/// and bursts of events are coalesced (`debounce`) into one snapshot. When the API server goes away
/// the informers back off and nothing new is yielded, so the datapath keeps its last state; when it
/// returns they resync (relisting if needed) and a snapshot follows if anything changed.
public struct KubeClusterSource: ClusterStateSource {
    /// Which endpoints API to read.
    public enum EndpointsAPI: Sendable {
        case endpointSlices
        case endpoints
    }

    public let client: KubeClient
    /// The agent's node (watched with fieldSelector metadata.name=NAME); nil = no Node informer.
    public let nodeName: String?
    public let endpointsAPI: EndpointsAPI
    public let debounce: Duration
    /// Base informer options (timeouts, backoff); list selectors are set per resource.
    public let informerOptions: InformerOptions
    public let onStateChange: @Sendable (String, InformerState) -> Void

    public init(
        client: KubeClient, nodeName: String?, endpointsAPI: EndpointsAPI = .endpointSlices, debounce: Duration = .milliseconds(100),
        informerOptions: InformerOptions = InformerOptions(), onStateChange: @escaping @Sendable (String, InformerState) -> Void = { _, _ in }
    ) {
        self.client = client
        self.nodeName = nodeName
        self.endpointsAPI = endpointsAPI
        self.debounce = debounce
        self.informerOptions = informerOptions
        self.onStateChange = onStateChange
    }

    public func snapshots() -> AsyncStream<ClusterSnapshot> {
        let (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let (output, out) = AsyncStream<ClusterSnapshot>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let notify: @Sendable () -> Void = { changed.yield() }
        func informer<R: KubeResource>(_ type: R.Type, _ name: String, labelSelector: String? = nil, fieldSelector: String? = nil) -> Informer<R> {
            var options = informerOptions
            options.list = ListOptions(labelSelector: labelSelector, fieldSelector: fieldSelector)
            let report = onStateChange
            return Informer<R>(
                client: client, options: options,
                onStateChange: { state in
                    report(name, state)
                    if case .watching = state { notify() }
                },
                handler: { _ in notify() })
        }
        // As kube-proxy: Services of another proxy (service-proxy-name) or headless-labelled ones are never watched.
        let services = informer(Service.self, "services", labelSelector: KubeProxyRules.serviceLabelSelector)
        let slices = endpointsAPI == .endpointSlices ? informer(EndpointSlice.self, "endpointslices") : nil
        let endpoints = endpointsAPI == .endpoints ? informer(Endpoints.self, "endpoints") : nil
        let node = nodeName.map { informer(Node.self, "nodes", fieldSelector: "metadata.name=\($0)") }
        let debounce = self.debounce

        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await services.run() }
                if let slices { group.addTask { await slices.run() } }
                if let endpoints { group.addTask { await endpoints.run() } }
                if let node { group.addTask { await node.run() } }
                group.addTask {
                    var last: ClusterSnapshot?
                    for await _ in changes {
                        let synced = services.hasSynced && (slices?.hasSynced ?? true) && (endpoints?.hasSynced ?? true) && (node?.hasSynced ?? true)
                        guard synced else { continue }
                        // Coalesce a burst: wait, then read the stores once (signals that came in
                        // meanwhile are folded into the buffered one and re-checked next round).
                        do { try await Task.sleep(for: debounce) } catch { break }
                        let snapshot = ClusterSnapshot(
                            services: services.store.items.sorted { $0.storeKey < $1.storeKey },
                            endpointSlices: (slices?.store.items ?? []).sorted { $0.storeKey < $1.storeKey },
                            endpoints: (endpoints?.store.items ?? []).sorted { $0.storeKey < $1.storeKey },
                            nodes: (node?.store.items ?? []).sorted { $0.storeKey < $1.storeKey })
                        if snapshot != last {
                            last = snapshot
                            out.yield(snapshot)
                        }
                    }
                }
                await group.next()
                group.cancelAll()
            }
            out.finish()
        }
        out.onTermination = { _ in
            task.cancel()
            changed.finish()
        }
        return output
    }
}

extension KubeClusterSource {
    /// The source `portway agent` uses without `--from-dir`: an explicit kubeconfig (and context),
    /// else in-cluster config when running in a pod, else `$KUBECONFIG` / ~/.kube/config.
    /// Informer trouble is logged: each backoff as a warning with its reason (RBAC errors name
    /// the verb and resource refused), the return to watching after it as a notice.
    public static func fromConfiguration(
        kubeconfig: String?, context: String?, nodeName: String, endpointsSource: EndpointsSource,
        logger: Logger = Logger(label: "portway.source.kube")
    ) throws -> KubeClusterSource {
        let config = try ClusterConfig.load(kubeconfig: kubeconfig, context: context)
        logger.info("using the Kubernetes API at \(config.server)")
        let troubled = StateLog()
        return KubeClusterSource(
            client: KubeClient(config: config), nodeName: nodeName,
            endpointsAPI: endpointsSource == .endpoints ? .endpoints : .endpointSlices,
            onStateChange: { resource, state in
                switch state {
                case .backingOff(let next, let delay, let reason):
                    troubled.set(resource, true)
                    logger.warning("\(resource): \(reason); retrying (\(next == .relist ? "relist" : "watch")) in \(delay.shortDescription)")
                case .watching:
                    if troubled.set(resource, false) { logger.notice("\(resource): watching again") }
                case .relisting:
                    logger.info("\(resource): relisting")
                default: break
                }
            })
    }
}

/// Which informers are currently in trouble (so recovery is logged once).
private final class StateLog: @unchecked Sendable {
    private let lock = NSLock()
    private var troubled: Set<String> = []

    /// Sets the flag; returns whether it was set before.
    @discardableResult
    func set(_ resource: String, _ value: Bool) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let was = troubled.contains(resource)
        if value { troubled.insert(resource) } else { troubled.remove(resource) }
        return was
    }
}
