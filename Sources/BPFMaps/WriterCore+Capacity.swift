import CPortwayBPF
import LoadBalancer

/// Capacity planned before writing (whole Services, already-programmed first).
extension WriterCore {
    // MARK: capacity

    struct CapacityPlan {
        /// The admitted frontends; nil: all of them.
        var admitted: Set<ServiceMapKey>? = nil
        /// Backends the admitted frontends use; nil: every desired backend.
        var neededBackends: Set<BackendKey>? = nil
        var shortfall: String?
        var error: BPFMapError?

        func admits(_ key: ServiceMapKey) -> Bool { admitted?.contains(key) ?? true }
        /// Whether an admitted frontend needs the backend (`inUse`: whether any desired one uses it).
        func needs(_ bk: BackendKey, inUse: Bool) -> Bool { neededBackends?.contains(bk) ?? inUse }
    }

    /// Decides which upserts fit the maps, whole Services at a time: Services with a programmed
    /// frontend first, then by namespace/name. Counts what the maps will hold after the call:
    /// the entries of frontends not in the change, plus the admitted frontends' entries.
    /// Proportional to the change (plus the whole state for a full sync, which changes it all).
    /// `records`: each upsert's record position in `frontends`.
    func planCapacity(_ upserts: [DesiredService], at records: [Int32], full: Bool) -> CapacityPlan {
        var plan = CapacityPlan()
        let limits = (services: Int(maps.services.maxEntries), backends: Int(maps.backends.maxEntries), revNat: Int(maps.reverseNAT.maxEntries))
        // What stays: everything minus the changing frontends' current entries.
        var services = serviceEntryCount
        var revNat = revNatEntries.count
        var released: [UInt32: Int] = [:]
        for p in records {
            // Field by field: a copy of the record would retain its arrays.
            let revNatID = frontends.records[Int(p)].revNatID
            if revNatID != 0, revNatEntries[revNatID] != nil { revNat -= 1 }
            guard frontends.records[Int(p)].hasEntries, let entries = frontends.records[Int(p)].entries else { continue }
            services -= (entries.master == nil ? 0 : 1) + entries.slots.count
            for id in entries.slots.values { released[id, default: 0] += 1 }
        }
        if full && revNatEntries.count > 0 { revNat -= staleRevNatIDs().count }
        var freed = unreferenced
        for (id, n) in released where refs[id, default: 0] - n <= 0 { freed.insert(id) }
        var backends = backendEntries.count - freed.filter { backendEntries[$0] != nil }.count
        // Backend keys already counted in `backends`.
        func costs(_ bk: BackendKey, _ counted: Set<BackendKey>) -> Bool {
            if counted.contains(bk) { return false }
            guard let id = backendID(bk), backendEntries[id] != nil else { return true }
            return freed.contains(id)
        }

        // All of it fits (the usual case, and a full sync needs no per-Service work then): in a
        // full sync every backend is freed first, so the desired backends are what counts.
        var allServices = 0
        for i in upserts.indices { allServices += 1 + upserts[i].slots.count }
        if full, services + allServices <= limits.services, backends + desiredBackends <= limits.backends,
           revNat + upserts.count <= limits.revNat {
            return plan
        }

        plan.admitted = []
        plan.neededBackends = []
        var groups: [ServiceName: [DesiredService]] = [:]
        for s in upserts { groups[s.group, default: []].append(s) }
        let ordered = groups.map { name, members -> (programmed: Bool, name: ServiceName, members: [DesiredService]) in
            (members.contains { frontends[$0.key]?.master != nil }, name, members)
        }.sorted { a, b in a.programmed != b.programmed ? a.programmed : a.name < b.name }

        var counted = Set<BackendKey>()
        var total = (services: services, backends: backends, revNat: revNat)
        var totalCounted = Set<BackendKey>()
        var rejected = false
        for group in ordered {
            var need = (services: 0, backends: 0, revNat: 0)
            var newKeys = Set<BackendKey>()
            for s in group.members {
                need.services += s.serviceEntries
                need.revNat += 1
                for bk in s.slots where costs(bk, counted) && newKeys.insert(bk).inserted { need.backends += 1 }
                for bk in s.slots where !totalCounted.contains(bk) && costs(bk, []) { totalCounted.insert(bk); total.backends += 1 }
            }
            total.services += need.services
            total.revNat += need.revNat
            if services + need.services <= limits.services && backends + need.backends <= limits.backends
                && revNat + need.revNat <= limits.revNat {
                services += need.services
                backends += need.backends
                revNat += need.revNat
                counted.formUnion(newKeys)
                for s in group.members {
                    plan.admitted!.insert(s.key)
                    plan.neededBackends!.formUnion(s.slots)
                }
            } else {
                rejected = true
                // Frontends already programmed keep their entries: they still take their room.
                for s in group.members where frontends[s.key] != nil {
                    services += currentEntries(s.key)
                    if let id = frontends[revNatID: s.key], revNatEntries[id] != nil { revNat += 1 }
                    for id in Set(frontends[s.key]?.slots.values ?? []) where freed.contains(id) {
                        freed.remove(id)
                        backends += 1
                        if let entry = backendEntries[id] { counted.insert(entry.key) }
                    }
                }
            }
        }
        guard rejected else { return CapacityPlan() }
        var short: [BPFMapError] = []
        if total.services > limits.services { short.append(.doesNotFit(map: MapKind.services.pinName, needed: total.services, maxEntries: UInt32(limits.services), sizeFlag: MapKind.services.sizeFlag)) }
        if total.backends > limits.backends { short.append(.doesNotFit(map: MapKind.backends.pinName, needed: total.backends, maxEntries: UInt32(limits.backends), sizeFlag: MapKind.backends.sizeFlag)) }
        if total.revNat > limits.revNat { short.append(.doesNotFit(map: MapKind.reverseNAT.pinName, needed: total.revNat, maxEntries: UInt32(limits.revNat), sizeFlag: MapKind.reverseNAT.sizeFlag)) }
        if short.isEmpty {
            // Only the room kept by frontends that could not be updated is missing.
            short.append(.doesNotFit(map: MapKind.services.pinName, needed: total.services, maxEntries: UInt32(limits.services), sizeFlag: MapKind.services.sizeFlag))
        }
        plan.error = short[0]
        plan.shortfall = short.map(\.description).joined(separator: "; ")
        return plan
    }
}
