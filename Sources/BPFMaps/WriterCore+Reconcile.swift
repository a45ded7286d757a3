import CPortwayBPF
import LoadBalancer

/// One call's algorithm: removals, capacity, writes, state refresh, pruning.
extension WriterCore {
    // MARK: reconcile

    /// Makes the frontends of `changes` what they say (nil: removed), leaving all others alone.
    mutating func reconcileChanges(_ changes: [ServiceMapKey: DesiredService?], isCancelled: () -> Bool) -> SyncSummary {
        // The new desired state, and the backends whose desired state may change.
        var touched = Set<BackendKey>()
        var removals: [ServiceMapKey] = [], upserts: [DesiredService] = []
        for (key, new) in changes {
            if let old = frontends[desired: key] {
                use(old, by: -1)
                touched.formUnion(old.slots)
            }
            if let new {
                use(new, by: 1)
                touched.formUnion(new.slots)
                upserts.append(new)
            } else if frontends[key] != nil {
                removals.append(key)
            } else {
                releaseRevNatID(of: key)
            }
            frontends[desired: key] = new
            failed[key] = nil
        }
        return reconcile(removals: removals.sorted(), upserts: upserts, touched: touched, isCancelled: isCancelled)
    }

    /// A reverse-NAT ID held for a frontend that has no entries left (a rollback left none) is free.
    mutating func releaseRevNatID(of key: ServiceMapKey) {
        if let id = frontends.removeRevNatID(of: key), revNatEntries[id] == nil { revNatAllocator.release(UInt32(id)) }
    }

    /// Removes `removals`, then programs `upserts` (already in `desired`, with their backend uses
    /// counted). `touched`: backends whose desired state may have changed; nil for a full sync,
    /// which writes every desired frontend (and so checks every backend) and prunes strays.
    /// `positions`: the backend record position of every upsert's slots, in the order of `upserts`
    /// (see `use(_:positions:)`), when the caller counted them so; `frontendPositions`: each
    /// upsert's frontend record, when the caller has them (else looked up here, one probe each).
    mutating func reconcile(
        removals: [ServiceMapKey], upserts: [DesiredService], positions: [Int32]? = nil, frontendPositions: [Int32]? = nil,
        touched: Set<BackendKey>?, isCancelled: () -> Bool
    ) -> SyncSummary {
        let full = touched == nil
        // Upserts are desired: their records exist and keep their positions through the call.
        let records = frontendPositions ?? upserts.map { Int32(frontends.position(of: $0.key)!) }
        counts = [:]
        syscalls = 0
        var summary = SyncSummary()

        // 1. Removed frontends first: frees room for new ones. Many go phase by phase in batches.
        if removals.count >= Self.batchThreshold {
            summary.removed += removeBatch(removals, into: &summary)
            pruneNewlyUnreferenced(keeping: nil)
        } else {
            for key in removals {
                let hadMaster = frontends[key]?.master != nil
                do {
                    try removeService(key)
                    if hadMaster { summary.removed += 1 }
                } catch {
                    summary.failures.append(SyncFailure(subject: "remove \(key)", frontend: key.frontend, error: error))
                }
                pruneNewlyUnreferenced(keeping: nil)
            }
        }

        // 2. Capacity: which upserts fit, whole Services in a stable order.
        let plan = planCapacity(upserts, at: records, full: full)
        summary.shortfall = plan.shortfall
        // By index and field (iterating the services copied each, retaining its arrays).
        for i in upserts.indices where !plan.admits(upserts[i].key) {
            let key = upserts[i].key
            failed[key] = plan.error
            summary.failures.append(SyncFailure(subject: key.description, frontend: upserts[i].frontend, error: plan.error ?? .interrupted))
        }
        // Orphans nothing admitted wants: gone now, to make the room the plan counted on.
        pruneBackends(unreferenced.sorted().filter { id in
            guard let entry = backendEntries[id] else { return false }
            let record = backends[entry.key]
            return !plan.needs(entry.key, inUse: record?.use.state != nil) || record?.id != id
        }, into: &summary)
        // Reverse-NAT entries no master uses (left by a crash or a rollback): room the plan counted on.
        if full && revNatEntries.count > 0 {
            let stale = staleRevNatIDs()
            let r = maps.reverseNAT.deleteBatch(stale.map(\.bigEndian))
            syscalls += r.calls
            counts[.reverseNAT, default: MapOpCounts()].deletes += r.written
            for id in stale[..<r.written] {
                revNatEntries[id] = nil
                revNatAllocator.release(UInt32(id))
            }
            for id in stale[r.written...] {
                do {
                    try deleteRevNat(id)
                    revNatAllocator.release(UInt32(id))
                } catch {
                    summary.failures.append(SyncFailure(subject: "prune reverse NAT \(id)", error: error))
                }
            }
        }

        // 3. Admitted frontends, each all-or-nothing: first those that do not grow the services map.
        var ranked: [(grows: Bool, key: ServiceMapKey, index: Int)] = []
        ranked.reserveCapacity(upserts.count)
        for i in upserts.indices where plan.admits(upserts[i].key) {
            ranked.append((1 + upserts[i].slots.count > currentEntries(at: Int(records[i])), upserts[i].key, i))
        }
        ranked.sort { a, b in a.grows != b.grows ? !a.grows : a.key < b.key }
        // A cold sync's upserts are usually in that order already: no copy then.
        var inPlace = ranked.count == upserts.count
        for (i, r) in ranked.enumerated() where inPlace && r.index != i { inPlace = false }
        let order = inPlace ? upserts : ranked.map { upserts[$0.index] }
        let orderRecords = inPlace ? records : ranked.map { records[$0.index] }
        // The slots' record positions follow `upserts`: usable when the order is theirs.
        let positions = inPlace ? positions : nil
        if order.count >= Self.batchThreshold { reserveForNewFrontends(order) }
        var index = 0
        // Slots of order[..<index] (where the next frontend's positions start).
        var offset = 0
        // Nothing in the maps for any frontend yet (a cold start): every upsert is fresh until
        // written (their keys are distinct), so the run below needs no probes.
        let allFresh = frontends.programmedCount == 0 && frontends.revNatCount == 0
        while index < order.count {
            if isCancelled() {
                for service in order[index...] { failed[service.key] = .interrupted }
                summary.interrupted = order.count - index
                break
            }
            // A run of new frontends goes in batches.
            var end = index
            while end < order.count, end - index < Self.batchChunk, allFresh || isFresh(at: Int(orderRecords[end])) { end += 1 }
            if end - index >= Self.batchThreshold {
                var slots = 0
                for i in index..<end { slots += order[i].slots.count }
                let leftovers = writeBatch(
                    order[index..<end], records: orderRecords[index..<end], positions: positions?[offset..<(offset + slots)], into: &summary)
                for service in leftovers { upsert(service, needed: plan.neededBackends, into: &summary) }
                offset += slots
                index = end
                continue
            }
            upsert(order[index], needed: plan.neededBackends, into: &summary)
            offset += order[index].slots.count
            index += 1
        }

        // 4. Backend entries whose desired state changed (active <-> terminating) while their
        // frontends did not; in a stable order when few (the operation logs tests read). A full
        // sync wrote every desired frontend, checking each backend on the way.
        if let touched {
            for bk in touched.count <= 1024 ? touched.sorted() : Array(touched) {
                guard let record = backends[bk], record.id != 0, let entry = backendEntries[record.id],
                      let state = record.use.state, entry.state != state, refs[record.id, default: 0] > 0 else { continue }
                let id = record.id
                var updated = entry
                updated.state = state
                do { try writeBackend(id, updated) } catch {
                    summary.failures.append(SyncFailure(subject: "backend \(bk) state", error: error))
                }
            }
        }

        // 5. Orphan backends last: no slot points at them any more.
        newlyUnreferenced.removeAll()
        pruneBackends(unreferenced.sorted(), into: &summary)

        summary.frontends = frontends.desiredCount
        summary.backends = desiredBackends
        summary.operations = counts
        summary.syscalls = syscalls
        return summary
    }

    /// Sizes the indices once for many new frontends (a cold start) instead of growing them entry by entry.
    mutating func reserveForNewFrontends(_ services: [DesiredService]) {
        var slots = 0
        for i in services.indices { slots += services[i].slots.count }
        // The frontends are in `frontends` already (desired); IDs are handed out densely.
        revNatEntries.reserveCapacity(revNatEntries.count + services.count + 1)
        backendEntries.reserveCapacity(backendEntries.count + min(slots, desiredBackends) + 1)
    }

    /// Adds (`by` 1) or removes (-1) a desired frontend's uses of its backends: one probe per slot.
    mutating func use(_ service: DesiredService, by delta: Int32) {
        let active = Int(service.master.count)
        for (i, bk) in service.slots.enumerated() {
            if delta > 0 {
                let p = backends.insert(bk)
                desiredBackends += Self.count(&backends.records[p].use, active: i < active, by: delta)
                continue
            }
            guard let p = backends.position(of: bk) else { continue }
            desiredBackends += Self.count(&backends.records[p].use, active: i < active, by: delta)
            if backends.records[p].isEmpty { backends.remove(at: p) }
        }
    }

    /// Adds a desired frontend's uses of its backends, appending the position of each slot's
    /// backend record to `positions` (for the batch path: no second probe).
    mutating func use(_ service: DesiredService, positions: inout [Int32]) {
        let active = Int(service.master.count)
        for (i, bk) in service.slots.enumerated() {
            let p = backends.insert(bk)
            desiredBackends += Self.count(&backends.records[p].use, active: i < active, by: 1)
            positions.append(Int32(p))
        }
    }

    /// Counts one use more or less; returns the change in the number of desired backends (-1, 0, 1).
    private static func count(_ use: inout BackendUse, active: Bool, by delta: Int32) -> Int {
        let was = use.state != nil
        if active { use.active += delta } else { use.terminating += delta }
        return (use.state != nil ? 1 : 0) - (was ? 1 : 0)
    }

    /// Forgets every desired use (a full sync counts them afresh); records left with no ID go.
    mutating func resetUses(reserving capacity: Int) {
        if desiredBackends > 0 {
            var idless = false
            for p in backends.live {
                backends.records[p].use = BackendUse()
                if backends.records[p].id == 0 { idless = true }
            }
            if idless { backends.removeAll { $0.id == 0 } }
            desiredBackends = 0
        }
        backends.reserveCapacity(capacity)
    }

    /// The backend's ID, if it has one.
    func backendID(_ bk: BackendKey) -> UInt32? {
        guard let id = backends[bk]?.id, id != 0 else { return nil }
        return id
    }

    /// Gives the backend an ID.
    mutating func setBackendID(_ bk: BackendKey, _ id: UInt32) {
        backends.records[backends.insert(bk)].id = id
    }

    /// Takes the backend's ID away when it is `id`; the record goes when nothing uses the backend.
    mutating func clearBackendID(_ bk: BackendKey, ifIs id: UInt32) {
        guard let p = backends.position(of: bk), backends.records[p].id == id else { return }
        backends.records[p].id = 0
        if backends.records[p].isEmpty { backends.remove(at: p) }
    }

    /// Services-map entries a frontend holds now.
    func currentEntries(_ key: ServiceMapKey) -> Int {
        guard let p = frontends.position(of: key) else { return 0 }
        return currentEntries(at: p)
    }

    /// Services-map entries the frontend at a record position holds now.
    func currentEntries(at p: Int) -> Int {
        guard frontends.records[p].hasEntries, let e = frontends.records[p].entries else { return 0 }
        return (e.master == nil ? 0 : 1) + e.slots.count
    }

    /// Whether nothing of the frontend at a record position is in the maps (the batch path writes such frontends).
    func isFresh(at p: Int) -> Bool { !frontends.records[p].hasEntries && frontends.records[p].revNatID == 0 }

    /// Reverse-NAT entries no frontend's ID names (left by a crash or a rollback), in order.
    func staleRevNatIDs() -> [UInt16] {
        var used = [Bool](repeating: false, count: Int(UInt16.max) + 1)
        for p in frontends.records.indices where frontends.records[p].revNatID != 0 { used[Int(frontends.records[p].revNatID)] = true }
        return revNatEntries.keys.filter { !used[Int($0)] }
    }

    mutating func pruneBackend(_ id: UInt32, into summary: inout SyncSummary) {
        guard refs[id, default: 0] == 0, let entry = backendEntries[id] else {
            unreferenced.remove(id)
            return
        }
        do {
            try deleteBackend(id)
            backendAllocator.release(id)
            clearBackendID(entry.key, ifIs: id)
        } catch {
            summary.failures.append(SyncFailure(subject: "prune backend \(id)", error: error))
        }
    }

    /// Deletes the backends that lost their last slot during the last frontend, unless still
    /// needed: by an admitted frontend (`needed`), or by any desired one when `needed` is nil.
    mutating func pruneNewlyUnreferenced(keeping needed: Set<BackendKey>?) {
        let ids = newlyUnreferenced
        newlyUnreferenced.removeAll(keepingCapacity: true)
        var ignored = SyncSummary()
        var prune: [UInt32] = []
        for id in ids {
            guard refs[id, default: 0] == 0, let entry = backendEntries[id] else { continue }
            let record = backends[entry.key]
            let wanted = needed.map { $0.contains(entry.key) } ?? (record?.use.state != nil)
            if wanted && record?.id == id { continue }
            prune.append(id)
        }
        pruneBackends(prune, into: &ignored)
        // A failed prune stays in `unreferenced` for the end of the call.
    }
}
