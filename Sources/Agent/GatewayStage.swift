import KubeModels
import LoadBalancer

/// The Gateway stage between translation and allocation: builds the Gateway control plane's route
/// tables from the reconciler's index and marks the frontends of Portway's Gateway Services
/// `l7-load-balancer` (no backends, proxy port left to `ProxyPortStage`).
///
/// The stage keeps no objects of its own: the reconciler's `ClusterIndex` stores every kind the
/// sources send (whole snapshots and `ClusterChange`s alike, the Gateway-side kinds included), so a
/// change of any Gateway-side kind the registry declares reaches the next build. A build runs only
/// when a step touched something the Gateway state reads (`needsRebuild`): a Gateway-side object
/// touching a known Gateway, or a Service (or its slices) that a route's backendRef names or that
/// is (or was) a Gateway's Service. Endpoint churn of unrelated Services costs nothing here.
struct GatewayStage: Sendable {
    private(set) var gateways = GatewayState()
    /// The Service ports that front one of Portway's Gateways.
    private(set) var keys: [ServicePortKey: ProxyPortKey] = [:]
    /// The Services the last build read: every route's Service backendRefs and every Service
    /// labelled with a Gateway's name.
    private var readServices: Set<ObjectKey> = []
    /// Every Gateway of the last build, Portway's or not (a change to one may flip ownership).
    private var knownGateways: Set<ObjectKey> = []
    /// How many builds ran (logs and tests).
    private(set) var builds = 0

    /// Whether there is anything to build over `index` (no Gateway now and none before: nothing to do).
    func isIdle(index: ClusterIndex) -> Bool { index.gateways.isEmpty && keys.isEmpty && knownGateways.isEmpty }

    /// Whether a step that touched `touched` (already applied to `index`) changes what a build reads.
    func needsRebuild(_ touched: TouchedKeys, index: ClusterIndex) -> Bool {
        if touched.gateways.contains(where: { knownGateways.contains($0) || index.gateways[$0] != nil }) { return true }
        for service in touched.services {
            if readServices.contains(service) { return true }
            // A Service that became a Gateway's Service.
            if index.services[service]?.contains(where: Self.isGatewayService) == true { return true }
        }
        return false
    }

    /// Rebuilds the route tables over `index` (the reconciler's, with the Gateway-side kinds) and
    /// returns the Service ports whose Gateway changed (their frontends must be marked again).
    mutating func rebuild(index: ClusterIndex) -> Set<ServicePortKey> {
        let snapshot = index.snapshot
        gateways = GatewayState.build(snapshot)
        builds += 1
        let previous = keys
        keys = GatewayFrontends.keys(snapshot, ownedGateways: gateways.ownedGateways)
        knownGateways = Set(index.gateways.keys)
        readServices = Self.servicesRead(snapshot)
        var flipped = Set<ServicePortKey>()
        for key in Set(previous.keys).union(keys.keys) where previous[key] != keys[key] { flipped.insert(key) }
        return flipped
    }

    private static func isGatewayService(_ service: Service) -> Bool {
        service.metadata.labels?[GatewayAPI.gatewayNameLabel] != nil
    }

    /// The Services a build over `snapshot` reads: those routes name as backends (any kind of
    /// reference that may resolve to a Service) and the Gateway-labelled ones.
    static func servicesRead(_ snapshot: ClusterSnapshot) -> Set<ObjectKey> {
        var out = Set<ObjectKey>()
        for route in snapshot.httpRoutes {
            for rule in route.spec.rules ?? [] {
                for ref in rule.backendRefs ?? [] where (ref.kind ?? "Service") == "Service" {
                    out.insert(ObjectKey(namespace: ref.namespace ?? route.metadata.namespace, name: ref.name))
                }
            }
        }
        for service in snapshot.services where isGatewayService(service) { out.insert(ObjectKey(service.metadata)) }
        return out
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
