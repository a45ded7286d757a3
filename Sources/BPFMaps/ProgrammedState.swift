import CPortwayBPF
import LoadBalancer

/// The services-map entries of one frontend: its master (slot 0) and its backend slots.
public struct ServiceEntries: Hashable, Sendable {
    public var master: MasterEntry?
    /// Slot number (1...) to backend ID.
    public var slots: [UInt16: UInt32]

    public init(master: MasterEntry? = nil, slots: [UInt16: UInt32] = [:]) {
        self.master = master
        self.slots = slots
    }
}

/// What the pinned load-balancing maps hold, read back entry by entry. This is the truth that
/// `bpf lb list` prints and that a restarted writer re-adopts its IDs from.
public struct ProgrammedState: Hashable, Sendable {
    public var services: [ServiceMapKey: ServiceEntries]
    public var backends: [UInt32: BackendEntry]
    public var reverseNAT: [UInt16: RevNatEntry]

    public init(services: [ServiceMapKey: ServiceEntries] = [:], backends: [UInt32: BackendEntry] = [:], reverseNAT: [UInt16: RevNatEntry] = [:]) {
        self.services = services
        self.backends = backends
        self.reverseNAT = reverseNAT
    }

    /// Reads the services, backends and reverse-NAT maps (blocking syscalls, one per key and value).
    public static func read(from maps: MapSet) throws(BPFMapError) -> ProgrammedState {
        try read(from: LoadBalancerMaps(maps))
    }

    /// Reads the three load-balancing maps of any implementation.
    public static func read(from maps: LoadBalancerMaps) throws(BPFMapError) -> ProgrammedState {
        var state = ProgrammedState()
        for (k, v) in try maps.services.entries(pw_lb4_key.self, pw_lb4_service.self) {
            let (key, slot) = ServiceMapKey.from(k)
            if slot == 0 {
                state.services[key, default: ServiceEntries()].master = MasterEntry(v)
            } else {
                state.services[key, default: ServiceEntries()].slots[slot] = v.backend_id
            }
        }
        for (id, v) in try maps.backends.entries(UInt32.self, pw_lb4_backend.self) {
            state.backends[id] = BackendEntry(v)
        }
        for (k, v) in try maps.reverseNAT.entries(UInt16.self, pw_lb4_reverse_nat.self) {
            state.reverseNAT[UInt16(bigEndian: k)] = RevNatEntry(v)
        }
        return state
    }

    /// The L7 proxy port of every L7LB frontend the maps hold: what a restarted agent hands its
    /// allocation stage so each Gateway listener keeps its port (`ProxyPortStage`), and what
    /// `portway explain --bpffs` reports instead of allocating afresh. Port 0 is no port.
    public var l7ProxyPorts: [Frontend: UInt16] {
        var out: [Frontend: UInt16] = [:]
        for (key, entries) in services {
            guard let master = entries.master, master.isL7LB, let frontend = key.frontend,
                  let port = UInt16(exactly: master.union), port != 0 else { continue }
            out[frontend] = port
        }
        return out
    }
}
