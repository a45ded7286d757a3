import LoadBalancer

/// The allocation stage between translation and the outputs: stateful choices the pure translator
/// must not make. Today it hands out L7 proxy ports: every frontend flagged `l7-load-balancer`
/// without a port gets the one of its Service port, from a configured range.
///
/// One port per Service port (namespace, name, port number): all its frontends (ClusterIP,
/// NodePort, LoadBalancer IPs) share it. The first choice is a hash of the Service port, so a
/// restarted agent usually picks the same ports; a taken one moves to the next free port. A port
/// is released when the last frontend using it goes. When the range is exhausted the frontend is
/// left without a port and reported (the datapath then treats it as L4 with no backends).
public struct ProxyPortAllocator: Sendable {
    public let range: ClosedRange<UInt16>
    private var byService: [ServicePortKey: UInt16] = [:]
    private var users: [ServicePortKey: Set<Frontend>] = [:]
    private var owner: [Frontend: ServicePortKey] = [:]
    private var taken: Set<UInt16> = []
    /// Frontends left without a port because the range is full.
    public private(set) var exhausted: Set<Frontend> = []

    struct ServicePortKey: Hashable, Sendable {
        var namespace: String
        var name: String
        var port: UInt16
    }

    public init(range: ClosedRange<UInt16> = 15000...15999) { self.range = range }

    /// The port of a Service port, if it has one.
    public func port(namespace: String, name: String, servicePort: UInt16) -> UInt16? {
        byService[ServicePortKey(namespace: namespace, name: name, port: servicePort)]
    }

    /// Fills in proxy ports in `changes` and releases those of removed frontends.
    public mutating func allocate(_ changes: FrontendChanges) -> FrontendChanges {
        var out = changes
        for (frontend, entry) in changes {
            release(frontend)
            guard var entry, entry.flags.contains(.l7LoadBalancer), entry.l7ProxyPort == nil else { continue }
            let key = ServicePortKey(namespace: entry.service.namespace, name: entry.service.name, port: entry.service.port)
            guard let port = byService[key] ?? choose(for: key) else {
                exhausted.insert(frontend)
                continue
            }
            byService[key] = port
            users[key, default: []].insert(frontend)
            owner[frontend] = key
            entry.l7ProxyPort = port
            out[frontend] = .some(entry)
        }
        return out
    }

    /// Fills in proxy ports in a whole state (the full path).
    public mutating func allocate(_ state: DesiredL4State) -> DesiredL4State {
        var changes: FrontendChanges = [:]
        for entry in state.entries { changes[entry.frontend] = .some(entry) }
        // Frontends no longer in the state give their ports back.
        for frontend in owner.keys where changes[frontend] == nil { changes[frontend] = .some(nil) }
        for frontend in exhausted where changes[frontend] == nil { changes[frontend] = .some(nil) }
        let allocated = allocate(changes)
        return DesiredL4State(entries: allocated.values.compactMap { $0 }, warnings: state.warnings)
    }

    private mutating func release(_ frontend: Frontend) {
        exhausted.remove(frontend)
        guard let key = owner.removeValue(forKey: frontend) else { return }
        users[key]?.remove(frontend)
        if users[key]?.isEmpty == true {
            users[key] = nil
            if let port = byService.removeValue(forKey: key) { taken.remove(port) }
        }
    }

    private mutating func choose(for key: ServicePortKey) -> UInt16? {
        let count = Int(range.upperBound) - Int(range.lowerBound) + 1
        guard taken.count < count else { return nil }
        // FNV-1a: stable across runs (Swift's Hasher is seeded per process).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(key.namespace)/\(key.name)/\(key.port)".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let start = Int(hash % UInt64(count))
        for i in 0..<count {
            let port = UInt16(Int(range.lowerBound) + (start + i) % count)
            if taken.insert(port).inserted { return port }
        }
        return nil
    }
}
