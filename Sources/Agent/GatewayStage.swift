import KubeModels
import LoadBalancer

/// The Gateway stage between translation and allocation: builds the Gateway control plane's route
/// tables from the snapshot and marks the frontends of Portway's Gateway Services
/// `l7-load-balancer` (no backends, proxy port left to `ProxyPortStage`).
///
/// The L4 reconciler indexes only what the translator reads; the Gateway API objects (and the
/// Namespaces and Secrets they name) are kept here, taken from each whole snapshot a source sends.
struct GatewayStage: Sendable {
    /// The Gateway-side objects of the last snapshot (no Services, slices or Nodes).
    private var objects = ClusterSnapshot()
    private(set) var gateways = GatewayState()
    /// The Service ports that front one of Portway's Gateways.
    private(set) var keys: [ServicePortKey: ProxyPortKey] = [:]

    /// Keeps the Gateway-side objects of a whole snapshot.
    mutating func take(_ snapshot: ClusterSnapshot) {
        objects = ClusterSnapshot(
            gatewayClasses: snapshot.gatewayClasses, gateways: snapshot.gateways, httpRoutes: snapshot.httpRoutes,
            referenceGrants: snapshot.referenceGrants, namespaces: snapshot.namespaces, secrets: snapshot.secrets)
    }

    /// Whether there is anything to build (no Gateway now and none before: nothing to do).
    var isIdle: Bool { objects.gateways.isEmpty && keys.isEmpty }

    /// Rebuilds the route tables over `index` (the reconciler's Services, slices and Nodes) and
    /// returns the Service ports whose Gateway changed (their frontends must be marked again).
    mutating func rebuild(index: ClusterSnapshot) -> Set<ServicePortKey> {
        var snapshot = index
        snapshot.gatewayClasses = objects.gatewayClasses
        snapshot.gateways = objects.gateways
        snapshot.httpRoutes = objects.httpRoutes
        snapshot.referenceGrants = objects.referenceGrants
        snapshot.namespaces = objects.namespaces
        snapshot.secrets = objects.secrets
        gateways = GatewayState.build(snapshot)
        let previous = keys
        keys = GatewayFrontends.keys(snapshot, ownedGateways: gateways.ownedGateways)
        var flipped = Set<ServicePortKey>()
        for key in Set(previous.keys).union(keys.keys) where previous[key] != keys[key] { flipped.insert(key) }
        return flipped
    }

    static func key(of entry: FrontendEntry) -> ServicePortKey {
        ServicePortKey(service: NamespacedName(namespace: entry.service.namespace, name: entry.service.name), port: Int(entry.service.port))
    }

    /// `entry` as this node programs it: a Gateway frontend goes to the proxy (marked, no backends,
    /// its proxy port filled in by the allocation stage); anything else unchanged.
    func mark(_ entry: FrontendEntry) -> FrontendEntry {
        guard entry.frontend.proto == .tcp, keys[Self.key(of: entry)] != nil else { return entry }
        var marked = entry
        marked.flags.insert(.l7LoadBalancer)
        marked.l7ProxyPort = nil
        marked.backends = []
        return marked
    }

    func mark(_ changes: FrontendChanges) -> FrontendChanges {
        guard !keys.isEmpty else { return changes }
        return changes.mapValues { $0.map(mark) }
    }

    func mark(_ state: DesiredL4State) -> DesiredL4State {
        guard !keys.isEmpty else { return state }
        return DesiredL4State(entries: state.entries.map(mark), warnings: state.warnings)
    }

    /// What the proxy serves: each Gateway Service port's proxy port (as `port` gives it) with the
    /// route table of its Gateway listener port. Ports without a programmed listener get none.
    func tables(port: (ServicePortKey) -> UInt16?) -> [UInt16: PortRouteTable] {
        var out: [UInt16: PortRouteTable] = [:]
        for (servicePort, key) in keys {
            guard let proxyPort = port(servicePort), let table = gateways.table(gateway: key.gateway, port: key.port) else { continue }
            out[proxyPort] = table
        }
        return out
    }
}
