import CPortwayBPF
import LoadBalancer

/// One frontend as the maps will hold it (IDs not yet assigned).
struct DesiredService: Equatable {
    var key: ServiceMapKey
    var frontend: Frontend
    /// The Service it belongs to: capacity is granted per Service, whole.
    var group: ServiceName
    /// The master without its rev-NAT ID, which the writer assigns.
    var master: MasterEntry
    /// Backends of slots 1...N: `master.count` active ones, then terminating ones.
    var slots: [BackendKey]
    var revNat: RevNatEntry

    /// Whether slot index `i` (0-based) holds an active backend.
    func isActive(_ i: Int) -> Bool { i < Int(master.count) }

    /// Entries this frontend takes in the services map: its master and its slots.
    var serviceEntries: Int { 1 + slots.count }
}

/// A Service's namespace and name, ordered by namespace, then name.
struct ServiceName: Hashable, Comparable {
    var namespace: String
    var name: String

    static func < (a: ServiceName, b: ServiceName) -> Bool { (a.namespace, a.name) < (b.namespace, b.name) }
}

/// The most endpoints one frontend can have: slot numbers are u16 and slot 0 is the master.
let maxSlotsPerFrontend = Int(UInt16.max) - 1

/// Lowers model entries to map terms, collecting what cannot be programmed.
struct Lowering {
    /// Entries the datapath cannot hold (IPv6), as "what: why".
    var skipped: [String] = []
    /// Entries programmed only in part (more endpoints than slots), for the agent's warning log.
    var warnings: [String] = []

    /// The map form of `entry`; nil (and a `skipped` line) for an IPv6 frontend.
    mutating func lower(_ entry: borrowing FrontendEntry) -> DesiredService? {
        withUnsafePointer(to: entry) { lower($0) }
    }

    /// The map form of the entry at `entry`, read field by field: a full sync lowers the input in
    /// place, and a borrowed entry read from the input's buffer was copied whole first (retaining
    /// all its fields) in the release build.
    mutating func lower(_ entry: UnsafePointer<FrontendEntry>) -> DesiredService? {
        guard let key = ServiceMapKey(entry.pointee.frontend) else {
            skipped.append("\(entry.pointee.frontend): only IPv4 frontends are programmed")
            return nil
        }
        var active: [BackendKey] = [], terminating: [BackendKey] = []
        active.reserveCapacity(entry.pointee.backends.count)
        // Duplicates are rare and lists short: a linear check up to 16 backends, a set beyond.
        var slotted = Set<BackendKey>()
        let small = entry.pointee.backends.count <= 16
        for backend in entry.pointee.backends {
            guard let v4 = backend.address.ipv4 else {
                skipped.append("\(entry.pointee.frontend) backend \(backend.address): only IPv4 backends are programmed")
                continue
            }
            // Quarantined and maintenance backends get no slot: the datapath never picks them.
            guard backend.state == .active || backend.state == .terminating else { continue }
            let bk = BackendKey(address: v4, port: backend.port, proto: backend.proto.ipProtocolNumber)
            if small {
                guard !active.contains(bk) && !terminating.contains(bk) else { continue }
            } else {
                guard slotted.insert(bk).inserted else { continue }
            }
            if backend.state == .active { active.append(bk) } else { terminating.append(bk) }
        }
        var flags: UInt8 = 0
        var all = entry.pointee.flags
        switch entry.pointee.type {
        case .clusterIP: all.insert(.clusterIP)
        case .nodePort: all.insert(.nodePort)
        case .loadBalancer: all.insert(.loadBalancer)
        case .externalIPs: all.insert(.externalIPs)
        }
        for (bit, flag) in flagBits where all.contains(flag) { flags |= bit }
        var flags2: UInt8 = 0
        var union: UInt32 = 0
        if all.contains(.l7LoadBalancer) || entry.pointee.l7ProxyPort != nil {
            flags2 |= UInt8(PW_SVC_FLAG2_L7LB)
            union = UInt32(entry.pointee.l7ProxyPort ?? 0)
        } else if all.contains(.sessionAffinity) {
            union = entry.pointee.affinityTimeoutSeconds ?? 10800
        }
        if active.count + terminating.count > maxSlotsPerFrontend {
            warnings.append("\(entry.pointee.frontend) (Service \(entry.pointee.service.namespace)/\(entry.pointee.service.name)): "
                + "\(active.count + terminating.count) endpoints, the datapath holds \(maxSlotsPerFrontend) per frontend; the rest are not programmed")
            active = Array(active.prefix(maxSlotsPerFrontend))
            terminating = Array(terminating.prefix(maxSlotsPerFrontend - active.count))
        }
        let master = MasterEntry(
            count: UInt16(active.count), qcount: UInt16(terminating.count), revNatID: 0,
            flags: flags, flags2: flags2, union: union)
        return DesiredService(
            key: key, frontend: entry.pointee.frontend, group: ServiceName(namespace: entry.pointee.service.namespace, name: entry.pointee.service.name), master: master,
            slots: terminating.isEmpty ? active : active + terminating, revNat: RevNatEntry(address: key.address, port: key.port))
    }
}
