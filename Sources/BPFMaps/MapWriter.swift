import CPortwayBPF
import LoadBalancer
import Synchronization

/// Programs a desired L4 state into the pinned maps, writing only what changed, in an order that
/// never lets the datapath see a master whose count points past written slots, nor a slot whose
/// backend is missing (make before break):
///
/// 1. removed frontends: master first, then its slots, then its reverse-NAT entry;
/// 2. per frontend: new/changed backends, slots 1...N, reverse NAT, then the master (slot 0);
///    stale slots beyond the new count only after the master shrank;
/// 3. stale reverse-NAT entries, then orphan backends last.
///
/// IDs are stable: one backend ID per (address, port, protocol), shared by all frontends, and one
/// reverse-NAT (service) ID per frontend, 1...65535. A new writer re-adopts the IDs found in the
/// pins and writes nothing until its first `sync`, which also prunes what is stale.
///
/// A frontend that cannot be fully written (a full map) is rolled back to what it was, so the
/// datapath never sees it half-written; the others are still programmed.
///
/// Thread-safe (one sync at a time). `sync` makes blocking bpf() syscalls: call it from a
/// dedicated thread, not from Swift's cooperative pool.
public final class MapWriter: Sendable {
    public let maps: MapSet
    private let core: Mutex<WriterCore>

    /// Opens the writer on `maps`, reading back what they hold. Writes nothing.
    public init(maps: MapSet) throws(BPFMapError) {
        self.maps = maps
        let programmed = try ProgrammedState.read(from: maps)
        core = Mutex(WriterCore(maps: maps, programmed: programmed))
    }

    /// Makes the maps hold `desired` and prunes everything else. Never throws: failures are in the summary.
    public func sync(_ desired: DesiredL4State) -> SyncSummary {
        core.withLock { $0.sync(desired) }
    }

    /// The backend ID of (address, port, protocol), if it has one.
    public func backendID(for backend: Backend) -> UInt32? {
        guard let v4 = backend.address.ipv4 else { return nil }
        let key = BackendKey(address: v4, port: backend.port, proto: backend.proto.ipProtocolNumber)
        return core.withLock { $0.backendIDs[key] }
    }

    /// The reverse-NAT (service) ID of a frontend, if it has one.
    public func revNatID(for frontend: Frontend) -> UInt16? {
        guard let key = ServiceMapKey(frontend) else { return nil }
        return core.withLock { $0.revNatIDs[key] }
    }

    /// What the writer believes the maps hold (its mirror of every successful write).
    public var programmed: ProgrammedState { core.withLock { $0.programmed } }
}

/// The writer's state and algorithm; guarded by MapWriter's mutex.
struct WriterCore: ~Copyable {
    let maps: MapSet
    /// Mirror of the maps: updated after each successful operation only.
    var programmed: ProgrammedState
    var backendIDs: [BackendKey: UInt32] = [:]
    var backendAllocator = IDAllocator(limit: UInt32.max - 1)
    var revNatIDs: [ServiceMapKey: UInt16] = [:]
    var revNatAllocator = IDAllocator(limit: UInt32(UInt16.max))
    var counts: [MapKind: MapOpCounts] = [:]

    init(maps: MapSet, programmed: ProgrammedState) {
        self.maps = maps
        self.programmed = programmed
        // Re-adopt IDs: the lowest backend ID wins when a backend was pinned twice.
        for (id, entry) in programmed.backends.sorted(by: { $0.key < $1.key }) {
            backendAllocator.adopt(id)
            if backendIDs[entry.key] == nil { backendIDs[entry.key] = id }
        }
        // IDs that slots point at but whose backend entry is gone (a recreated backends map) stay
        // reserved, so a new backend never takes an ID an old slot still names.
        for id in programmed.referencedBackendIDs { backendAllocator.adopt(id) }
        var claimed = Set<UInt16>()
        for (key, entries) in programmed.services.sorted(by: { $0.key < $1.key }) {
            guard let master = entries.master, master.revNatID != 0, key.frontend != nil else { continue }
            if claimed.insert(master.revNatID).inserted { revNatIDs[key] = master.revNatID }
        }
        for id in claimed.union(programmed.reverseNAT.keys) { revNatAllocator.adopt(UInt32(id)) }
    }

    /// A step to undo when a frontend cannot be completed.
    enum Undo {
        case slot(ServiceMapKey, UInt16, previous: UInt32?)
        case revNat(UInt16, previous: RevNatEntry?)
        /// A backend entry this frontend created: deleted so it does not take room from the next frontends.
        case backendCreated(UInt32, BackendKey)
    }

    mutating func sync(_ desired: DesiredL4State) -> SyncSummary {
        let clock = ContinuousClock()
        let start = clock.now
        counts = [:]
        var summary = SyncSummary()
        let wanted = DesiredMaps(desired)
        summary.skipped = wanted.skipped
        summary.frontends = wanted.services.count
        summary.backends = wanted.backendStates.count
        let wantedKeys = Set(wanted.services.map(\.key))

        // 1. Removed frontends first: frees room for new ones.
        for key in programmed.services.keys.sorted() where !wantedKeys.contains(key) {
            let hadMaster = programmed.services[key]?.master != nil
            do {
                try removeService(key)
                if hadMaster { summary.removed += 1 }
            } catch {
                summary.failures.append(SyncFailure(subject: "remove \(key)", error: error))
            }
        }

        // Backends no slot points at and no desired frontend wants: gone now, to make room.
        let wantedBackends = Set(wanted.backendStates.keys)
        pruneOrphanBackends(keeping: wantedBackends, into: &summary)

        // 2. Desired frontends, each all-or-nothing.
        for service in wanted.services {
            let before = counts
            let existed = programmed.services[service.key]?.master != nil
            do {
                try apply(service, backendStates: wanted.backendStates)
                if !existed {
                    summary.added += 1
                } else if counts != before {
                    summary.updated += 1
                }
            } catch {
                summary.failures.append(SyncFailure(subject: service.key.description, error: error))
            }
        }

        // 3. Reverse-NAT entries no master uses (left by a crash or a rollback).
        let usedRevNat = Set(revNatIDs.values)
        for id in programmed.reverseNAT.keys.sorted() where !usedRevNat.contains(id) {
            do {
                try deleteRevNat(id)
                revNatAllocator.release(UInt32(id))
            } catch {
                summary.failures.append(SyncFailure(subject: "prune reverse NAT \(id)", error: error))
            }
        }

        // 4. Orphan backends last: no slot points at them any more.
        pruneOrphanBackends(keeping: [], into: &summary)
        // Allocated IDs whose backend entry could not be written are free again.
        for (key, id) in backendIDs where programmed.backends[id] == nil {
            backendIDs[key] = nil
            backendAllocator.release(id)
        }

        summary.operations = counts
        summary.duration = clock.now - start
        return summary
    }

    /// Deletes backend entries no slot points at, except those of `keeping`.
    mutating func pruneOrphanBackends(keeping: Set<BackendKey>, into summary: inout SyncSummary) {
        let referenced = programmed.referencedBackendIDs
        for id in programmed.backends.keys.sorted() where !referenced.contains(id) {
            guard let entry = programmed.backends[id], !keeping.contains(entry.key) || backendIDs[entry.key] != id else { continue }
            do {
                try deleteBackend(id)
                backendAllocator.release(id)
                if backendIDs[entry.key] == id { backendIDs[entry.key] = nil }
            } catch {
                summary.failures.append(SyncFailure(subject: "prune backend \(id)", error: error))
            }
        }
    }

    // MARK: per frontend

    /// Removes a frontend: master first (the datapath stops using it), then slots, then rev NAT.
    mutating func removeService(_ key: ServiceMapKey) throws(BPFMapError) {
        if programmed.services[key]?.master != nil {
            try deleteServiceEntry(key, slot: 0)
        }
        for slot in (programmed.services[key]?.slots.keys ?? [:].keys).sorted(by: >) {
            try deleteServiceEntry(key, slot: slot)
        }
        programmed.services[key] = nil
        if let id = revNatIDs[key] {
            revNatIDs[key] = nil
            if programmed.reverseNAT[id] != nil { try deleteRevNat(id) }
            revNatAllocator.release(UInt32(id))
        }
    }

    mutating func apply(_ service: DesiredService, backendStates: [BackendKey: UInt8]) throws(BPFMapError) {
        let key = service.key
        let newRevNat = revNatIDs[key] == nil
        let revNatID: UInt16
        if let id = revNatIDs[key] {
            revNatID = id
        } else {
            guard let id = revNatAllocator.allocate() else {
                throw .idsExhausted(what: "reverse-NAT IDs", limit: Int(UInt16.max))
            }
            revNatID = UInt16(id)
            revNatIDs[key] = revNatID
        }
        var undo: [Undo] = []
        do {
            // Backends first: a slot must never point at a missing backend.
            var slotIDs: [UInt32] = []
            for bk in service.slots {
                let existed = backendIDs[bk].map { programmed.backends[$0] != nil } ?? false
                let id = try ensureBackend(bk, state: backendStates[bk] ?? UInt8(PW_BACKEND_ACTIVE))
                if !existed { undo.append(.backendCreated(id, bk)) }
                slotIDs.append(id)
            }
            // Slots 1...N: beyond the current count they are invisible until the master grows.
            for (i, id) in slotIDs.enumerated() {
                let slot = UInt16(i + 1)
                let previous = programmed.services[key]?.slots[slot]
                if previous != id {
                    try writeSlot(key, slot: slot, backendID: id)
                    undo.append(.slot(key, slot, previous: previous))
                }
            }
            let revNat = service.revNat
            let previousRevNat = programmed.reverseNAT[revNatID]
            if previousRevNat != revNat {
                try writeRevNat(revNatID, revNat)
                undo.append(.revNat(revNatID, previous: previousRevNat))
            }
            var master = service.master
            master.revNatID = revNatID
            if programmed.services[key]?.master != master {
                try writeServiceEntry(key, slot: 0, value: master.cValue)
                programmed.services[key, default: ServiceEntries()].master = master
            }
        } catch {
            rollback(undo)
            if newRevNat {
                revNatIDs[key] = nil
                if programmed.reverseNAT[revNatID] == nil { revNatAllocator.release(UInt32(revNatID)) }
            }
            throw error
        }
        // Stale slots only now that the master no longer covers them.
        let count = service.slots.count
        for slot in (programmed.services[key]?.slots.keys ?? [:].keys).sorted() where Int(slot) > count {
            try deleteServiceEntry(key, slot: slot)
        }
    }

    /// Restores what a failed frontend overwrote, newest first. Old backends are still there
    /// (orphans go last), so restored slots point at existing backends.
    mutating func rollback(_ undo: [Undo]) {
        for step in undo.reversed() {
            switch step {
            case .slot(let key, let slot, let previous):
                if let previous {
                    try? writeSlot(key, slot: slot, backendID: previous)
                } else {
                    try? deleteServiceEntry(key, slot: slot)
                }
            case .revNat(let id, let previous):
                if let previous {
                    try? writeRevNat(id, previous)
                } else {
                    try? deleteRevNat(id)
                }
            case .backendCreated(let id, let bk):
                // Only if no slot points at it (a slot restore above may not have been possible).
                guard !programmed.referencedBackendIDs.contains(id), (try? deleteBackend(id)) != nil else { continue }
                backendAllocator.release(id)
                if backendIDs[bk] == id { backendIDs[bk] = nil }
            }
        }
    }

    /// The ID of a backend, writing its entry when it is new or its state changed.
    mutating func ensureBackend(_ bk: BackendKey, state: UInt8) throws(BPFMapError) -> UInt32 {
        let id: UInt32
        if let existing = backendIDs[bk] {
            id = existing
        } else {
            guard let fresh = backendAllocator.allocate() else { throw .idsExhausted(what: "backend IDs", limit: Int(UInt32.max - 1)) }
            id = fresh
            backendIDs[bk] = id
        }
        let entry = BackendEntry(address: bk.address, port: bk.port, proto: bk.proto, state: state)
        if programmed.backends[id] != entry {
            try maps.backends.update(id, entry.cValue)
            record(.backends, update: true)
            programmed.backends[id] = entry
        }
        return id
    }

    // MARK: counted map operations (each updates the mirror only on success)

    mutating func writeSlot(_ key: ServiceMapKey, slot: UInt16, backendID: UInt32) throws(BPFMapError) {
        var value = zeroed(pw_lb4_service.self)
        value.backend_id = backendID
        try writeServiceEntry(key, slot: slot, value: value)
        programmed.services[key, default: ServiceEntries()].slots[slot] = backendID
    }

    mutating func writeServiceEntry(_ key: ServiceMapKey, slot: UInt16, value: pw_lb4_service) throws(BPFMapError) {
        try maps.services.update(key.cKey(slot: slot), value)
        record(.services, update: true)
    }

    mutating func deleteServiceEntry(_ key: ServiceMapKey, slot: UInt16) throws(BPFMapError) {
        try maps.services.delete(key.cKey(slot: slot))
        record(.services, update: false)
        if slot == 0 {
            programmed.services[key]?.master = nil
        } else {
            programmed.services[key]?.slots[slot] = nil
        }
        if let entries = programmed.services[key], entries.master == nil, entries.slots.isEmpty {
            programmed.services[key] = nil
        }
    }

    mutating func writeRevNat(_ id: UInt16, _ entry: RevNatEntry) throws(BPFMapError) {
        try maps.reverseNAT.update(id.bigEndian, entry.cValue)
        record(.reverseNAT, update: true)
        programmed.reverseNAT[id] = entry
    }

    mutating func deleteRevNat(_ id: UInt16) throws(BPFMapError) {
        try maps.reverseNAT.delete(id.bigEndian)
        record(.reverseNAT, update: false)
        programmed.reverseNAT[id] = nil
    }

    mutating func deleteBackend(_ id: UInt32) throws(BPFMapError) {
        try maps.backends.delete(id)
        record(.backends, update: false)
        programmed.backends[id] = nil
    }

    /// Counts one successful map operation.
    mutating func record(_ kind: MapKind, update: Bool) {
        if update { counts[kind, default: MapOpCounts()].updates += 1 } else { counts[kind, default: MapOpCounts()].deletes += 1 }
    }
}
