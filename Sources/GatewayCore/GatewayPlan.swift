import KubeModels
import LoadBalancer

/// The Gateway API as this node serves it, planned from the cluster index: the one owner of the
/// Gateways' route tables and status (`state`), of which Service ports front which Gateway listener
/// port (`frontends`), of every listener port's proxy port (`proxyPorts`), and of how those
/// Service ports' frontends are programmed (`program`: flagged `l7-load-balancer`, no backends,
/// the proxy port filled in — one step).
///
/// The agent keeps one plan and feeds it per key: `affected` names the Gateways a step touched,
/// `rebuild` builds only those (straight from the index, nothing copied), `program` marks the
/// frontends the translator produced. `portway routes`, `explain` and `translate` make a plan of a
/// snapshot in one call (`GatewayPlan(snapshot:…)`) and program the translated state the same way,
/// so what they print is what the agent does.
///
/// Proxy ports: one per (Gateway, listener port), from `proxyPortRange`, stable while the key
/// lives (released when its Gateway or Service port goes), and across restarts: the plan starts
/// with the ports the pinned maps hold by frontend (`inherited`); a key that gets its first port
/// takes the one most of its frontends held, unless another key holds it now (so every listener
/// keeps its port whatever order the Gateways come in), else the lowest free port, keys in sorted
/// order. When the range is exhausted the key's frontends stay L4, with a warning.
public struct GatewayPlan: Sendable {
    /// What a step asks the plan to build again.
    public enum Work: Equatable, Sendable {
        case none
        /// Build these Gateways again.
        case gateways(Set<NamespacedName>)
        /// Build everything (the first snapshot, a resync).
        case all

        public mutating func formUnion(_ other: Work) {
            switch (self, other) {
            case (.all, _), (_, .none): return
            case (_, .all), (.none, _): self = other
            case (.gateways(let a), .gateways(let b)): self = .gateways(a.union(b))
            }
        }
    }

    public let options: GatewayOptions
    public let proxyPortRange: ClosedRange<UInt16>
    /// The tables, certificates, ownership, warnings and unserved listeners of every Gateway;
    /// `status` holds only what the last build made (the leader builds its own from scratch).
    public private(set) var state = GatewayState()
    /// The Service ports (TCP) that front one of Portway's Gateways, with the listener port they front.
    public private(set) var frontends: [ServicePortKey: ProxyPortKey] = [:]
    /// The proxy port of each Gateway listener port that has frontends programmed.
    public private(set) var proxyPorts: [ProxyPortKey: UInt16] = [:]
    /// Keys left without a proxy port because the range is full (their frontends stay L4).
    public private(set) var exhausted: Set<ProxyPortKey> = []
    /// The ports the pinned maps held at start, by frontend; dropped as their keys get ports.
    private var inherited: [Frontend: UInt16]
    /// Service → the Gateways whose build reads it: through a route's backendRef, or as the
    /// Gateway's own Service.
    private var readers: [ObjectKey: Set<NamespacedName>] = [:]
    /// Every Gateway of the last build, Portway's or not (a change to one may flip ownership).
    private var knownGateways: Set<ObjectKey> = []
    /// How many builds ran, and how many of them were partial (logs and tests).
    public private(set) var builds = 0
    public private(set) var partialBuilds = 0

    public static let defaultProxyPortRange: ClosedRange<UInt16> = 10000...10999

    /// - Parameter inherited: the proxy port of each L7LB frontend already programmed (the pins).
    public init(options: GatewayOptions = GatewayOptions(), proxyPortRange: ClosedRange<UInt16> = GatewayPlan.defaultProxyPortRange, inherited: [Frontend: UInt16] = [:]) {
        self.options = options
        self.proxyPortRange = proxyPortRange
        self.inherited = inherited
    }

    /// The whole plan of `index` at once (the CLI's, and the agent's full path).
    public init(
        index: ClusterIndex, options: GatewayOptions = GatewayOptions(), proxyPortRange: ClosedRange<UInt16> = GatewayPlan.defaultProxyPortRange,
        inherited: [Frontend: UInt16] = [:]
    ) {
        self.init(options: options, proxyPortRange: proxyPortRange, inherited: inherited)
        rebuild(.all, index: index)
    }

    // MARK: building, per key

    /// Whether there is anything to build over `index` (no Gateway now and none before: nothing to do).
    public func isIdle(index: ClusterIndex) -> Bool { index.gateways.isEmpty && frontends.isEmpty && knownGateways.isEmpty }

    /// The Gateways a step that touched `touched` (already applied to `index`) affects.
    public func affected(_ touched: TouchedKeys, index: ClusterIndex) -> Work {
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

    /// Builds `work` over `index` and returns the Service ports whose Gateway changed (their
    /// frontends must be programmed again). Keys that are gone give their proxy ports back.
    @discardableResult
    public mutating func rebuild(_ work: Work, index: ClusterIndex) -> Set<ServicePortKey> {
        switch work {
        case .none: return []
        case .all:
            state = GatewayState.build(index, options: options)
        case .gateways(let only):
            partialBuilds += 1
            let partial = GatewayState.build(index, only: only, options: options)
            var next = partial
            next.tables = (state.tables.filter { !only.contains($0.gateway) } + partial.tables)
                .sorted { ($0.gateway, $0.port) < ($1.gateway, $1.port) }
            next.unservedListeners = (state.unservedListeners.filter { !only.contains($0.gateway) } + partial.unservedListeners)
                .sorted { ($0.gateway, $0.port, $0.name) < ($1.gateway, $1.port, $1.name) }
            // Certificates as a full build has them: those the tables name, fresh for the rebuilt Gateways.
            next.certificates = [:]
            for table in next.tables {
                for listener in table.listeners {
                    for name in listener.certificates {
                        next.certificates[name] = only.contains(table.gateway) ? partial.certificates[name] : state.certificates[name]
                    }
                }
            }
            state = next
        }
        builds += 1
        let previous = frontends
        frontends = Self.frontends(index, ownedGateways: state.ownedGateways)
        knownGateways = Set(index.gateways.keys)
        readers = Self.readers(index)
        let live = Set(frontends.values)
        proxyPorts = proxyPorts.filter { live.contains($0.key) }
        exhausted = exhausted.filter { live.contains($0) }
        var flipped = Set<ServicePortKey>()
        for key in Set(previous.keys).union(frontends.keys) where previous[key] != frontends[key] { flipped.insert(key) }
        return flipped
    }

    // MARK: programming frontends

    /// `changes` as this node programs them: the frontends of Portway's Gateway Services go to the
    /// proxy (flagged `l7-load-balancer`, no backends, their listener port's proxy port); the others
    /// are unchanged.
    public mutating func program(_ changes: FrontendChanges) -> FrontendChanges {
        guard !frontends.isEmpty else { return changes }
        assignPorts(for: changes.values.compactMap { $0 })
        return changes.mapValues { $0.map { program($0) } }
    }

    /// A whole state as this node programs it (the full path).
    public mutating func program(_ desired: DesiredL4State) -> DesiredL4State {
        guard !frontends.isEmpty else { return desired }
        assignPorts(for: desired.entries)
        var out = DesiredL4State(entries: desired.entries.map { program($0) }, warnings: desired.warnings)
        for key in exhausted.sorted() {
            out.warnings.append(TranslationWarning(
                object: "Gateway \(key.gateway)", field: "spec.listeners",
                message: "no proxy port left in \(proxyPortRange.lowerBound)-\(proxyPortRange.upperBound) for port \(key.port); its Service's frontends stay L4"))
        }
        return out
    }

    /// The key `entry` fronts, if it is a TCP frontend of a Gateway's Service port.
    public func key(of entry: FrontendEntry) -> ProxyPortKey? {
        guard entry.frontend.proto == .tcp else { return nil }
        return frontends[Self.servicePort(of: entry)]
    }

    private func program(_ entry: FrontendEntry) -> FrontendEntry {
        guard let key = key(of: entry), let port = proxyPorts[key] else { return entry }
        var marked = entry
        marked.flags.insert(.l7LoadBalancer)
        marked.l7ProxyPort = port
        marked.backends = []
        return marked
    }

    /// Gives a proxy port to every key of `entries` that has none: the port most of its frontends
    /// held in the pins when no key holds it now (keys whose frontends agree more claim first, so a
    /// frontend that moved to another Service does not take a port from the Service that kept the
    /// rest); else the lowest free port, keys in sorted order.
    private mutating func assignPorts(for entries: [FrontendEntry]) {
        var needing: [ProxyPortKey: [UInt16: Int]] = [:]
        for entry in entries {
            guard let key = key(of: entry), proxyPorts[key] == nil else { continue }
            var votes = needing[key] ?? [:]
            if let port = inherited.removeValue(forKey: entry.frontend), proxyPortRange.contains(port) { votes[port, default: 0] += 1 }
            needing[key] = votes
        }
        guard !needing.isEmpty else { return }
        var taken = Set(proxyPorts.values)
        var claims: [(key: ProxyPortKey, port: UInt16, count: Int)] = []
        for (key, votes) in needing {
            guard let best = votes.min(by: { ($1.value, $0.key) < ($0.value, $1.key) }) else { continue }
            claims.append((key, best.key, best.value))
        }
        claims.sort { ($1.count, $0.key) < ($0.count, $1.key) }
        for claim in claims where taken.insert(claim.port).inserted {
            proxyPorts[claim.key] = claim.port
        }
        var next = proxyPortRange.lowerBound
        var rangeLeft = true
        for key in needing.keys.sorted() where proxyPorts[key] == nil {
            while rangeLeft && taken.contains(next) {
                if next == proxyPortRange.upperBound { rangeLeft = false } else { next += 1 }
            }
            guard rangeLeft else {
                exhausted.insert(key)
                continue
            }
            proxyPorts[key] = next
            exhausted.remove(key)
            taken.insert(next)
        }
    }

    // MARK: what the proxy serves

    /// Each proxy port with the route table of its Gateway listener port. A key whose Gateway port
    /// has no programmed listener gets no entry (nothing listens: connections are reset).
    public var routeTables: [UInt16: PortRouteTable] {
        var out: [UInt16: PortRouteTable] = [:]
        for key in Set(frontends.values) {
            guard let proxyPort = proxyPorts[key], let table = state.table(gateway: key.gateway, port: key.port) else { continue }
            out[proxyPort] = table
        }
        return out
    }

    /// What the proxy does not serve: listeners left out, and fronted ports where nothing listens.
    public var servingWarnings: [GatewayWarning] {
        var fronted: [ProxyPortKey: UInt16?] = [:]
        for key in Set(frontends.values) { fronted[key] = .some(proxyPorts[key]) }
        return state.servingWarnings(frontedPorts: fronted)
    }

    /// The proxy port serving `gateway`'s listener port `port`, if it has one.
    public func proxyPort(gateway: NamespacedName, port: Int) -> UInt16? {
        proxyPorts[ProxyPortKey(gateway: gateway, port: port)]
    }

    // MARK: index readings

    /// The Service port `entry` is a frontend of.
    public static func servicePort(of entry: FrontendEntry) -> ServicePortKey {
        ServicePortKey(service: NamespacedName(namespace: entry.service.namespace, name: entry.service.name), port: Int(entry.service.port))
    }

    private static func name(_ key: ObjectKey) -> NamespacedName { NamespacedName(namespace: key.namespace, name: key.name) }

    private static func gatewayName(of service: Service) -> String? { service.metadata.labels?[GatewayAPI.gatewayNameLabel] }

    /// The listener port each TCP port of Portway's Gateways' Services fronts: a Service labelled
    /// with a Gateway's name fronts that Gateway, port for port.
    static func frontends(_ index: ClusterIndex, ownedGateways: [NamespacedName]) -> [ServicePortKey: ProxyPortKey] {
        let owned = Set(ownedGateways)
        var out: [ServicePortKey: ProxyPortKey] = [:]
        for (key, services) in index.services {
            for service in services {
                guard let gatewayName = gatewayName(of: service) else { continue }
                let gateway = NamespacedName(namespace: key.namespace, name: gatewayName)
                guard owned.contains(gateway) else { continue }
                for port in service.spec.ports ?? [] where (port.protocol ?? "TCP") == "TCP" {
                    out[ServicePortKey(service: name(key), port: port.port)] = ProxyPortKey(gateway: gateway, port: port.port)
                }
            }
        }
        return out
    }

    /// Which Gateways a build reads each Service for: the Services routes name as backends or
    /// mirrors (any reference that may resolve to a Service), for each Gateway the route names; and each
    /// Gateway-labelled Service, for its Gateway.
    static func readers(_ index: ClusterIndex) -> [ObjectKey: Set<NamespacedName>] {
        var out: [ObjectKey: Set<NamespacedName>] = [:]
        for routes in index.httpRoutes.values {
            for route in routes {
                let parents = Set(index.reachedGateways(of: route).map(name))
                guard !parents.isEmpty else { continue }
                for rule in route.spec.rules ?? [] {
                    // RequestMirror backends too: their endpoints and BackendTLSPolicies are in the tables.
                    let mirrors = (rule.filters ?? []).compactMap { $0.requestMirror?.backendRef }
                    for ref in (rule.backendRefs ?? []) + mirrors where (ref.kind ?? "Service") == "Service" {
                        out[ObjectKey(namespace: ref.namespace ?? route.metadata.namespace, name: ref.name), default: []].formUnion(parents)
                    }
                }
            }
        }
        for (key, services) in index.services {
            for service in services {
                guard let gateway = gatewayName(of: service) else { continue }
                out[key, default: []].insert(NamespacedName(namespace: key.namespace, name: gateway))
            }
        }
        return out
    }
}
