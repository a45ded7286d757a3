import KubeModels
import LoadBalancer

// Status that tells the truth: each node's agent publishes what its proxy serves (a
// `NodeProgramReport`, in a Lease per node: docs/GATEWAY-API.md, "Programmed: what the nodes
// report"), and the leader writes a Gateway `Programmed=True` only when every live node serves the
// Gateway's generation with no failure (`NodeProgramReport.programmed`).

/// What one node's agent has programmed: per Gateway, the generation its proxy serves now and the
/// listeners it could not serve. Encoded as compact JSON with sorted keys (the Lease annotation
/// `NodeProgramReport.annotation`; the agent encodes it, this module has no Foundation).
public struct NodeProgramReport: Codable, Hashable, Sendable {
    /// "namespace/name" of each Portway Gateway this node knows → what it serves of it.
    public var gateways: [String: GatewayProgram]

    public init(gateways: [String: GatewayProgram] = [:]) { self.gateways = gateways }

    /// The annotation of the node's Lease that carries the report.
    public static let annotation = "portway.io/programmed"
    /// The label of the nodes' report Leases (the leader's informer selects it); its value is the node.
    public static let label = "portway.io/node-report"
    /// The name of a node's report Lease.
    public static func leaseName(node: String) -> String { "portway-node-\(node)" }

    /// The report drafted from this node's Gateway build, before its proxy has applied it: each
    /// owned Gateway's generation, and the listeners left out for a certificate this node's TLS
    /// library refused or could not find (`InvalidCertificateRef`). The proxy adds what it failed
    /// to load or open (`L7ProxyOutput`).
    public static func draft(state: GatewayState, index: ClusterIndex) -> NodeProgramReport {
        var out = NodeProgramReport()
        for key in state.ownedGateways {
            let generation = index.gateways[ObjectKey(namespace: key.namespace, name: key.name)]?.first?.metadata.generation ?? 0
            var program = GatewayProgram(generation: generation)
            for listener in state.unservedListeners where listener.gateway == key && listener.reason == "InvalidCertificateRef" {
                program.fail(listener: listener.name, "certificate not loaded: \(listener.message)")
            }
            out.gateways[key.description] = program
        }
        return out
    }
}

/// What one node serves of one Gateway.
public struct GatewayProgram: Codable, Hashable, Sendable {
    /// The Gateway's `metadata.generation` the node's proxy serves.
    public var generation: Int64
    /// Listener name → why this node does not serve it; nil when none failed.
    public var failures: [String: String]?

    public init(generation: Int64, failures: [String: String]? = nil) {
        self.generation = generation
        self.failures = failures
    }

    /// Records a failure of `listener` (the first one of a listener is kept).
    public mutating func fail(listener: String, _ message: String) {
        if failures?[listener] == nil { failures = (failures ?? [:]).merging([listener: message]) { old, _ in old } }
    }
}

/// The leader's verdict on a Gateway generation from the nodes' reports.
public struct ProgrammedVerdict: Hashable, Sendable {
    public var programmed: Bool
    /// `Programmed`, `Pending` (nodes lag) or `Invalid` (a node failed).
    public var reason: String
    public var message: String
}

extension NodeProgramReport {
    /// How many nodes a condition's message names at most (the others are counted).
    public static let namedNodesLimit = 8

    /// Whether every node in `reports` (the live nodes that should serve the Gateway: node name →
    /// its report) serves `generation` of `gateway` with no failed listener. A node at a newer
    /// generation serves it too (the leader's view lags). nil when there are no reports: nothing
    /// to say beyond the leader's own build (file mode, single-node tests, no Kubernetes API).
    public static func programmed(gateway: NamespacedName, generation: Int64, reports: [String: NodeProgramReport]) -> ProgrammedVerdict? {
        guard !reports.isEmpty else { return nil }
        var failed: [String] = []
        var lagging: [String] = []
        for (node, report) in reports.sorted(by: { $0.key < $1.key }) {
            guard let program = report.gateways[gateway.description] else {
                lagging.append("\(node): has not programmed this Gateway")
                continue
            }
            if program.generation < generation {
                lagging.append("\(node): at generation \(program.generation), not \(generation)")
            } else if let failures = program.failures, !failures.isEmpty {
                let listeners = failures.sorted { $0.key < $1.key }.map { "listener \($0.key): \($0.value)" }
                failed.append("\(node): \(listeners.joined(separator: "; "))")
            }
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

    /// `status` with its `Programmed` condition made false when the nodes' reports say the
    /// generation is not served everywhere, and its message saying by how many nodes when it is.
    /// A Programmed False of the build (no listener, no address) stays as it is: that reason comes
    /// first. Without reports, `status` unchanged.
    public static func applying(_ reports: [String: NodeProgramReport], to status: GatewayStatus, gateway: NamespacedName, generation: Int64) -> GatewayStatus {
        guard let verdict = programmed(gateway: gateway, generation: generation, reports: reports),
            let i = status.conditions?.firstIndex(where: { $0.type == "Programmed" }), status.conditions?[i].status == "True"
        else { return status }
        var out = status
        out.conditions?[i].status = verdict.programmed ? "True" : "False"
        out.conditions?[i].reason = verdict.reason
        out.conditions?[i].message = verdict.message
        return out
    }
}
