import CPortwayBPF
import LoadBalancer

/// The cold path: many new frontends written phase by phase with batch updates.
extension WriterCore {
    // MARK: batch path

    /// Writes new frontends phase by phase with batch updates: their backends, slots, reverse NAT,
    /// then masters. Returns the frontends whose master did not get written, cleaned up again, for
    /// the one-by-one path (which reports exactly what fails).
    mutating func writeBatch(_ services: [DesiredService], into summary: inout SyncSummary) -> [DesiredService] {
        // IDs.
        var revIDs: [UInt16] = []
        revIDs.reserveCapacity(services.count)
        var backendKeys: [UInt32] = [], backendValues: [pw_lb4_backend] = [], backendEntries: [BackendEntry] = []
        var scheduled = Set<UInt32>(minimumCapacity: services.count * 2)
        var allocatedBackends: [(BackendKey, UInt32)] = []
        var usable = services.count
        outer: for (n, s) in services.enumerated() {
            guard let rev = revNatAllocator.allocate() else { usable = n; break }
            revIDs.append(UInt16(rev))
            revNatIDs[s.key] = UInt16(rev)
            for bk in s.slots {
                let state = backendUse[bk]?.state ?? UInt8(PW_BACKEND_ACTIVE)
                let id: UInt32
                var fresh = false
                if let existing = backendIDs[bk] {
                    id = existing
                } else {
                    fresh = true
                    guard let allocated = backendAllocator.allocate() else {
                        revNatIDs[s.key] = nil
                        revNatAllocator.release(rev)
                        revIDs.removeLast()
                        usable = n
                        break outer
                    }
                    id = allocated
                    backendIDs[bk] = id
                    allocatedBackends.append((bk, id))
                }
                let entry = BackendEntry(address: bk.address, port: bk.port, proto: bk.proto, state: state)
                // A freshly allocated ID is new to the maps and to this chunk: no checks needed.
                if fresh || (programmed.backends[id] != entry && scheduled.insert(id).inserted) {
                    backendKeys.append(id)
                    backendValues.append(entry.cValue)
                    backendEntries.append(entry)
                }
            }
        }
        let batch = Array(services[..<usable])
        var leftovers = Array(services[usable...])

        // Phase 1: backends.
        let b = maps.backends.updateBatch(backendKeys, backendValues)
        syscalls += 1
        for i in 0..<b.written { programmed.backends[backendKeys[i]] = backendEntries[i] }
        record(.backends, updates: b.written)
        var failedPhase = b.error != nil

        // Phase 2: slots.
        let slotsTotal = batch.reduce(0) { $0 + $1.slots.count }
        var slotsWritten = 0
        if !failedPhase {
            var keys: [pw_lb4_key] = [], values: [pw_lb4_service] = []
            for s in batch {
                for (i, bk) in s.slots.enumerated() {
                    keys.append(s.key.cKey(slot: UInt16(i + 1)))
                    var v = zeroed(pw_lb4_service.self)
                    v.backend_id = backendIDs[bk]!
                    values.append(v)
                }
            }
            let r = maps.services.updateBatch(keys, values)
            syscalls += 1
            slotsWritten = r.written
            // Mirror what was written: whole frontends at once (they had no entries), then the rest slot by slot.
            var n = 0
            for s in batch {
                guard n < r.written else { break }
                let written = min(s.slots.count, r.written - n)
                if written == s.slots.count && programmed.services[s.key] == nil {
                    var slots: [UInt16: UInt32] = Dictionary(minimumCapacity: written)
                    for i in 0..<written {
                        let id = values[n + i].backend_id
                        slots[UInt16(i + 1)] = id
                        refs[id, default: 0] += 1
                    }
                    programmed.services[s.key] = ServiceEntries(master: nil, slots: slots)
                    serviceEntryCount += written
                } else {
                    for i in 0..<written { mirrorSlot(s.key, slot: UInt16(i + 1), backendID: values[n + i].backend_id) }
                }
                n += written
            }
            record(.services, updates: r.written)
            failedPhase = r.error != nil
        }
        // Backends written that no slot got to point at are orphans (none when every slot was written).
        if slotsWritten < slotsTotal || usable < services.count {
            for i in 0..<b.written where refs[backendKeys[i], default: 0] == 0 { unreferenced.insert(backendKeys[i]) }
        }

        // Phase 3: reverse NAT.
        if !failedPhase {
            let keys = revIDs.map { $0.bigEndian }
            let values = batch.map { $0.revNat.cValue }
            let r = maps.reverseNAT.updateBatch(keys, values)
            syscalls += 1
            for i in 0..<r.written { programmed.reverseNAT[revIDs[i]] = batch[i].revNat }
            record(.reverseNAT, updates: r.written)
            failedPhase = r.error != nil
        }

        // Phase 4: masters.
        var mastersWritten = 0
        if !failedPhase {
            let masters = batch.enumerated().map { i, s -> MasterEntry in
                var m = s.master
                m.revNatID = revIDs[i]
                return m
            }
            let r = maps.services.updateBatch(batch.map { $0.key.cKey(slot: 0) }, masters.map(\.cValue))
            syscalls += 1
            for i in 0..<r.written {
                programmed.services[batch[i].key, default: ServiceEntries()].master = masters[i]
                serviceEntryCount += 1
            }
            record(.services, updates: r.written)
            mastersWritten = r.written
        }
        summary.added += mastersWritten

        // Frontends without a master: take back what the batch wrote for them, then one by one.
        for s in batch[mastersWritten...] {
            try? removeService(s.key)
            if let id = revNatIDs.removeValue(forKey: s.key) {
                if programmed.reverseNAT[id] != nil { try? deleteRevNat(id) }
                revNatAllocator.release(UInt32(id))
            }
            leftovers.append(s)
        }
        // Backend IDs allocated but never written are free again.
        for (bk, id) in allocatedBackends where b.written < backendKeys.count && programmed.backends[id] == nil {
            if backendIDs[bk] == id { backendIDs[bk] = nil }
            backendAllocator.release(id)
        }
        return leftovers
    }
}
