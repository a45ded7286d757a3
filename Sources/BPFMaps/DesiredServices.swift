import CPortwayBPF
import LoadBalancer

/// One frontend as the maps will hold it (IDs not yet assigned).
struct DesiredService {
    var key: ServiceMapKey
    /// The master without its rev-NAT ID, which the writer assigns.
    var master: MasterEntry
    /// Backends of slots 1...N: active ones, then terminating ones.
    var slots: [BackendKey]
    var revNat: RevNatEntry
}

/// The desired state lowered to map terms: services in frontend order and one state per backend.
struct DesiredMaps {
    var services: [DesiredService] = []
    /// The state written to each backend entry (the most available state when services disagree).
    var backendStates: [BackendKey: UInt8] = [:]
    var skipped: [String] = []

    init(_ state: DesiredL4State) {
        var seen = Set<ServiceMapKey>()
        var states: [BackendKey: BackendState] = [:]
        for entry in state.entries.sorted(by: { $0.frontend < $1.frontend }) {
            guard let key = ServiceMapKey(entry.frontend) else {
                skipped.append("\(entry.frontend): only IPv4 frontends are programmed")
                continue
            }
            guard seen.insert(key).inserted else {
                skipped.append("\(entry.frontend): duplicate frontend, the first entry wins")
                continue
            }
            var active: [BackendKey] = [], terminating: [BackendKey] = []
            var slotted = Set<BackendKey>()
            for backend in entry.backends {
                guard let v4 = backend.address.ipv4 else {
                    skipped.append("\(entry.frontend) backend \(backend.address): only IPv4 backends are programmed")
                    continue
                }
                // Quarantined and maintenance backends get no slot: the datapath never picks them.
                guard backend.state == .active || backend.state == .terminating else { continue }
                let bk = BackendKey(address: v4, port: backend.port, proto: backend.proto.ipProtocolNumber)
                guard slotted.insert(bk).inserted else { continue }
                if backend.state == .active { active.append(bk) } else { terminating.append(bk) }
                states[bk] = min(states[bk] ?? backend.state, backend.state)
            }
            var flags: UInt8 = 0
            var all = entry.flags
            switch entry.type {
            case .clusterIP: all.insert(.clusterIP)
            case .nodePort: all.insert(.nodePort)
            case .loadBalancer: all.insert(.loadBalancer)
            case .externalIPs: all.insert(.externalIPs)
            }
            for (bit, flag) in flagBits where all.contains(flag) { flags |= bit }
            var flags2: UInt8 = 0
            var union: UInt32 = 0
            if all.contains(.l7LoadBalancer) || entry.l7ProxyPort != nil {
                flags2 |= UInt8(PW_SVC_FLAG2_L7LB)
                union = UInt32(entry.l7ProxyPort ?? 0)
            } else if all.contains(.sessionAffinity) {
                union = entry.affinityTimeoutSeconds ?? 10800
            }
            // Slot numbers are u16; a frontend with more backends than that keeps the first ones.
            let limit = Int(UInt16.max) - 1
            if active.count + terminating.count > limit {
                skipped.append("\(entry.frontend): more than \(limit) backends, the rest are not programmed")
                active = Array(active.prefix(limit))
                terminating = Array(terminating.prefix(limit - active.count))
            }
            let master = MasterEntry(
                count: UInt16(active.count), qcount: UInt16(terminating.count), revNatID: 0,
                flags: flags, flags2: flags2, union: union)
            services.append(DesiredService(
                key: key, master: master, slots: active + terminating,
                revNat: RevNatEntry(address: key.address, port: key.port)))
        }
        backendStates = states.mapValues { BackendEntry.stateValue($0) }
    }
}
