import CPortwayBPF
import LoadBalancer

/// The cold path: many new frontends written phase by phase with batch updates.
extension WriterCore {
    // MARK: batch path

    /// Writes new frontends phase by phase with batch updates: their backends, slots, reverse NAT,
    /// then masters. A batch stopped by an error (the kernel says how many pairs it wrote) lets the
    /// frontends it had finished go on to the next phases; the others are taken back again and
    /// returned for the one-by-one path (which reports exactly what fails).
    /// `positions`: the backend record of each of their slots, in order (from counting the uses),
    /// or nil to look each up.
    mutating func writeBatch(_ services: ArraySlice<DesiredService>, positions: ArraySlice<Int32>?, into summary: inout SyncSummary) -> [DesiredService] {
        // IDs, and the entries to write, in frontend order.
        var slotTotal = 0
        for s in services { slotTotal += s.slots.count }
        var revIDs: [UInt16] = []
        revIDs.reserveCapacity(services.count)
        var slotIDs: [UInt32] = []
        slotIDs.reserveCapacity(slotTotal)
        var backendKeys: [UInt32] = [], backendValues: [pw_lb4_backend] = [], backendEntries: [BackendEntry] = []
        backendKeys.reserveCapacity(slotTotal)
        backendValues.reserveCapacity(slotTotal)
        backendEntries.reserveCapacity(slotTotal)
        // Per frontend: how many backend entries must be written before its slots may be.
        var backendsNeeded: [Int] = []
        backendsNeeded.reserveCapacity(services.count)
        var scheduled = Set<UInt32>()
        var allocatedBackends: [(BackendKey, UInt32)] = []
        var usable = services.count
        var k = positions?.startIndex ?? 0
        outer: for (n, s) in services.enumerated() {
            guard let rev = revNatAllocator.allocate() else { usable = n; break }
            let mark = slotIDs.count
            for bk in s.slots {
                // The backend's ID and desired state: by position, or with one probe.
                let index: Int
                if let positions {
                    index = Int(positions[k])
                    k += 1
                    assert(backends.key(at: index) == bk, "a slot's backend position is stale")
                } else {
                    index = backends.insert(bk)
                }
                let record = backends.records[index]
                let state = record.use.state ?? UInt8(PW_BACKEND_ACTIVE)
                if record.id != 0 {
                    let id = record.id
                    let entry = BackendEntry(address: bk.address, port: bk.port, proto: bk.proto, state: state)
                    if programmed.backends[id] != entry && scheduled.insert(id).inserted {
                        backendKeys.append(id)
                        backendValues.append(entry.cValue)
                        backendEntries.append(entry)
                    }
                    slotIDs.append(id)
                    continue
                }
                guard let id = backendAllocator.allocate() else {
                    if record.isEmpty { backends.remove(at: index) }
                    slotIDs.removeSubrange(mark...)
                    revNatAllocator.release(rev)
                    usable = n
                    break outer
                }
                // A freshly allocated ID is new to the maps and to this chunk: no checks needed.
                backends.records[index].id = id
                allocatedBackends.append((bk, id))
                let entry = BackendEntry(address: bk.address, port: bk.port, proto: bk.proto, state: state)
                backendKeys.append(id)
                backendValues.append(entry.cValue)
                backendEntries.append(entry)
                slotIDs.append(id)
            }
            revIDs.append(UInt16(rev))
            revNatIDs[s.key] = UInt16(rev)
            backendsNeeded.append(backendKeys.count)
        }
        let batch = services.prefix(usable)
        let base = batch.startIndex

        // Phase 1: backends.
        let b = maps.backends.updateBatch(backendKeys, backendValues)
        syscalls += b.calls
        for i in 0..<b.written { programmed.backends[backendKeys[i]] = backendEntries[i] }
        record(.backends, updates: b.written)
        // Frontends whose backends are all in (the counts only grow): on to their slots.
        var ready = 0
        while ready < usable, backendsNeeded[ready] <= b.written { ready += 1 }

        // Phase 2: slots of those frontends.
        var slotMaps: [SlotMap] = []
        var slotsOf = 0
        for s in batch.prefix(ready) { slotsOf += s.slots.count }
        if slotsOf > 0 {
            var keys: [pw_lb4_key] = [], values: [pw_lb4_service] = []
            keys.reserveCapacity(slotsOf)
            values.reserveCapacity(slotsOf)
            var v = zeroed(pw_lb4_service.self)
            for s in batch.prefix(ready) {
                for i in 0..<s.slots.count { keys.append(s.key.cKey(slot: UInt16(i + 1))) }
            }
            for i in 0..<slotsOf {
                v.backend_id = slotIDs[i]
                values.append(v)
            }
            let r = maps.services.updateBatch(keys, values)
            syscalls += r.calls
            // Whole frontends (they had no entries) go into the mirror with their masters, one
            // insert each; the slots of a frontend the batch stopped in, slot by slot now.
            var n = 0, complete = 0
            slotMaps.reserveCapacity(ready)
            for s in batch.prefix(ready) {
                let written = min(s.slots.count, r.written - n)
                if written == s.slots.count {
                    guard written > 0 else {
                        slotMaps.append(SlotMap())
                        complete += 1
                        continue
                    }
                    let ids = Array(slotIDs[n..<(n + written)])
                    for id in ids { refs[id, default: 0] += 1 }
                    slotMaps.append(SlotMap(dense: ids))
                    serviceEntryCount += written
                    complete += 1
                } else {
                    // The batch stopped in this frontend: what it wrote is mirrored (for the take-back).
                    for i in 0..<written { mirrorSlot(s.key, slot: UInt16(i + 1), backendID: slotIDs[n + i]) }
                    break
                }
                n += written
            }
            record(.services, updates: r.written)
            ready = complete
        } else {
            slotMaps = Array(repeating: SlotMap(), count: ready)
        }

        // Phase 3: reverse NAT of the frontends whose slots are all in.
        if ready > 0 {
            var keys: [UInt16] = [], values: [pw_lb4_reverse_nat] = []
            keys.reserveCapacity(ready)
            values.reserveCapacity(ready)
            for i in 0..<ready {
                keys.append(revIDs[i].bigEndian)
                values.append(batch[base + i].revNat.cValue)
            }
            let r = maps.reverseNAT.updateBatch(keys, values)
            syscalls += r.calls
            for i in 0..<r.written { programmed.reverseNAT[revIDs[i]] = batch[base + i].revNat }
            record(.reverseNAT, updates: r.written)
            ready = r.written
        }

        // Phase 4: their masters.
        var mastersWritten = 0
        if ready > 0 {
            var keys: [pw_lb4_key] = [], masters: [MasterEntry] = [], values: [pw_lb4_service] = []
            keys.reserveCapacity(ready)
            masters.reserveCapacity(ready)
            values.reserveCapacity(ready)
            for i in 0..<ready {
                let s = batch[base + i]
                var m = s.master
                m.revNatID = revIDs[i]
                keys.append(s.key.cKey(slot: 0))
                masters.append(m)
                values.append(m.cValue)
            }
            let r = maps.services.updateBatch(keys, values)
            syscalls += r.calls
            for i in 0..<r.written {
                programmed.services[batch[base + i].key] = ServiceEntries(master: masters[i], slots: slotMaps[i])
            }
            serviceEntryCount += r.written
            record(.services, updates: r.written)
            mastersWritten = r.written
        }
        summary.added += mastersWritten
        // Frontends whose slots are all in but whose master is not: their slots, for the take-back.
        for i in mastersWritten..<slotMaps.count where !slotMaps[i].isEmpty {
            programmed.services[batch[base + i].key] = ServiceEntries(master: nil, slots: slotMaps[i])
        }

        // Frontends without a master: take back what the batch wrote for them, then one by one.
        var leftovers: [DesiredService] = []
        leftovers.reserveCapacity(services.count - mastersWritten)
        for s in batch.dropFirst(mastersWritten) {
            try? removeService(s.key)
            if let id = revNatIDs.removeValue(forKey: s.key) {
                if programmed.reverseNAT[id] != nil { try? deleteRevNat(id) }
                revNatAllocator.release(UInt32(id))
            }
            leftovers.append(s)
        }
        leftovers.append(contentsOf: services.dropFirst(usable))
        // Backends written that no slot got to point at are orphans (none when every frontend was written).
        if !leftovers.isEmpty {
            for i in 0..<b.written where refs[backendKeys[i], default: 0] == 0 { unreferenced.insert(backendKeys[i]) }
        }
        // Backend IDs allocated but never written are free again.
        if b.written < backendKeys.count {
            for (bk, id) in allocatedBackends where programmed.backends[id] == nil {
                clearBackendID(bk, ifIs: id)
                backendAllocator.release(id)
            }
        }
        return leftovers
    }
}

/// Many removals and orphan prunes with batch deletes.
extension WriterCore {
    // MARK: batch deletes

    /// Removes frontends phase by phase with batch deletes — all their masters (the datapath stops
    /// using them), then all their slots, then their reverse-NAT entries — the order `removeService`
    /// keeps for one frontend. A batch stopped by an error leaves the frontends it did not finish to
    /// `removeService`, one by one, which reports what fails. Returns how many frontends with a
    /// master were removed completely.
    mutating func removeBatch(_ keys: [ServiceMapKey], into summary: inout SyncSummary) -> Int {
        // Masters.
        let withMaster = keys.filter { programmed.services[$0]?.master != nil }
        let m = maps.services.deleteBatch(withMaster.map { $0.cKey(slot: 0) })
        syscalls += m.calls
        counts[.services, default: MapOpCounts()].deletes += m.written
        for key in withMaster[..<m.written] {
            programmed.services[key]?.master = nil
            serviceEntryCount -= 1
        }
        // Frontends whose master is gone (or never was): their slots, then their reverse NAT.
        var unfinished = m.error == nil ? [] : Array(withMaster[m.written...])
        let skip = Set(unfinished)
        var slotKeys: [pw_lb4_key] = [], slotOwners: [(ServiceMapKey, UInt16)] = []
        for key in keys where !skip.contains(key) {
            for slot in (programmed.services[key]?.slots.keys ?? []).sorted(by: >) {
                slotKeys.append(key.cKey(slot: slot))
                slotOwners.append((key, slot))
            }
        }
        let s = maps.services.deleteBatch(slotKeys)
        syscalls += s.calls
        counts[.services, default: MapOpCounts()].deletes += s.written
        for (key, slot) in slotOwners[..<s.written] {
            if let id = programmed.services[key]?.slots.removeValue(forKey: slot) {
                serviceEntryCount -= 1
                release(id)
            }
        }
        if s.error != nil {
            var seen = Set<ServiceMapKey>()
            for (key, _) in slotOwners[s.written...] where seen.insert(key).inserted { unfinished.append(key) }
        }
        for key in keys { if let e = programmed.services[key], e.master == nil, e.slots.isEmpty { programmed.services[key] = nil } }
        let done = Set(unfinished)
        var revKeys: [UInt16] = [], revOwners: [ServiceMapKey] = []
        for key in keys where !done.contains(key) {
            guard let id = revNatIDs[key] else { continue }
            if programmed.reverseNAT[id] != nil {
                revKeys.append(id)
                revOwners.append(key)
            } else {
                revNatIDs[key] = nil
                revNatAllocator.release(UInt32(id))
            }
        }
        let r = maps.reverseNAT.deleteBatch(revKeys.map(\.bigEndian))
        syscalls += r.calls
        counts[.reverseNAT, default: MapOpCounts()].deletes += r.written
        for (id, key) in zip(revKeys[..<r.written], revOwners[..<r.written]) {
            programmed.reverseNAT[id] = nil
            revNatIDs[key] = nil
            revNatAllocator.release(UInt32(id))
        }
        if r.error != nil { unfinished += revOwners[r.written...] }
        // What a batch left: one by one, failures named.
        let hadMaster = Set(withMaster)
        var removed = hadMaster.count
        for key in unfinished {
            do {
                try removeService(key)
            } catch {
                if hadMaster.contains(key) { removed -= 1 }
                summary.failures.append(SyncFailure(subject: "remove \(key)", frontend: key.frontend, error: error))
            }
        }
        return removed
    }

    /// Prunes these backend IDs (those no slot points at) with batch deletes; a failure leaves the
    /// rest to `pruneBackend`, one by one, which reports it.
    mutating func pruneBackends(_ candidates: [UInt32], into summary: inout SyncSummary) {
        var ids: [UInt32] = []
        for id in candidates {
            if refs[id, default: 0] == 0, programmed.backends[id] != nil { ids.append(id) } else { unreferenced.remove(id) }
        }
        guard ids.count > 1 else {
            for id in ids { pruneBackend(id, into: &summary) }
            return
        }
        let r = maps.backends.deleteBatch(ids)
        syscalls += r.calls
        counts[.backends, default: MapOpCounts()].deletes += r.written
        for id in ids[..<r.written] {
            if let entry = programmed.backends.removeValue(forKey: id) { clearBackendID(entry.key, ifIs: id) }
            unreferenced.remove(id)
            backendAllocator.release(id)
        }
        for id in ids[r.written...] { pruneBackend(id, into: &summary) }
    }
}
