import CPortwayBPF
import LoadBalancer

/// How many desired frontends use a backend, as active and as terminating: its entry's state is
/// the most available one (active when any frontend has it active).
struct BackendUse {
    var active = 0
    var terminating = 0
    var state: UInt8? {
        if active > 0 { return UInt8(PW_BACKEND_ACTIVE) }
        if terminating > 0 { return UInt8(PW_BACKEND_TERMINATING) }
        return nil
    }
}

/// The writer's state and algorithm; guarded by MapWriter's mutex. Every map operation goes
/// through the counted helpers at the bottom, which update the mirror (`programmed`) and the
/// indices (reference counts, entry counts) only when the operation succeeded.
struct WriterCore: ~Copyable {
    let maps: LoadBalancerMaps
    /// Mirror of the maps.
    var programmed: ProgrammedState
    /// Entries in the services map (masters and slots) per the mirror.
    var serviceEntryCount = 0
    var backendIDs: [BackendKey: UInt32] = [:]
    var backendAllocator = IDAllocator(limit: UInt32.max - 1)
    /// Slots pointing at each backend ID.
    var refs: [UInt32: Int] = [:]
    /// Backend entries no slot points at (pruned at the end of each call).
    var unreferenced = Set<UInt32>()
    /// IDs whose last reference went during the current frontend (pruned right after it when unwanted).
    var newlyUnreferenced: [UInt32] = []
    var revNatIDs: [ServiceMapKey: UInt16] = [:]
    var revNatAllocator = IDAllocator(limit: UInt32(UInt16.max))

    /// The desired frontends (what the last calls asked for), and the uses of each backend by them.
    var desired: [ServiceMapKey: DesiredService] = [:]
    var backendUse: [BackendKey: BackendUse] = [:]
    /// Desired frontends not programmed as desired.
    var failed: [ServiceMapKey: BPFMapError] = [:]

    /// Per-call accounting.
    var counts: [MapKind: MapOpCounts] = [:]
    var syscalls = 0

    /// Runs of at least this many new frontends are written with batch updates.
    static let batchThreshold = 32
    /// Frontends per batch chunk.
    static let batchChunk = 4096

    init(maps: LoadBalancerMaps, programmed: ProgrammedState) {
        self.maps = maps
        self.programmed = ProgrammedState()
        adopt(programmed, keepingIDs: false)
    }

    /// Takes `truth` as the mirror and rebuilds every index from it. With `keepingIDs`, IDs this
    /// writer had handed out stay theirs when the truth lost the entry (deleted by hand), so a
    /// repair rewrites the entry under the same ID.
    mutating func adopt(_ truth: ProgrammedState, keepingIDs: Bool) {
        let oldBackendIDs = backendIDs, oldRevNatIDs = revNatIDs
        programmed = truth
        serviceEntryCount = truth.services.values.reduce(0) { $0 + ($1.master == nil ? 0 : 1) + $1.slots.count }
        backendIDs = [:]
        backendAllocator = IDAllocator(limit: UInt32.max - 1)
        refs = [:]
        unreferenced = []
        revNatIDs = [:]
        revNatAllocator = IDAllocator(limit: UInt32(UInt16.max))
        // Re-adopt IDs: the lowest backend ID wins when a backend was pinned twice.
        for (id, entry) in truth.backends.sorted(by: { $0.key < $1.key }) {
            backendAllocator.adopt(id)
            if backendIDs[entry.key] == nil { backendIDs[entry.key] = id }
        }
        // IDs that slots point at but whose backend entry is gone (a recreated backends map) stay
        // reserved, so a new backend never takes an ID an old slot still names.
        for entries in truth.services.values {
            for id in entries.slots.values {
                refs[id, default: 0] += 1
                backendAllocator.adopt(id)
            }
        }
        for id in truth.backends.keys where refs[id] == nil { unreferenced.insert(id) }
        var claimed = Set<UInt16>()
        for (key, entries) in truth.services.sorted(by: { $0.key < $1.key }) {
            guard let master = entries.master, master.revNatID != 0, key.frontend != nil else { continue }
            if claimed.insert(master.revNatID).inserted { revNatIDs[key] = master.revNatID }
        }
        if keepingIDs {
            for (key, id) in oldRevNatIDs where revNatIDs[key] == nil && !claimed.contains(id) {
                revNatIDs[key] = id
                claimed.insert(id)
            }
            // An ID whose entry was deleted or overwritten by hand stays with the backend this
            // writer gave it to; the entry is rewritten in place.
            for (key, id) in oldBackendIDs where truth.backends[id]?.key != key {
                if let foreign = truth.backends[id]?.key, backendIDs[foreign] == id { backendIDs[foreign] = nil }
                backendIDs[key] = id
                backendAllocator.adopt(id)
            }
        }
        for id in claimed.union(truth.reverseNAT.keys) { revNatAllocator.adopt(UInt32(id)) }
    }

    // MARK: entry points

    mutating func sync(_ state: DesiredL4State, isCancelled: () -> Bool) -> SyncSummary {
        let start = ContinuousClock.now
        var lowering = Lowering()
        var wanted: [ServiceMapKey: DesiredService] = [:]
        wanted.reserveCapacity(state.entries.count)
        for entry in state.entries {
            if let key = ServiceMapKey(entry.frontend), wanted[key] != nil {
                lowering.skipped.append("\(entry.frontend): duplicate frontend, the first entry wins")
                continue
            }
            guard let service = lowering.lower(entry) else { continue }
            wanted[service.key] = service
        }
        // The desired state is replaced as a whole: the backend uses are counted afresh.
        let removals = programmed.services.keys.filter { wanted[$0] == nil }.sorted()
        for key in desired.keys where wanted[key] == nil && programmed.services[key] == nil { releaseRevNatID(of: key) }
        desired = wanted
        failed = [:]
        backendUse = [:]
        backendUse.reserveCapacity(wanted.count * 2)
        for service in wanted.values { use(service, by: 1) }
        var summary = reconcile(removals: removals, upserts: Array(wanted.values), touched: nil, isCancelled: isCancelled)
        summary.skipped = lowering.skipped
        summary.warnings = lowering.warnings
        summary.duration = ContinuousClock.now - start
        return summary
    }

    mutating func apply(_ entries: [Frontend: FrontendEntry?], isCancelled: () -> Bool) -> SyncSummary {
        let start = ContinuousClock.now
        var lowering = Lowering()
        var changes: [ServiceMapKey: DesiredService?] = [:]
        for (frontend, entry) in entries {
            guard let key = ServiceMapKey(frontend) else {
                if entry != nil { lowering.skipped.append("\(frontend): only IPv4 frontends are programmed") }
                continue
            }
            if var entry {
                entry.frontend = frontend
                if let service = lowering.lower(entry) { changes[key] = .some(service) }
            } else {
                changes[key] = .some(nil)
            }
        }
        var summary = reconcileChanges(changes, isCancelled: isCancelled)
        summary.skipped = lowering.skipped
        summary.warnings = lowering.warnings
        summary.duration = ContinuousClock.now - start
        return summary
    }

    mutating func retryFailed(isCancelled: () -> Bool) -> SyncSummary {
        let start = ContinuousClock.now
        var changes: [ServiceMapKey: DesiredService?] = [:]
        for key in failed.keys { changes[key] = .some(desired[key]) }
        var summary = reconcileChanges(changes, isCancelled: isCancelled)
        summary.duration = ContinuousClock.now - start
        return summary
    }

    mutating func repair(_ state: DesiredL4State, isCancelled: () -> Bool) -> SyncSummary {
        let start = ContinuousClock.now
        let truth: ProgrammedState
        do {
            truth = try ProgrammedState.read(from: maps)
        } catch {
            var summary = SyncSummary()
            summary.failures = [SyncFailure(subject: "read the maps back", error: error)]
            return summary
        }
        let drift = Self.differences(mirror: programmed, truth: truth)
        if !drift.isEmpty { adopt(truth, keepingIDs: true) }
        var summary = sync(state, isCancelled: isCancelled)
        summary.repaired = drift
        summary.duration = ContinuousClock.now - start
        return summary
    }

    /// Entries where the maps differ from the mirror, as "pw_lb4_services 10.0.0.1:80/TCP #2: deleted outside the agent".
    static func differences(mirror: ProgrammedState, truth: ProgrammedState) -> [String] {
        var lines: [String] = []
        func compare<K: Hashable & Comparable, V: Equatable>(_ map: MapKind, _ a: [K: V], _ b: [K: V], _ name: (K) -> String) {
            for key in Set(a.keys).union(b.keys).sorted() {
                switch (a[key], b[key]) {
                case (.some, .none): lines.append("\(map.pinName) \(name(key)): deleted outside the agent")
                case (.none, .some): lines.append("\(map.pinName) \(name(key)): added outside the agent")
                case (.some(let x), .some(let y)) where x != y: lines.append("\(map.pinName) \(name(key)): changed outside the agent")
                default: break
                }
            }
        }
        struct SlotKey: Hashable, Comparable {
            var key: ServiceMapKey
            var slot: UInt16
            static func < (l: SlotKey, r: SlotKey) -> Bool { (l.key, l.slot) < (r.key, r.slot) }
        }
        func flatten(_ s: ProgrammedState) -> [SlotKey: MasterOrSlot] {
            var out: [SlotKey: MasterOrSlot] = [:]
            for (key, entries) in s.services {
                if let m = entries.master { out[SlotKey(key: key, slot: 0)] = .master(m) }
                for (slot, id) in entries.slots { out[SlotKey(key: key, slot: slot)] = .slot(id) }
            }
            return out
        }
        compare(.services, flatten(mirror), flatten(truth)) { "\($0.key) #\($0.slot)" }
        compare(.backends, mirror.backends, truth.backends) { "#\($0)" }
        compare(.reverseNAT, mirror.reverseNAT, truth.reverseNAT) { "#\($0)" }
        return lines
    }

    enum MasterOrSlot: Equatable {
        case master(MasterEntry)
        case slot(UInt32)
    }

    // MARK: reconcile

    /// Makes the frontends of `changes` what they say (nil: removed), leaving all others alone.
    mutating func reconcileChanges(_ changes: [ServiceMapKey: DesiredService?], isCancelled: () -> Bool) -> SyncSummary {
        // The new desired state, and the backends whose desired state may change.
        var touched = Set<BackendKey>()
        var removals: [ServiceMapKey] = [], upserts: [DesiredService] = []
        for (key, new) in changes {
            if let old = desired[key] {
                use(old, by: -1)
                touched.formUnion(old.slots)
            }
            if let new {
                use(new, by: 1)
                touched.formUnion(new.slots)
                upserts.append(new)
            } else if programmed.services[key] != nil {
                removals.append(key)
            } else {
                releaseRevNatID(of: key)
            }
            desired[key] = new
            failed[key] = nil
        }
        return reconcile(removals: removals.sorted(), upserts: upserts, touched: touched, isCancelled: isCancelled)
    }

    /// A reverse-NAT ID held for a frontend that has no entries left (a rollback left none) is free.
    mutating func releaseRevNatID(of key: ServiceMapKey) {
        if let id = revNatIDs.removeValue(forKey: key), programmed.reverseNAT[id] == nil { revNatAllocator.release(UInt32(id)) }
    }

    /// Removes `removals`, then programs `upserts` (already in `desired`, with their backend uses
    /// counted). `touched`: backends whose desired state may have changed; nil for a full sync,
    /// which writes every desired frontend (and so checks every backend) and prunes strays.
    mutating func reconcile(
        removals: [ServiceMapKey], upserts: [DesiredService], touched: Set<BackendKey>?, isCancelled: () -> Bool
    ) -> SyncSummary {
        let full = touched == nil
        counts = [:]
        syscalls = 0
        var summary = SyncSummary()

        // 1. Removed frontends first: frees room for new ones.
        for key in removals {
            let hadMaster = programmed.services[key]?.master != nil
            do {
                try removeService(key)
                if hadMaster { summary.removed += 1 }
            } catch {
                summary.failures.append(SyncFailure(subject: "remove \(key)", frontend: key.frontend, error: error))
            }
            pruneNewlyUnreferenced(keeping: nil)
        }

        // 2. Capacity: which upserts fit, whole Services in a stable order.
        let plan = planCapacity(upserts, full: full)
        summary.shortfall = plan.shortfall
        for service in upserts where !plan.admits(service.key) {
            failed[service.key] = plan.error
            summary.failures.append(SyncFailure(subject: service.key.description, frontend: service.frontend, error: plan.error ?? .interrupted))
        }
        // Orphans nothing admitted wants: gone now, to make the room the plan counted on.
        for id in unreferenced.sorted() {
            guard let entry = programmed.backends[id], !plan.needs(entry.key, backendUse) || backendIDs[entry.key] != id else { continue }
            pruneBackend(id, into: &summary)
        }
        // Reverse-NAT entries no master uses (left by a crash or a rollback): room the plan counted on.
        if full {
            let used = Set(revNatIDs.values)
            for id in programmed.reverseNAT.keys.sorted() where !used.contains(id) {
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
        for (i, s) in upserts.enumerated() where plan.admits(s.key) {
            ranked.append((s.serviceEntries > currentEntries(s.key), s.key, i))
        }
        ranked.sort { a, b in a.grows != b.grows ? !a.grows : a.key < b.key }
        let order = ranked.map { upserts[$0.index] }
        var index = 0
        while index < order.count {
            if isCancelled() {
                for service in order[index...] { failed[service.key] = .interrupted }
                summary.interrupted = order.count - index
                break
            }
            // A run of new frontends goes in batches.
            var end = index
            while end < order.count, end - index < Self.batchChunk, isFresh(order[end].key) { end += 1 }
            if end - index >= Self.batchThreshold {
                let leftovers = writeBatch(Array(order[index..<end]), into: &summary)
                for service in leftovers { upsert(service, needed: plan.neededBackends, into: &summary) }
                index = end
                continue
            }
            upsert(order[index], needed: plan.neededBackends, into: &summary)
            index += 1
        }

        // 4. Backend entries whose desired state changed (active <-> terminating) while their
        // frontends did not; in a stable order when few (the operation logs tests read). A full
        // sync wrote every desired frontend, checking each backend on the way.
        if let touched {
            for bk in touched.count <= 1024 ? touched.sorted() : Array(touched) {
                guard let id = backendIDs[bk], let entry = programmed.backends[id], let state = backendUse[bk]?.state,
                      entry.state != state, refs[id, default: 0] > 0 else { continue }
                var updated = entry
                updated.state = state
                do { try writeBackend(id, updated) } catch {
                    summary.failures.append(SyncFailure(subject: "backend \(bk) state", error: error))
                }
            }
        }

        // 5. Orphan backends last: no slot points at them any more.
        newlyUnreferenced.removeAll()
        for id in unreferenced.sorted() { pruneBackend(id, into: &summary) }

        summary.frontends = desired.count
        summary.backends = backendUse.count
        summary.operations = counts
        summary.syscalls = syscalls
        return summary
    }

    /// Adds (`by` 1) or removes (-1) a desired frontend's uses of its backends.
    mutating func use(_ service: DesiredService, by delta: Int) {
        let active = Int(service.master.count)
        for (i, bk) in service.slots.enumerated() {
            if delta > 0 {
                if i < active { backendUse[bk, default: BackendUse()].active += 1 } else { backendUse[bk, default: BackendUse()].terminating += 1 }
                continue
            }
            var u = backendUse[bk] ?? BackendUse()
            if i < active { u.active -= 1 } else { u.terminating -= 1 }
            backendUse[bk] = u.active <= 0 && u.terminating <= 0 ? nil : u
        }
    }

    /// Services-map entries a frontend holds now.
    func currentEntries(_ key: ServiceMapKey) -> Int {
        guard let e = programmed.services[key] else { return 0 }
        return (e.master == nil ? 0 : 1) + e.slots.count
    }

    /// Whether nothing of this frontend is in the maps (the batch path writes such frontends).
    func isFresh(_ key: ServiceMapKey) -> Bool { programmed.services[key] == nil && revNatIDs[key] == nil }

    mutating func pruneBackend(_ id: UInt32, into summary: inout SyncSummary) {
        guard refs[id, default: 0] == 0, let entry = programmed.backends[id] else {
            unreferenced.remove(id)
            return
        }
        do {
            try deleteBackend(id)
            backendAllocator.release(id)
            if backendIDs[entry.key] == id { backendIDs[entry.key] = nil }
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
        for id in ids {
            guard refs[id, default: 0] == 0, let entry = programmed.backends[id] else { continue }
            let wanted = needed.map { $0.contains(entry.key) } ?? (backendUse[entry.key] != nil)
            if wanted && backendIDs[entry.key] == id { continue }
            pruneBackend(id, into: &ignored)
        }
        // A failed prune stays in `unreferenced` for the end of the call.
    }

    // MARK: capacity

    struct CapacityPlan {
        /// The admitted frontends; nil: all of them.
        var admitted: Set<ServiceMapKey>? = nil
        /// Backends the admitted frontends use; nil: every desired backend.
        var neededBackends: Set<BackendKey>? = nil
        var shortfall: String?
        var error: BPFMapError?

        func admits(_ key: ServiceMapKey) -> Bool { admitted?.contains(key) ?? true }
        func needs(_ bk: BackendKey, _ use: [BackendKey: BackendUse]) -> Bool { neededBackends?.contains(bk) ?? (use[bk] != nil) }
    }

    /// Decides which upserts fit the maps, whole Services at a time: Services with a programmed
    /// frontend first, then by namespace/name. Counts what the maps will hold after the call:
    /// the entries of frontends not in the change, plus the admitted frontends' entries.
    /// Proportional to the change (plus the whole state for a full sync, which changes it all).
    func planCapacity(_ upserts: [DesiredService], full: Bool) -> CapacityPlan {
        var plan = CapacityPlan()
        let limits = (services: Int(maps.services.maxEntries), backends: Int(maps.backends.maxEntries), revNat: Int(maps.reverseNAT.maxEntries))
        // What stays: everything minus the changing frontends' current entries.
        var services = serviceEntryCount
        var revNat = programmed.reverseNAT.count
        var released: [UInt32: Int] = [:]
        for s in upserts {
            services -= currentEntries(s.key)
            if let id = revNatIDs[s.key], programmed.reverseNAT[id] != nil { revNat -= 1 }
            for id in programmed.services[s.key]?.slots.values ?? [:].values { released[id, default: 0] += 1 }
        }
        if full {
            let used = Set(revNatIDs.values)
            revNat -= programmed.reverseNAT.keys.filter { !used.contains($0) }.count
        }
        var freed = unreferenced
        for (id, n) in released where refs[id, default: 0] - n <= 0 { freed.insert(id) }
        var backends = programmed.backends.count - freed.filter { programmed.backends[$0] != nil }.count
        // Backend keys already counted in `backends`.
        func costs(_ bk: BackendKey, _ counted: Set<BackendKey>) -> Bool {
            if counted.contains(bk) { return false }
            guard let id = backendIDs[bk], programmed.backends[id] != nil else { return true }
            return freed.contains(id)
        }

        // All of it fits (the usual case, and a full sync needs no per-Service work then): in a
        // full sync every backend is freed first, so the desired backends are what counts.
        let allServices = upserts.reduce(0) { $0 + $1.serviceEntries }
        if full, services + allServices <= limits.services, backends + backendUse.count <= limits.backends,
           revNat + upserts.count <= limits.revNat {
            return plan
        }

        plan.admitted = []
        plan.neededBackends = []
        var groups: [ServiceName: [DesiredService]] = [:]
        for s in upserts { groups[s.group, default: []].append(s) }
        let ordered = groups.map { name, members -> (programmed: Bool, name: ServiceName, members: [DesiredService]) in
            (members.contains { programmed.services[$0.key]?.master != nil }, name, members)
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
                for s in group.members where programmed.services[s.key] != nil {
                    services += currentEntries(s.key)
                    if let id = revNatIDs[s.key], programmed.reverseNAT[id] != nil { revNat += 1 }
                    for id in Set(programmed.services[s.key]?.slots.values ?? [:].values) where freed.contains(id) {
                        freed.remove(id)
                        backends += 1
                        if let entry = programmed.backends[id] { counted.insert(entry.key) }
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
        let existed = programmed.services[service.key]?.master != nil
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
        if programmed.services[key]?.master != nil {
            try deleteServiceEntry(key, slot: 0)
        }
        for slot in (programmed.services[key]?.slots.keys ?? [:].keys).sorted(by: >) {
            try deleteServiceEntry(key, slot: slot)
        }
        if let id = revNatIDs[key] {
            if programmed.reverseNAT[id] != nil { try deleteRevNat(id) }
            revNatIDs[key] = nil
            revNatAllocator.release(UInt32(id))
        }
    }

    mutating func write(_ service: DesiredService) throws(BPFMapError) {
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
            slotIDs.reserveCapacity(service.slots.count)
            for bk in service.slots {
                let (id, created) = try ensureBackend(bk)
                if created { undo.append(.backendCreated(id, bk)) }
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
            let previousRevNat = programmed.reverseNAT[revNatID]
            if previousRevNat != service.revNat {
                try writeRevNat(revNatID, service.revNat)
                undo.append(.revNat(revNatID, previous: previousRevNat))
            }
            var master = service.master
            master.revNatID = revNatID
            if programmed.services[key]?.master != master {
                try writeMaster(key, master)
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
        if let slots = programmed.services[key]?.slots, slots.count > count {
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
                if backendIDs[bk] == id { backendIDs[bk] = nil }
            }
        }
    }

    /// The ID of a backend, writing its entry when it is new or its state changed; `created` when
    /// this call wrote the entry where there was none.
    mutating func ensureBackend(_ bk: BackendKey) throws(BPFMapError) -> (UInt32, created: Bool) {
        let state = backendUse[bk]?.state ?? UInt8(PW_BACKEND_ACTIVE)
        let id: UInt32
        var fresh = false
        if let existing = backendIDs[bk] {
            id = existing
        } else {
            guard let allocated = backendAllocator.allocate() else { throw .idsExhausted(what: "backend IDs", limit: Int(UInt32.max - 1)) }
            id = allocated
            backendIDs[bk] = id
            fresh = true
        }
        let entry = BackendEntry(address: bk.address, port: bk.port, proto: bk.proto, state: state)
        let previous = programmed.backends[id]
        if previous != entry {
            do {
                try writeBackend(id, entry)
            } catch {
                if fresh {
                    backendIDs[bk] = nil
                    backendAllocator.release(id)
                }
                throw error
            }
        }
        return (id, previous == nil)
    }

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
                if let existing = backendIDs[bk] {
                    id = existing
                } else {
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
                if programmed.backends[id] != entry, scheduled.insert(id).inserted {
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
        // Backends written that no slot got to point at are orphans.
        for i in 0..<b.written where refs[backendKeys[i], default: 0] == 0 { unreferenced.insert(backendKeys[i]) }

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
        for (bk, id) in allocatedBackends where programmed.backends[id] == nil {
            if backendIDs[bk] == id { backendIDs[bk] = nil }
            backendAllocator.release(id)
        }
        return leftovers
    }

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
        let previous = programmed.services[key, default: ServiceEntries()].slots.updateValue(backendID, forKey: slot)
        if let previous { release(previous) } else { serviceEntryCount += 1 }
        refs[backendID, default: 0] += 1
        if !unreferenced.isEmpty { unreferenced.remove(backendID) }
    }

    /// One slot less points at `id`.
    mutating func release(_ id: UInt32) {
        let n = refs[id, default: 0] - 1
        if n <= 0 {
            refs[id] = nil
            if programmed.backends[id] != nil {
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
        if programmed.services[key, default: ServiceEntries()].master == nil { serviceEntryCount += 1 }
        programmed.services[key, default: ServiceEntries()].master = master
    }

    mutating func deleteServiceEntry(_ key: ServiceMapKey, slot: UInt16) throws(BPFMapError) {
        syscalls += 1
        try maps.services.delete(key.cKey(slot: slot))
        counts[.services, default: MapOpCounts()].deletes += 1
        if slot == 0 {
            if programmed.services[key]?.master != nil { serviceEntryCount -= 1 }
            programmed.services[key]?.master = nil
        } else if let id = programmed.services[key]?.slots.removeValue(forKey: slot) {
            serviceEntryCount -= 1
            release(id)
        }
        if let entries = programmed.services[key], entries.master == nil, entries.slots.isEmpty {
            programmed.services[key] = nil
        }
    }

    mutating func writeBackend(_ id: UInt32, _ entry: BackendEntry) throws(BPFMapError) {
        syscalls += 1
        try maps.backends.update(id, entry.cValue)
        record(.backends, updates: 1)
        if programmed.backends.updateValue(entry, forKey: id) == nil, refs[id, default: 0] == 0 { unreferenced.insert(id) }
    }

    mutating func writeRevNat(_ id: UInt16, _ entry: RevNatEntry) throws(BPFMapError) {
        syscalls += 1
        try maps.reverseNAT.update(id.bigEndian, entry.cValue)
        record(.reverseNAT, updates: 1)
        programmed.reverseNAT[id] = entry
    }

    mutating func deleteRevNat(_ id: UInt16) throws(BPFMapError) {
        syscalls += 1
        try maps.reverseNAT.delete(id.bigEndian)
        counts[.reverseNAT, default: MapOpCounts()].deletes += 1
        programmed.reverseNAT[id] = nil
    }

    mutating func deleteBackend(_ id: UInt32) throws(BPFMapError) {
        syscalls += 1
        try maps.backends.delete(id)
        counts[.backends, default: MapOpCounts()].deletes += 1
        programmed.backends[id] = nil
        unreferenced.remove(id)
    }

    /// Counts successful updates.
    mutating func record(_ kind: MapKind, updates: Int) {
        counts[kind, default: MapOpCounts()].updates += updates
    }
}
