import CPortwayBPF
import LoadBalancer

/// The cold path: many new frontends written phase by phase with batch updates.
extension WriterCore {
    // MARK: batch path

    /// Writes new frontends phase by phase with batch updates: their backends, slots, reverse NAT,
    /// then masters. A batch stopped by an error (the kernel says how many pairs it wrote) lets the
    /// frontends it had finished go on to the next phases; the others are taken back again and
    /// returned for the one-by-one path (which reports exactly what fails).
    /// `records`: each frontend's record position in `frontends`; `positions`: the backend record
    /// of each of their slots, in order (from counting the uses), or nil to look each up.
    mutating func writeBatch(
        _ services: ArraySlice<DesiredService>, records: ArraySlice<Int32>, positions: ArraySlice<Int32>?, into summary: inout SyncSummary
    ) -> [DesiredService] {
        // IDs, and the entries to write, in frontend order. The services are read field by field
        // (`services[i].slots`): iterating them copied each, retaining all its fields.
        let first = services.startIndex
        var slotTotal = 0
        for i in services.indices { slotTotal += services[i].slots.count }
        var revIDs: [UInt16] = []
        revIDs.reserveCapacity(services.count)
        var slotIDs: [UInt32] = []
        slotIDs.reserveCapacity(slotTotal)
        var backendKeys: [UInt32] = [], backendValues: [pw_lb4_backend] = [], newEntries: [BackendEntry] = []
        backendKeys.reserveCapacity(slotTotal)
        backendValues.reserveCapacity(slotTotal)
        newEntries.reserveCapacity(slotTotal)
        // Per frontend: how many backend entries must be written before its slots may be.
        var backendsNeeded: [Int] = []
        backendsNeeded.reserveCapacity(services.count)
        // Per frontend: where its slots end in `slotIDs`.
        var slotEnds: [Int] = []
        slotEnds.reserveCapacity(services.count)
        var scheduled = Set<UInt32>()
        var allocatedBackends: [(BackendKey, UInt32)] = []
        var usable = services.count
        var k = positions?.startIndex ?? 0
        let firstRecord = records.startIndex
        outer: for n in 0..<services.count {
            guard let rev = revNatAllocator.allocate() else { usable = n; break }
            let mark = slotIDs.count
            for bk in services[first + n].slots {
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
                    if backendEntries[id] != entry && scheduled.insert(id).inserted {
                        backendKeys.append(id)
                        backendValues.append(entry.cValue)
                        newEntries.append(entry)
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
                newEntries.append(entry)
                slotIDs.append(id)
            }
            revIDs.append(UInt16(rev))
            frontends.setRevNatID(UInt16(rev), at: Int(records[firstRecord + n]))
            backendsNeeded.append(backendKeys.count)
            slotEnds.append(slotIDs.count)
        }
        let batch = services.prefix(usable)
        let base = first

        // Phase 1: backends.
        let b = maps.backends.updateBatch(backendKeys, backendValues)
        syscalls += b.calls
        for i in 0..<b.written { backendEntries[backendKeys[i]] = newEntries[i] }
        record(.backends, updates: b.written)
        // Frontends whose backends are all in (the counts only grow): on to their slots.
        var ready = 0
        while ready < usable, backendsNeeded[ready] <= b.written { ready += 1 }

        // Phase 2: slots of those frontends.
        var slotMaps: [SlotMap] = []
        let slotsOf = ready > 0 ? slotEnds[ready - 1] : 0
        if slotsOf > 0 {
            var keys: [pw_lb4_key] = [], values: [pw_lb4_service] = []
            keys.reserveCapacity(slotsOf)
            values.reserveCapacity(slotsOf)
            var v = zeroed(pw_lb4_service.self)
            for n in 0..<ready {
                let key = services[first + n].key
                for i in 0..<(slotEnds[n] - (n > 0 ? slotEnds[n - 1] : 0)) { keys.append(key.cKey(slot: UInt16(i + 1))) }
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
            for f in 0..<ready {
                let slotCount = slotEnds[f] - n
                let written = min(slotCount, r.written - n)
                if written == slotCount {
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
                    for i in 0..<written { mirrorSlot(services[first + f].key, slot: UInt16(i + 1), backendID: slotIDs[n + i]) }
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
                values.append(services[base + i].revNat.cValue)
            }
            let r = maps.reverseNAT.updateBatch(keys, values)
            syscalls += r.calls
            for i in 0..<r.written { revNatEntries[revIDs[i]] = services[base + i].revNat }
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
                var m = services[base + i].master
                m.revNatID = revIDs[i]
                keys.append(services[base + i].key.cKey(slot: 0))
                masters.append(m)
                values.append(m.cValue)
            }
            let r = maps.services.updateBatch(keys, values)
            syscalls += r.calls
            for i in 0..<r.written {
                frontends.setEntries(ServiceEntries(master: masters[i], slots: slotMaps[i]), at: Int(records[firstRecord + i]))
            }
            serviceEntryCount += r.written
            record(.services, updates: r.written)
            mastersWritten = r.written
        }
        summary.added += mastersWritten
        // Frontends whose slots are all in but whose master is not: their slots, for the take-back.
        for i in mastersWritten..<slotMaps.count where !slotMaps[i].isEmpty {
            frontends.setEntries(ServiceEntries(master: nil, slots: slotMaps[i]), at: Int(records[firstRecord + i]))
        }

        // Frontends without a master: take back what the batch wrote for them, then one by one.
        var leftovers: [DesiredService] = []
        leftovers.reserveCapacity(services.count - mastersWritten)
        for s in batch.dropFirst(mastersWritten) {
            try? removeService(s.key)
            if let id = frontends.removeRevNatID(of: s.key) {
                if revNatEntries[id] != nil { try? deleteRevNat(id) }
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
            for (bk, id) in allocatedBackends where backendEntries[id] == nil {
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
        let withMaster = keys.filter { frontends[$0]?.master != nil }
        let m = maps.services.deleteBatch(withMaster.map { $0.cKey(slot: 0) })
        syscalls += m.calls
        counts[.services, default: MapOpCounts()].deletes += m.written
        for key in withMaster[..<m.written] {
            frontends[key]?.master = nil
            serviceEntryCount -= 1
        }
        // Frontends whose master is gone (or never was): their slots, then their reverse NAT.
        var unfinished = m.error == nil ? [] : Array(withMaster[m.written...])
        let skip = Set(unfinished)
        var slotKeys: [pw_lb4_key] = [], slotOwners: [(ServiceMapKey, UInt16)] = []
        for key in keys where !skip.contains(key) {
            for slot in (frontends[key]?.slots.keys ?? []).sorted(by: >) {
                slotKeys.append(key.cKey(slot: slot))
                slotOwners.append((key, slot))
            }
        }
        let s = maps.services.deleteBatch(slotKeys)
        syscalls += s.calls
        counts[.services, default: MapOpCounts()].deletes += s.written
        for (key, slot) in slotOwners[..<s.written] {
            if let id = frontends[key]?.slots.removeValue(forKey: slot) {
                serviceEntryCount -= 1
                release(id)
            }
        }
        if s.error != nil {
            var seen = Set<ServiceMapKey>()
            for (key, _) in slotOwners[s.written...] where seen.insert(key).inserted { unfinished.append(key) }
        }
        for key in keys { if let e = frontends[key], e.master == nil, e.slots.isEmpty { frontends[key] = nil } }
        let done = Set(unfinished)
        var revKeys: [UInt16] = [], revOwners: [ServiceMapKey] = []
        for key in keys where !done.contains(key) {
            guard let id = frontends[revNatID: key] else { continue }
            if revNatEntries[id] != nil {
                revKeys.append(id)
                revOwners.append(key)
            } else {
                frontends[revNatID: key] = nil
                revNatAllocator.release(UInt32(id))
            }
        }
        let r = maps.reverseNAT.deleteBatch(revKeys.map(\.bigEndian))
        syscalls += r.calls
        counts[.reverseNAT, default: MapOpCounts()].deletes += r.written
        for (id, key) in zip(revKeys[..<r.written], revOwners[..<r.written]) {
            revNatEntries[id] = nil
            frontends[revNatID: key] = nil
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
            if refs[id, default: 0] == 0, backendEntries[id] != nil { ids.append(id) } else { unreferenced.remove(id) }
        }
        guard ids.count > 1 else {
            for id in ids { pruneBackend(id, into: &summary) }
            return
        }
        let r = maps.backends.deleteBatch(ids)
        syscalls += r.calls
        counts[.backends, default: MapOpCounts()].deletes += r.written
        for id in ids[..<r.written] {
            if let entry = backendEntries.removeValue(forKey: id) { clearBackendID(entry.key, ifIs: id) }
            unreferenced.remove(id)
            backendAllocator.release(id)
        }
        for id in ids[r.written...] { pruneBackend(id, into: &summary) }
    }
}
