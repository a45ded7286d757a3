import CPortwayBPF
import LoadBalancer

/// The services-map entries of one frontend: its master (slot 0) and its backend slots.
public struct ServiceEntries: Hashable, Sendable {
    public var master: MasterEntry?
    /// Slot number (1...) to backend ID.
    public var slots: SlotMap

    public init(master: MasterEntry? = nil, slots: SlotMap = [:]) {
        self.master = master
        self.slots = slots
    }
}

/// A frontend's slots, slot number (1...) to backend ID, read and written like a
/// `[UInt16: UInt32]`. The writer writes slots 1...N without gaps, so they live in an array (no
/// hashing, one allocation per frontend); slots past a gap (maps written by others, or a slot
/// deleted from the middle) go to a dictionary. The split is canonical — `dense` is the longest
/// run 1...n and `sparse` holds only slots past n + 1 (or slot 0) — so equal maps compare equal.
public struct SlotMap: Hashable, Sendable, Sequence, ExpressibleByDictionaryLiteral {
    /// Slots 1...dense.count.
    private var dense: [UInt32] = []
    /// The other slots: never 1...dense.count + 1.
    private var sparse: [UInt16: UInt32] = [:]

    public init() {}

    public init(dictionaryLiteral elements: (UInt16, UInt32)...) {
        for (slot, id) in elements { self[slot] = id }
    }

    /// Slots 1...ids.count (at most 65,535).
    public init(dense ids: [UInt32]) {
        precondition(ids.count <= Int(UInt16.max), "slot numbers are u16")
        dense = ids
    }

    public var count: Int { dense.count + sparse.count }
    public var isEmpty: Bool { dense.isEmpty && sparse.isEmpty }

    /// The slot numbers, the run 1...n first in order, then the others in no particular order.
    public var keys: [UInt16] {
        let run = dense.isEmpty ? [] : Array(1...UInt16(dense.count))
        return sparse.isEmpty ? run : run + sparse.keys
    }

    /// The backend IDs, in the order of `keys`.
    public var values: [UInt32] { sparse.isEmpty ? dense : dense + sparse.values }

    public subscript(slot: UInt16) -> UInt32? {
        get {
            if slot >= 1 && Int(slot) <= dense.count { return dense[Int(slot) - 1] }
            return sparse.isEmpty ? nil : sparse[slot]
        }
        set {
            if let newValue { updateValue(newValue, forKey: slot) } else { removeValue(forKey: slot) }
        }
    }

    /// Sets a slot; returns the ID it held.
    @discardableResult
    public mutating func updateValue(_ id: UInt32, forKey slot: UInt16) -> UInt32? {
        let i = Int(slot)
        if i >= 1 && i <= dense.count {
            defer { dense[i - 1] = id }
            return dense[i - 1]
        }
        guard i >= 1 && i == dense.count + 1 else { return sparse.updateValue(id, forKey: slot) }
        dense.append(id)
        // Slots past the gap this one closed now continue the run.
        while !sparse.isEmpty, dense.count < Int(UInt16.max), let next = sparse.removeValue(forKey: UInt16(dense.count + 1)) {
            dense.append(next)
        }
        return nil
    }

    /// Clears a slot; returns the ID it held. Clearing one inside the run moves the slots after it
    /// to `sparse`.
    @discardableResult
    public mutating func removeValue(forKey slot: UInt16) -> UInt32? {
        let i = Int(slot)
        guard i >= 1 && i <= dense.count else { return sparse.isEmpty ? nil : sparse.removeValue(forKey: slot) }
        let old = dense[i - 1]
        for j in i..<dense.count { sparse[UInt16(j + 1)] = dense[j] }
        dense.removeSubrange((i - 1)...)
        return old
    }

    /// (slot, backend ID) pairs in the order of `keys`.
    public func makeIterator() -> Iterator { Iterator(dense: dense, rest: sparse.makeIterator()) }

    public struct Iterator: IteratorProtocol {
        fileprivate var dense: [UInt32]
        fileprivate var index = 0
        fileprivate var rest: Dictionary<UInt16, UInt32>.Iterator

        fileprivate init(dense: [UInt32], rest: Dictionary<UInt16, UInt32>.Iterator) {
            self.dense = dense
            self.rest = rest
        }

        public mutating func next() -> (key: UInt16, value: UInt32)? {
            guard index < dense.count else { return rest.next() }
            index += 1
            return (UInt16(index), dense[index - 1])
        }
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
