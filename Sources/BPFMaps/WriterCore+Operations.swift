import CPortwayBPF
import LoadBalancer

/// The counted map operations: the only places the writer touches the maps.
extension WriterCore {
    // MARK: counted map operations (each updates the mirror and indices only on success)

    mutating func writeSlot(_ key: ServiceMapKey, slot: UInt16, backendID: UInt32) throws(BPFMapError) {
        var value = zeroed(pw_lb4_service.self)
        value.backend_id = backendID
        syscalls += 1
        try maps.services.update(key.cKey(slot: slot), value)
        record(.services, updates: 1)
        mirrorSlot(key, slot: slot, backendID: backendID)
    }

    /// Records a written slot in the mirror and the reference counts.
    mutating func mirrorSlot(_ key: ServiceMapKey, slot: UInt16, backendID: UInt32) {
        let previous = frontends[key, default: ServiceEntries()].slots.updateValue(backendID, forKey: slot)
        if let previous { release(previous) } else { serviceEntryCount += 1 }
        refs[backendID, default: 0] += 1
        if !unreferenced.isEmpty { unreferenced.remove(backendID) }
    }

    /// One slot less points at `id`.
    mutating func release(_ id: UInt32) {
        let n = refs[id, default: 0] - 1
        if n <= 0 {
            refs[id] = nil
            if backendEntries[id] != nil {
                unreferenced.insert(id)
                newlyUnreferenced.append(id)
            }
        } else {
            refs[id] = n
        }
    }

    mutating func writeMaster(_ key: ServiceMapKey, _ master: MasterEntry) throws(BPFMapError) {
        syscalls += 1
        try maps.services.update(key.cKey(slot: 0), master.cValue)
        record(.services, updates: 1)
        if frontends[key]?.master == nil { serviceEntryCount += 1 }
        frontends[key, default: ServiceEntries()].master = master
    }

    mutating func deleteServiceEntry(_ key: ServiceMapKey, slot: UInt16) throws(BPFMapError) {
        syscalls += 1
        try maps.services.delete(key.cKey(slot: slot))
        counts[.services, default: MapOpCounts()].deletes += 1
        if slot == 0 {
            if frontends[key]?.master != nil { serviceEntryCount -= 1 }
            frontends[key]?.master = nil
        } else if let id = frontends[key]?.slots.removeValue(forKey: slot) {
            serviceEntryCount -= 1
            release(id)
        }
        if let entries = frontends[key], entries.master == nil, entries.slots.isEmpty {
            frontends[key] = nil
        }
    }

    mutating func writeBackend(_ id: UInt32, _ entry: BackendEntry) throws(BPFMapError) {
        syscalls += 1
        try maps.backends.update(id, entry.cValue)
        record(.backends, updates: 1)
        if backendEntries.updateValue(entry, forKey: id) == nil, refs[id, default: 0] == 0 { unreferenced.insert(id) }
    }

    mutating func writeRevNat(_ id: UInt16, _ entry: RevNatEntry) throws(BPFMapError) {
        syscalls += 1
        try maps.reverseNAT.update(id.bigEndian, entry.cValue)
        record(.reverseNAT, updates: 1)
        revNatEntries[id] = entry
    }

    mutating func deleteRevNat(_ id: UInt16) throws(BPFMapError) {
        syscalls += 1
        try maps.reverseNAT.delete(id.bigEndian)
        counts[.reverseNAT, default: MapOpCounts()].deletes += 1
        revNatEntries[id] = nil
    }

    mutating func deleteBackend(_ id: UInt32) throws(BPFMapError) {
        syscalls += 1
        try maps.backends.delete(id)
        counts[.backends, default: MapOpCounts()].deletes += 1
        backendEntries[id] = nil
        unreferenced.remove(id)
    }

    /// Counts successful updates.
    mutating func record(_ kind: MapKind, updates: Int) {
        counts[kind, default: MapOpCounts()].updates += updates
    }
}
