import GatewayCore
import KubeModels
import LoadBalancer

/// The Gateway stage between translation and allocation: builds the Gateway control plane's route
/// tables from the reconciler's index and marks the frontends of Portway's Gateway Services
/// `l7-load-balancer` (no backends, proxy port left to `ProxyPortStage`).
///
/// The stage keeps no objects of its own: the reconciler's `ClusterIndex` stores every kind the
/// sources send (whole snapshots and `ClusterChange`s alike, the Gateway-side kinds included), so a
/// change of any Gateway-side kind the registry declares reaches the next build. A step builds
/// only the Gateways it affected (`affected`): those a Gateway-side change touched, and those
/// reading a touched Service (a route's backendRef, or the Gateway's own Service; their slices
/// touch the Service). The tables of the others are kept (`GatewayState.build(_:only:)`), so
/// endpoint churn of unrelated Services costs nothing here and a route edit costs one Gateway.
struct GatewayStage: Sendable {
    /// What a step asks of the stage.
    enum Work: Equatable, Sendable {
        case none
        /// Build these Gateways again.
        case gateways(Set<NamespacedName>)
        /// Build everything (the first snapshot, a resync).
        case all

        mutating func formUnion(_ other: Work) {
            switch (self, other) {
            case (.all, _), (_, .none): return
            case (_, .all), (.none, _): self = other
            case (.gateways(let a), .gateways(let b)): self = .gateways(a.union(b))
            }
        }
    }

    /// How the Gateways are built (controller name, certificate check).
    let options: GatewayOptions
    /// The tables, certificates, ownership, warnings and unserved listeners of every Gateway;
    /// `status` holds only what the last build made (the leader builds its own from scratch).
    private(set) var gateways = GatewayState()
    /// The Service ports that front one of Portway's Gateways.
    private(set) var keys: [ServicePortKey: ProxyPortKey] = [:]
    /// Service → the Gateways whose build reads it: through a route's backendRef, or as the
    /// Gateway's own Service.
    private var readers: [ObjectKey: Set<NamespacedName>] = [:]
    /// Every Gateway of the last build, Portway's or not (a change to one may flip ownership).
    private var knownGateways: Set<ObjectKey> = []
    /// How many builds ran, and how many of them were partial (logs and tests).
    private(set) var builds = 0
    private(set) var partialBuilds = 0

    init(options: GatewayOptions = GatewayOptions()) {
        self.options = options
    }

    /// Whether there is anything to build over `index` (no Gateway now and none before: nothing to do).
    func isIdle(index: ClusterIndex) -> Bool { index.gateways.isEmpty && keys.isEmpty && knownGateways.isEmpty }

    /// The Gateways a step that touched `touched` (already applied to `index`) affects.
    func affected(_ touched: TouchedKeys, index: ClusterIndex) -> Work {
        var out = Set<NamespacedName>()
        for gateway in touched.gateways where knownGateways.contains(gateway) || index.gateways[gateway] != nil {
            out.insert(Self.name(gateway))
        }
        for service in touched.services {
            out.formUnion(readers[service] ?? [])
            // A Service that became a Gateway's Service.
            for object in index.services[service] ?? [] {
                if let gateway = Self.gatewayName(of: object) { out.insert(NamespacedName(namespace: service.namespace, name: gateway)) }
            }
        }
        return out.isEmpty ? .none : .gateways(out)
    }

    /// Builds `work` over `index` (the reconciler's, with the Gateway-side kinds) and returns the
    /// Service ports whose Gateway changed (their frontends must be marked again).
    mutating func rebuild(_ work: Work, index: ClusterIndex) -> Set<ServicePortKey> {
        let snapshot = index.snapshot
        switch work {
        case .none: return []
        case .all:
            gateways = GatewayState.build(snapshot, options: options)
        case .gateways(let only):
            partialBuilds += 1
            let partial = GatewayState.build(snapshot, only: only, options: options)
            var next = partial
            next.tables = (gateways.tables.filter { !only.contains($0.gateway) } + partial.tables)
                .sorted { ($0.gateway, $0.port) < ($1.gateway, $1.port) }
            next.unservedListeners = (gateways.unservedListeners.filter { !only.contains($0.gateway) } + partial.unservedListeners)
                .sorted { ($0.gateway, $0.port, $0.name) < ($1.gateway, $1.port, $1.name) }
            // Certificates as a full build has them: those the tables name, fresh for the rebuilt Gateways.
            next.certificates = [:]
            for table in next.tables {
                for listener in table.listeners {
                    for name in listener.certificates {
                        next.certificates[name] = only.contains(table.gateway) ? partial.certificates[name] : gateways.certificates[name]
                    }
                }
            }
            gateways = next
        }
        builds += 1
        let previous = keys
        keys = GatewayFrontends.keys(snapshot, ownedGateways: gateways.ownedGateways)
        knownGateways = Set(index.gateways.keys)
        readers = Self.readers(snapshot)
        var flipped = Set<ServicePortKey>()
        for key in Set(previous.keys).union(keys.keys) where previous[key] != keys[key] { flipped.insert(key) }
        return flipped
    }

    private static func name(_ key: ObjectKey) -> NamespacedName { NamespacedName(namespace: key.namespace, name: key.name) }

    private static func gatewayName(of service: Service) -> String? { service.metadata.labels?[GatewayAPI.gatewayNameLabel] }

    /// Which Gateways a build over `snapshot` reads each Service for: the Services routes name as
    /// backends (any reference that may resolve to a Service), for each Gateway the route names;
    /// and each Gateway-labelled Service, for its Gateway.
    static func readers(_ snapshot: ClusterSnapshot) -> [ObjectKey: Set<NamespacedName>] {
        var out: [ObjectKey: Set<NamespacedName>] = [:]
        for route in snapshot.httpRoutes {
            let parents = Set(ClusterIndex.parentGateways(of: route).map(name))
            guard !parents.isEmpty else { continue }
            for rule in route.spec.rules ?? [] {
                for ref in rule.backendRefs ?? [] where (ref.kind ?? "Service") == "Service" {
                    out[ObjectKey(namespace: ref.namespace ?? route.metadata.namespace, name: ref.name), default: []].formUnion(parents)
                }
            }
        }
        for service in snapshot.services {
            guard let gateway = gatewayName(of: service) else { continue }
            let key = ObjectKey(service.metadata)
            out[key, default: []].insert(NamespacedName(namespace: key.namespace, name: gateway))
        }
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

    /// What the proxy does not serve (`GatewayState.servingWarnings`), with each fronted Gateway
    /// port's proxy port as `port` gives it.
    func servingWarnings(port: (ServicePortKey) -> UInt16?) -> [GatewayWarning] {
        var fronted: [ProxyPortKey: UInt16?] = [:]
        for (servicePort, key) in keys {
            // Several Service ports may front one key; keep a port if any has one.
            if case .some(.some) = fronted[key] { continue }
            fronted[key] = .some(port(servicePort))
        }
        return gateways.servingWarnings(frontedPorts: fronted)
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
