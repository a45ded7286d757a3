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
public struct ProxyPortStage: Sendable {
    public let allocator: ProxyPortAllocator
    private var assigned: [ProxyPortKey: UInt16] = [:]
    private var users: [ProxyPortKey: Set<Frontend>] = [:]
    private var owner: [Frontend: ProxyPortKey] = [:]
    /// Frontends left without a port because the range is full.
    public private(set) var exhausted: Set<Frontend> = []

    public init(range: ClosedRange<UInt16> = ProxyPortAllocator.defaultRange) { allocator = ProxyPortAllocator(range: range) }

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
            let allocation = allocator.allocate(wanted: wanted, previous: assigned)
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

    private mutating func release(_ frontend: Frontend) {
        exhausted.remove(frontend)
        guard let key = owner.removeValue(forKey: frontend) else { return }
        users[key]?.remove(frontend)
        if users[key]?.isEmpty == true { users[key] = nil }
    }
}
