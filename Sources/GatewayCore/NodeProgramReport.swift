import KubeModels
import LoadBalancer

// Status that tells the truth: each node's agent publishes what its proxy serves (a
// `NodeProgramReport`, in a Lease per node: docs/GATEWAY-API.md, "Programmed: what the nodes
// report"), and the leader writes a Gateway `Programmed=True` only when every live node serves the
// Gateway's generation with no failure (`NodeProgramReport.programmed`).

/// What one node's agent has programmed: per Gateway (and per ListenerSet), the generation its
/// proxy serves now and the listeners it could not serve; per HTTPRoute, the generation its proxy
/// serves. Encoded as compact JSON with sorted keys (the Lease annotation
/// `NodeProgramReport.annotation`; the agent encodes it, this module has no Foundation). Routes
/// are keyed by namespace, then name (`{"routes":{"shop":{"cart":3}}}`), so a namespace's name is
/// written once: 1,000 routes named like `route-0042` in one namespace take ~16 KB
/// (`NodeProgramReportTests.aThousandRoutesStaySmall`), far below the 256 KB an object's
/// annotations may hold in all.
public struct NodeProgramReport: Codable, Hashable, Sendable {
    /// "namespace/name" of each Portway Gateway this node knows → what it serves of it.
    public var gateways: [String: GatewayProgram]
    /// "namespace/name" of each ListenerSet of a Portway Gateway → what it serves of it (nil: none).
    public var listenerSets: [String: GatewayProgram]?
    /// Namespace → name → the generation of each HTTPRoute naming a Portway Gateway (directly or
    /// through a ListenerSet) whose tables the proxy serves (nil: none).
    public var routes: [String: [String: Int64]]?

    public init(gateways: [String: GatewayProgram] = [:], listenerSets: [String: GatewayProgram]? = nil, routes: [String: [String: Int64]]? = nil) {
        self.gateways = gateways
        self.listenerSets = listenerSets
        self.routes = routes
    }

    /// The annotation of the node's Lease that carries the report.
    public static let annotation = "portway.io/programmed"
    /// The label of the nodes' report Leases (the leader's informer selects it); its value is the node.
    public static let label = "portway.io/node-report"
    /// The name of a node's report Lease.
    public static func leaseName(node: String) -> String { "portway-node-\(node)" }

    /// The generation of `route` this node serves, nil when it serves none.
    public func routeGeneration(_ route: NamespacedName) -> Int64? { routes?[route.namespace]?[route.name] }

    /// The report drafted from this node's Gateway build, before its proxy has applied it: each
    /// owned Gateway's generation (and each of its ListenerSets'), the listeners left out for a
    /// certificate this node's TLS library refused or could not find (`InvalidCertificateRef`),
    /// and the generation of every HTTPRoute that reaches an owned Gateway. Listeners left out
    /// for a configuration error every node sees alike (a conflict, `NoValidCACertificate`…) are
    /// the build's status, which the leader writes itself: no node failure. The proxy adds what it
    /// failed to load or open (`L7ProxyOutput`), the map writer what it failed to write.
    public static func draft(state: GatewayState, index: ClusterIndex) -> NodeProgramReport {
        var out = NodeProgramReport()
        let owned = Set(state.ownedGateways.map { ObjectKey(namespace: $0.namespace, name: $0.name) })
        for key in state.ownedGateways {
            let generation = index.gateways[ObjectKey(namespace: key.namespace, name: key.name)]?.first?.metadata.generation ?? 0
            out.gateways[key.description] = GatewayProgram(generation: generation)
        }
        for (key, sets) in index.listenerSets {
            guard let set = sets.first, let parent = ClusterIndex.parentGateway(of: set), owned.contains(parent) else { continue }
            out.listenerSets = out.listenerSets ?? [:]
            out.listenerSets?["\(key.namespace)/\(key.name)"] = GatewayProgram(generation: set.metadata.generation ?? 0)
        }
        for listener in state.unservedListeners where listener.reason == "InvalidCertificateRef" {
            out.fail(gateway: listener.gateway, listenerSet: listener.listenerSet, listener: listener.name, "certificate not loaded: \(listener.message)")
        }
        for (key, routes) in index.httpRoutes {
            guard let route = routes.first, index.reachedGateways(of: route).contains(where: owned.contains) else { continue }
            out.routes = out.routes ?? [:]
            out.routes?[key.namespace, default: [:]][key.name] = route.metadata.generation ?? 0
        }
        return out
    }

    /// Records a failure of `listener`, of `gateway`'s own listeners or of its ListenerSet `listenerSet`.
    public mutating func fail(gateway: NamespacedName, listenerSet: NamespacedName?, listener: String, _ message: String) {
        if let listenerSet {
            listenerSets?[listenerSet.description]?.fail(listener: listener, message)
        } else {
            gateways[gateway.description]?.fail(listener: listener, message)
        }
    }
}

/// What one node serves of one Gateway (or ListenerSet).
public struct GatewayProgram: Codable, Hashable, Sendable {
    /// The object's `metadata.generation` the node's proxy serves.
    public var generation: Int64
    /// Listener name → why this node does not serve it; nil when none failed.
    public var failures: [String: String]?
    /// Why this node does not serve the generation yet though nothing failed (its map writer has
    /// not written the redirect of a port yet): key (e.g. "port 80") → what is awaited; nil: none.
    /// The node counts as lagging, not failed.
    public var pending: [String: String]?

    public init(generation: Int64, failures: [String: String]? = nil, pending: [String: String]? = nil) {
        self.generation = generation
        self.failures = failures
        self.pending = pending
    }

    /// Records a failure of `listener` (the first one of a listener is kept).
    public mutating func fail(listener: String, _ message: String) {
        if failures?[listener] == nil { failures = (failures ?? [:]).merging([listener: message]) { old, _ in old } }
    }

    /// Records what keeps the node from serving the generation yet (the first one per key is kept).
    public mutating func wait(for key: String, _ message: String) {
        if pending?[key] == nil { pending = (pending ?? [:]).merging([key: message]) { old, _ in old } }
    }
}

/// The leader's verdict on an object's generation from the nodes' reports.
public struct ProgrammedVerdict: Hashable, Sendable {
    public var programmed: Bool
    /// `Programmed`, `Pending` (nodes lag) or `Invalid` (a node failed).
    public var reason: String
    public var message: String
}

/// The kinds whose status the nodes' reports bear on.
public enum ReportedKind: String, Sendable {
    case gateway = "Gateway"
    case listenerSet = "ListenerSet"
    case httpRoute = "HTTPRoute"
}

extension NodeProgramReport {
    /// How many nodes a condition's message names at most (the others are counted).
    public static let namedNodesLimit = 8

    /// What `node` reports of `object` (`kind`) against `generation`: nil when it serves it, else
    /// (failed, why). A node at a newer generation serves it too (the leader's view lags); a
    /// failure reported for an older generation is lag (the node has not tried this one).
    static func standing(of object: NamespacedName, kind: ReportedKind, generation: Int64, in report: NodeProgramReport) -> (failed: Bool, why: String)? {
        let what = kind == .httpRoute ? "route" : kind.rawValue
        switch kind {
        case .httpRoute:
            guard let served = report.routeGeneration(object) else { return (false, "has not programmed this \(what)") }
            return served < generation ? (false, "at generation \(served), not \(generation)") : nil
        case .gateway, .listenerSet:
            guard let program = (kind == .gateway ? report.gateways : report.listenerSets ?? [:])[object.description] else {
                return (false, "has not programmed this \(what)")
            }
            if program.generation < generation { return (false, "at generation \(program.generation), not \(generation)") }
            if let failures = program.failures, !failures.isEmpty {
                return (true, failures.sorted { $0.key < $1.key }.map { "listener \($0.key): \($0.value)" }.joined(separator: "; "))
            }
            if let pending = program.pending, !pending.isEmpty {
                return (false, pending.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; "))
            }
            return nil
        }
    }

    /// Whether every node in `reports` (the live nodes that should serve the object: node name →
    /// its report) serves `generation` of `object` with no failure, and the message that says so
    /// or names the nodes that do not. nil when there are no reports: nothing to say beyond the
    /// leader's own build (file mode, single-node tests, no Kubernetes API).
    public static func programmed(
        _ object: NamespacedName, kind: ReportedKind = .gateway, generation: Int64, reports: [String: NodeProgramReport]
    ) -> ProgrammedVerdict? {
        guard !reports.isEmpty else { return nil }
        var failed: [String] = []
        var lagging: [String] = []
        for (node, report) in reports.sorted(by: { $0.key < $1.key }) {
            guard let standing = standing(of: object, kind: kind, generation: generation, in: report) else { continue }
            if standing.failed { failed.append("\(node): \(standing.why)") } else { lagging.append("\(node): \(standing.why)") }
        }
        let serving = reports.count - failed.count - lagging.count
        if failed.isEmpty && lagging.isEmpty {
            let nodes = reports.count == 1 ? "the 1 node" : "all \(reports.count) nodes"
            return ProgrammedVerdict(programmed: true, reason: "Programmed", message: "generation \(generation) served by \(nodes)")
        }
        let named = failed + lagging
        var message = "\(serving) of \(reports.count) nodes serve generation \(generation); " + named.prefix(namedNodesLimit).joined(separator: "; ")
        if named.count > namedNodesLimit { message += "; and \(named.count - namedNodesLimit) more nodes" }
        return ProgrammedVerdict(programmed: false, reason: failed.isEmpty ? "Pending" : "Invalid", message: message)
    }

    /// The Gateway verdict (`programmed(_:kind:generation:reports:)` for a Gateway).
    public static func programmed(gateway: NamespacedName, generation: Int64, reports: [String: NodeProgramReport]) -> ProgrammedVerdict? {
        programmed(gateway, kind: .gateway, generation: generation, reports: reports)
    }

    /// `conditions` with their `Programmed` made false when the nodes' reports say the
    /// generation is not served everywhere, and its message saying by how many nodes when it is.
    /// A Programmed False of the build (no listener, no address) stays as it is: that reason comes
    /// first. Without reports, `conditions` unchanged.
    static func applying(_ reports: [String: NodeProgramReport], to conditions: [Condition]?, object: NamespacedName, kind: ReportedKind, generation: Int64) -> [Condition]? {
        guard let verdict = programmed(object, kind: kind, generation: generation, reports: reports),
            let i = conditions?.firstIndex(where: { $0.type == "Programmed" }), conditions?[i].status == "True"
        else { return conditions }
        var out = conditions
        out?[i].status = verdict.programmed ? "True" : "False"
        out?[i].reason = verdict.reason
        out?[i].message = verdict.message
        return out
    }

    /// A Gateway's `status` with its `Programmed` condition from the nodes' reports (see
    /// `applying(_:to:object:kind:generation:)`).
    public static func applying(_ reports: [String: NodeProgramReport], to status: GatewayStatus, gateway: NamespacedName, generation: Int64) -> GatewayStatus {
        var out = status
        out.conditions = applying(reports, to: status.conditions, object: gateway, kind: .gateway, generation: generation)
        return out
    }

    /// A ListenerSet's `status` with its `Programmed` condition from the nodes' reports, as a Gateway's.
    public static func applying(_ reports: [String: NodeProgramReport], to status: ListenerSetStatus, listenerSet: NamespacedName, generation: Int64) -> ListenerSetStatus {
        var out = status
        out.conditions = applying(reports, to: status.conditions, object: listenerSet, kind: .listenerSet, generation: generation)
        return out
    }

    /// An HTTPRoute's `status.parents` entries of Portway (`parents`) with each `Accepted=True`
    /// made `False`, reason `Pending`, while a live node does not serve the route's `generation`
    /// yet, the message naming those nodes (the Gateway API's `RouteReasonPending`: "the
    /// controller has not yet reconciled the route", and a route is reconciled when every node
    /// serves it). `ResolvedRefs` stays as the build says: its reasons are about references, which
    /// resolve or not whatever the nodes serve. When every node serves it, the entries stay the
    /// build's, message included: a route's status does not count the nodes, so a node joining or
    /// leaving rewrites no route (a cluster has many routes). Without reports, `parents` unchanged.
    public static func applying(_ reports: [String: NodeProgramReport], toRoute parents: [RouteParentStatus], route: NamespacedName, generation: Int64) -> [RouteParentStatus] {
        guard let verdict = programmed(route, kind: .httpRoute, generation: generation, reports: reports), !verdict.programmed else { return parents }
        return parents.map { parent in
            var out = parent
            guard let i = parent.conditions?.firstIndex(where: { $0.type == "Accepted" }), parent.conditions?[i].status == "True" else { return parent }
            out.conditions?[i].status = "False"
            out.conditions?[i].reason = "Pending"
            out.conditions?[i].message = verdict.message
            return out
        }
    }
}
