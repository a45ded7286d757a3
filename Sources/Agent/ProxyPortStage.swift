import GatewayCore
import LoadBalancer

/// The allocation stage between translation and the outputs: stateful choices the pure translator
/// must not make. Today it fills L7 proxy ports: every frontend flagged `l7-load-balancer` without
/// a port gets the port of its Service port, assigned by LoadBalancer's pure `ProxyPortAllocator`
/// (previous assignments kept, new keys on the lowest free ports), which this stage feeds with what
/// it assigned before, so ports are stable across unrelated changes.
///
/// All frontends of one Service port (ClusterIP, NodePort, LoadBalancer IPs) share its port; the
/// port is released when the last of them goes. When the range is exhausted the frontend is left
/// without a port and listed in `exhausted`.
///
/// Across agent restarts: the stage starts with the proxy ports the pinned maps hold by frontend
/// (`inherited`, read back from the L7LB master entries). A Service port that gets its first port
/// takes the one most of its frontends held, unless another Service port uses it now, so every
/// Gateway listener keeps its port whatever order the Gateways are listed in after the restart.
/// (`GatewayFrontends.previousAssignment` does the same per Gateway key given a desired state; the
/// stage's keys are Service ports, and it holds the pins' ports by frontend until the first
/// snapshot names their Service ports.)
public struct ProxyPortStage: Sendable {
    public let allocator: ProxyPortAllocator
    private var assigned: [ProxyPortKey: UInt16] = [:]
    private var users: [ProxyPortKey: Set<Frontend>] = [:]
    private var owner: [Frontend: ProxyPortKey] = [:]
    /// Frontends left without a port because the range is full.
    public private(set) var exhausted: Set<Frontend> = []
    /// The ports the maps held at start, by frontend; an entry is dropped once its frontend got a port.
    private var inherited: [Frontend: UInt16]

    /// - Parameter inherited: the proxy port of each L7LB frontend already programmed (the pins).
    public init(range: ClosedRange<UInt16> = ProxyPortAllocator.defaultRange, inherited: [Frontend: UInt16] = [:]) {
        allocator = ProxyPortAllocator(range: range)
        self.inherited = inherited
    }

    /// The port of a Service port, if it has one.
    public func port(namespace: String, name: String, servicePort: UInt16) -> UInt16? {
        assigned[Self.key(namespace: namespace, name: name, port: servicePort)]
    }

    static func key(namespace: String, name: String, port: UInt16) -> ProxyPortKey {
        ProxyPortKey(gateway: NamespacedName(namespace: namespace, name: name), port: Int(port))
    }

    /// Fills in proxy ports in `changes` and releases those of removed frontends.
    public mutating func allocate(_ changes: FrontendChanges) -> FrontendChanges {
        var needing: [(Frontend, FrontendEntry, ProxyPortKey)] = []
        for (frontend, entry) in changes {
            release(frontend)
            guard let entry, entry.flags.contains(.l7LoadBalancer), entry.l7ProxyPort == nil else { continue }
            let key = Self.key(namespace: entry.service.namespace, name: entry.service.name, port: entry.service.port)
            users[key, default: []].insert(frontend)
            owner[frontend] = key
            needing.append((frontend, entry, key))
        }
        let wanted = Set(users.keys)
        if wanted != Set(assigned.keys) {
            let allocation = allocator.allocate(wanted: wanted, previous: previous(adding: needing.map { ($0.0, $0.2) }))
            assigned = allocation.ports
        }
        var out = changes
        for (frontend, entry, key) in needing {
            guard let port = assigned[key] else {
                exhausted.insert(frontend)
                continue
            }
            var entry = entry
            entry.l7ProxyPort = port
            out[frontend] = .some(entry)
        }
        return out
    }

    /// Fills in proxy ports in a whole state (the full path); frontends no longer in it give their ports back.
    public mutating func allocate(_ state: DesiredL4State) -> DesiredL4State {
        var changes: FrontendChanges = [:]
        for entry in state.entries { changes[entry.frontend] = .some(entry) }
        for frontend in owner.keys where changes[frontend] == nil { changes[frontend] = .some(nil) }
        for frontend in exhausted where changes[frontend] == nil { changes[frontend] = .some(nil) }
        return DesiredL4State(entries: allocate(changes).values.compactMap { $0 }, warnings: state.warnings)
    }

    /// What the allocator keeps: the current assignment, plus for a key without a port the port
    /// most of its frontends held in the pins (ties: the lower port), when no key holds it now. Keys
    /// whose frontends agree more claim first, so a frontend that moved to another Service (a
    /// reused node port) does not take a port from the Service that kept the rest.
    private mutating func previous(adding new: [(Frontend, ProxyPortKey)]) -> [ProxyPortKey: UInt16] {
        var out = assigned
        guard !inherited.isEmpty else { return out }
        var votes: [ProxyPortKey: [UInt16: Int]] = [:]
        for (frontend, key) in new {
            guard let port = inherited.removeValue(forKey: frontend), out[key] == nil else { continue }
            votes[key, default: [:]][port, default: 0] += 1
        }
        var claims: [(key: ProxyPortKey, port: UInt16, count: Int)] = []
        for (key, ports) in votes {
            guard let best = ports.min(by: { ($1.value, $0.key) < ($0.value, $1.key) }) else { continue }
            claims.append((key, best.key, best.value))
        }
        claims.sort { ($1.count, $0.key) < ($0.count, $1.key) }
        var taken = Set(assigned.values)
        for claim in claims where taken.insert(claim.port).inserted {
            out[claim.key] = claim.port
        }
        return out
    }

    private mutating func release(_ frontend: Frontend) {
        exhausted.remove(frontend)
        guard let key = owner.removeValue(forKey: frontend) else { return }
        users[key]?.remove(frontend)
        if users[key]?.isEmpty == true { users[key] = nil }
    }
}
