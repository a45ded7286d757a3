import CPortwayBPF
import LoadBalancer

/// One frontend at a time: make before break, rollback of what it wrote.
extension WriterCore {
    // MARK: per frontend

    /// A step to undo when a frontend cannot be completed.
    enum Undo {
        case slot(ServiceMapKey, UInt16, previous: UInt32?)
        case revNat(UInt16, previous: RevNatEntry?)
        /// A backend entry this frontend created: deleted so it does not take room from the next frontends.
        case backendCreated(UInt32, BackendKey)
    }

    /// Programs one admitted frontend, recording the outcome.
    mutating func upsert(_ service: DesiredService, needed: Set<BackendKey>?, into summary: inout SyncSummary) {
        let before = counts
        let existed = frontends[service.key]?.master != nil
        do {
            try write(service)
            if !existed {
                summary.added += 1
            } else if counts != before {
                summary.updated += 1
            }
        } catch {
            failed[service.key] = error
            summary.failures.append(SyncFailure(subject: service.key.description, frontend: service.frontend, error: error))
        }
        pruneNewlyUnreferenced(keeping: needed)
    }

    /// Removes a frontend: master first (the datapath stops using it), then slots, then rev NAT.
    mutating func removeService(_ key: ServiceMapKey) throws(BPFMapError) {
        if frontends[key]?.master != nil {
            try deleteServiceEntry(key, slot: 0)
        }
        for slot in (frontends[key]?.slots.keys ?? []).sorted(by: >) {
            try deleteServiceEntry(key, slot: slot)
        }
        if let id = frontends[revNatID: key] {
            if revNatEntries[id] != nil { try deleteRevNat(id) }
            frontends[revNatID: key] = nil
            revNatAllocator.release(UInt32(id))
        }
    }

    mutating func write(_ service: DesiredService) throws(BPFMapError) {
        let key = service.key
        let existing = frontends[revNatID: key]
        let newRevNat = existing == nil
        let revNatID: UInt16
        if let id = existing {
            revNatID = id
        } else {
            guard let id = revNatAllocator.allocate() else {
                throw .idsExhausted(what: "reverse-NAT IDs", limit: Int(UInt16.max))
            }
            revNatID = UInt16(id)
            frontends[revNatID: key] = revNatID
        }
        var undo: [Undo] = []
        do {
            // Backends first: a slot must never point at a missing backend.
            var slotIDs: [UInt32] = []
            slotIDs.reserveCapacity(service.slots.count)
            for bk in service.slots {
                let (id, created) = try ensureBackend(bk)
                if created { undo.append(.backendCreated(id, bk)) }
                slotIDs.append(id)
            }
            // Slots 1...N: beyond the current count they are invisible until the master grows.
            for (i, id) in slotIDs.enumerated() {
                let slot = UInt16(i + 1)
                let previous = frontends[key]?.slots[slot]
                if previous != id {
                    try writeSlot(key, slot: slot, backendID: id)
                    undo.append(.slot(key, slot, previous: previous))
                }
            }
            let previousRevNat = revNatEntries[revNatID]
            if previousRevNat != service.revNat {
                try writeRevNat(revNatID, service.revNat)
                undo.append(.revNat(revNatID, previous: previousRevNat))
            }
            var master = service.master
            master.revNatID = revNatID
            if frontends[key]?.master != master {
                try writeMaster(key, master)
            }
        } catch {
            rollback(undo)
            if newRevNat {
                frontends[revNatID: key] = nil
                if revNatEntries[revNatID] == nil { revNatAllocator.release(UInt32(revNatID)) }
            }
            throw error
        }
        // Stale slots only now that the master no longer covers them.
        let count = service.slots.count
        if let slots = frontends[key]?.slots, slots.count > count {
            for slot in slots.keys.sorted() where Int(slot) > count {
                try deleteServiceEntry(key, slot: slot)
            }
        }
    }

    /// Restores what a failed frontend overwrote, newest first. Old backends are still there
    /// (orphans go last), so restored slots point at existing backends. Linear in the undo list:
    /// a created backend is deleted only when its reference count says no slot names it.
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
                guard refs[id, default: 0] == 0, (try? deleteBackend(id)) != nil else { continue }
                backendAllocator.release(id)
                clearBackendID(bk, ifIs: id)
            }
        }
    }

    /// The ID of a backend, writing its entry when it is new or its state changed; `created` when
    /// this call wrote the entry where there was none.
    mutating func ensureBackend(_ bk: BackendKey) throws(BPFMapError) -> (UInt32, created: Bool) {
        let index = backends.insert(bk)
        let record = backends.records[index]
        let state = record.use.state ?? UInt8(PW_BACKEND_ACTIVE)
        let id: UInt32
        var fresh = false
        if record.id != 0 {
            id = record.id
        } else {
            guard let allocated = backendAllocator.allocate() else {
                if record.isEmpty { backends.remove(at: index) }
                throw .idsExhausted(what: "backend IDs", limit: Int(UInt32.max - 1))
            }
            id = allocated
            backends.records[index].id = id
            fresh = true
        }
        let entry = BackendEntry(address: bk.address, port: bk.port, proto: bk.proto, state: state)
        let previous = backendEntries[id]
        if previous != entry {
            do {
                try writeBackend(id, entry)
            } catch {
                if fresh {
                    clearBackendID(bk, ifIs: id)
                    backendAllocator.release(id)
                }
                throw error
            }
        }
        return (id, previous == nil)
    }
}
