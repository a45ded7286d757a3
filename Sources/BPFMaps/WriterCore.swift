import CPortwayBPF
import LoadBalancer

/// How many desired frontends use a backend, as active and as terminating: its entry's state is
/// the most available one (active when any frontend has it active).
struct BackendUse {
    var active: Int32 = 0
    var terminating: Int32 = 0
    var state: UInt8? {
        if active > 0 { return UInt8(PW_BACKEND_ACTIVE) }
        if terminating > 0 { return UInt8(PW_BACKEND_TERMINATING) }
        return nil
    }
}

/// What the writer knows of one backend (address, port, protocol): its ID in the maps and the
/// desired frontends' uses of it. One record for both, so a slot costs one probe, not two.
struct BackendRecord {
    /// 0: none (IDs start at 1).
    var id: UInt32 = 0
    var use = BackendUse()
    var isEmpty: Bool { id == 0 && use.state == nil }
}

/// The writer's backends by key, each record at a position that stays its own while the record
/// exists: a call that counted the desired uses (one probe per slot) hands the positions to the
/// batch path, which then reads and writes records by position instead of probing again. Removed
/// positions are reused.
struct BackendTable {
    private var index = PositionIndex<BackendKey>()
    /// Per position (a free position holds an empty record).
    var records: [BackendRecord] = []

    var count: Int { index.count }

    /// The record of a backend (one probe).
    subscript(key: BackendKey) -> BackendRecord? {
        index.position(of: key).map { records[$0] }
    }

    /// The position of a backend's record, if it has one.
    func position(of key: BackendKey) -> Int? { index.position(of: key) }

    /// The position of a backend's record, made empty when there is none (one probe).
    mutating func insert(_ key: BackendKey) -> Int {
        let (p, appended) = index.insert(key)
        if appended { records.append(BackendRecord()) }
        return p
    }

    /// The key at a position in use.
    func key(at p: Int) -> BackendKey { index.key(at: p) }

    /// Removes the record at a position in use.
    mutating func remove(at p: Int) {
        guard index.remove(at: p) else { return }
        records[p] = BackendRecord()
    }

    /// The positions in use.
    var live: [Int] { index.live }

    /// Removes every record `shouldRemove` says.
    mutating func removeAll(where shouldRemove: (BackendRecord) -> Bool) {
        for p in records.indices where index.keys[p] != nil && shouldRemove(records[p]) { remove(at: p) }
    }

    mutating func reserveCapacity(_ n: Int) {
        index.reserveCapacity(n)
        records.reserveCapacity(n)
    }
}

/// The writer's state and algorithm; guarded by MapWriter's mutex. Every map operation goes
/// through the counted helpers at the bottom, which update the mirror (`frontends`' entries,
/// `backendEntries`, `revNatEntries`) and the indices (reference counts, entry counts) only when
/// the operation succeeded.
struct WriterCore: ~Copyable {
    let maps: LoadBalancerMaps
    /// Per frontend, in one record: its services-map entries (the mirror), its reverse-NAT ID
    /// and its desired state (what the last calls asked for; their uses of each backend are in
    /// `backends`).
    var frontends = FrontendTable()
    /// Mirror of the backends map, by ID.
    var backendEntries = IDTable<UInt32, BackendEntry>()
    /// Mirror of the reverse-NAT map, by ID.
    var revNatEntries = IDTable<UInt16, RevNatEntry>()
    /// Full syncs so far (the desired state's replacement marks the frontends asked for).
    var round: UInt32 = 0
    /// Entries in the services map (masters and slots) per the mirror.
    var serviceEntryCount = 0
    /// Every backend with an ID or a desired use (see `backendID`, `setBackendID`, `use`).
    var backends = BackendTable()
    /// Backends some desired frontend uses (records whose `use` has a state).
    var desiredBackends = 0
    var backendAllocator = IDAllocator(limit: UInt32.max - 1)
    /// Slots pointing at each backend ID.
    var refs: RefCounts = [:]
    /// Backend entries no slot points at (pruned at the end of each call).
    var unreferenced = Set<UInt32>()
    /// IDs whose last reference went during the current frontend (pruned right after it when unwanted).
    var newlyUnreferenced: [UInt32] = []
    var revNatAllocator = IDAllocator(limit: UInt32(UInt16.max))

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
        adopt(programmed, keepingIDs: false)
    }

    /// The mirror as a `ProgrammedState` (built on demand: tests, the agent's start, `repair`).
    var programmed: ProgrammedState {
        ProgrammedState(services: frontends.services, backends: backendEntries.dictionary, reverseNAT: revNatEntries.dictionary)
    }

    /// Takes `truth` as the mirror and rebuilds every index from it. With `keepingIDs`, IDs this
    /// writer had handed out stay theirs when the truth lost the entry (deleted by hand), so a
    /// repair rewrites the entry under the same ID.
    mutating func adopt(_ truth: ProgrammedState, keepingIDs: Bool) {
        var oldBackendIDs: [(BackendKey, UInt32)] = []
        if keepingIDs { for p in backends.live where backends.records[p].id != 0 { oldBackendIDs.append((backends.key(at: p), backends.records[p].id)) } }
        let oldRevNatIDs = frontends.revNatIDs
        // The truth becomes the mirror; the reverse-NAT IDs are re-adopted from it below.
        frontends.clearMirror()
        for (key, entries) in truth.services { frontends[key] = entries }
        backendEntries = IDTable(truth.backends)
        revNatEntries = IDTable(truth.reverseNAT)
        serviceEntryCount = truth.services.values.reduce(0) { $0 + ($1.master == nil ? 0 : 1) + $1.slots.count }
        // IDs go, the desired uses stay.
        backends.removeAll { $0.use.state == nil }
        for p in backends.live { backends.records[p].id = 0 }
        backendAllocator = IDAllocator(limit: UInt32.max - 1)
        refs = [:]
        unreferenced = []
        revNatAllocator = IDAllocator(limit: UInt32(UInt16.max))
        // Re-adopt IDs: the lowest backend ID wins when a backend was pinned twice.
        for (id, entry) in truth.backends.sorted(by: { $0.key < $1.key }) {
            backendAllocator.adopt(id)
            if backendID(entry.key) == nil { setBackendID(entry.key, id) }
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
            if claimed.insert(master.revNatID).inserted { frontends[revNatID: key] = master.revNatID }
        }
        if keepingIDs {
            for (key, id) in oldRevNatIDs where frontends[revNatID: key] == nil && !claimed.contains(id) {
                frontends[revNatID: key] = id
                claimed.insert(id)
            }
            // An ID whose entry was deleted or overwritten by hand stays with the backend this
            // writer gave it to; the entry is rewritten in place.
            for (key, id) in oldBackendIDs where truth.backends[id]?.key != key {
                if let foreign = truth.backends[id]?.key { clearBackendID(foreign, ifIs: id) }
                setBackendID(key, id)
                backendAllocator.adopt(id)
            }
        }
        for id in claimed.union(truth.reverseNAT.keys) { revNatAllocator.adopt(UInt32(id)) }
    }

    // MARK: entry points

    mutating func sync(_ state: DesiredL4State, isCancelled: () -> Bool) -> SyncSummary {
        let start = ContinuousClock.now
        var lowering = Lowering()
        // The desired state is replaced as a whole: each frontend asked for is marked with this round.
        round = round == UInt32.max ? 1 : round + 1
        frontends.reserveCapacity(max(frontends.count, state.entries.count))
        // In the input's order (sorted by frontend): the writer sorts them by key, nearly free then.
        var upserts: [DesiredService] = []
        upserts.reserveCapacity(state.entries.count)
        // The desired state is replaced as a whole: the backend uses are counted afresh, each
        // frontend's as it is lowered (its backend keys still in cache).
        // Sized once for every slot (an upper bound on the backends): growing the backend table
        // while counting rehashed it several times at 10 endpoints per frontend.
        var slots = 0
        state.entries.withUnsafeBufferPointer { entries in
            for i in entries.indices { slots += entries[i].backends.count }
        }
        resetUses(reserving: slots)
        // Where each upsert's slots' backend records are, for the batch path.
        var positions: [Int32] = []
        positions.reserveCapacity(slots)
        // Where each upsert's frontend record is.
        var frontendPositions: [Int32] = []
        frontendPositions.reserveCapacity(state.entries.count)
        var one = Lowering()
        // Read in place, field by field (`Lowering.lower(_:)` on a pointer): a copy of each entry
        // retained all its fields for nothing.
        // Each entry's backends are a separate allocation the sync reads first here: prefetched a
        // few entries ahead (its storage address read from the entry without retaining it), the
        // cache miss on each overlaps the lowering of the entries before it.
        let backendsOffset = MemoryLayout<[Backend]>.size == MemoryLayout<UnsafeRawPointer>.size
            ? MemoryLayout<FrontendEntry>.offset(of: \FrontendEntry.backends) : nil
        let ahead = 8
        state.entries.withUnsafeBufferPointer { entries in
            guard let base = entries.baseAddress else { return }
            for i in entries.indices {
                if let backendsOffset, i + ahead < entries.count {
                    let storage = UnsafeRawPointer(base + i + ahead).load(fromByteOffset: backendsOffset, as: UnsafeRawPointer.self)
                    portway_prefetch(storage)
                    portway_prefetch(storage + 64)
                }
                // Lowered aside: a duplicate's own lines are not reported, only that it is one.
                let service = one.lower(base + i)
                // One probe (the frontend's record, where the batch path finds it again): the first
                // entry of a frontend wins.
                if let service {
                    let p = frontends.insert(service.key)
                    guard frontends.mark(round, at: p) else {
                        lowering.skipped.append("\(entries[i].frontend): duplicate frontend, the first entry wins")
                        one.skipped.removeAll()
                        one.warnings.removeAll()
                        continue
                    }
                    frontends.setDesired(service, at: p)
                    use(service, positions: &positions)
                    upserts.append(service)
                    frontendPositions.append(Int32(p))
                }
                if !one.skipped.isEmpty {
                    lowering.skipped += one.skipped
                    one.skipped.removeAll()
                }
                if !one.warnings.isEmpty {
                    lowering.warnings += one.warnings
                    one.warnings.removeAll()
                }
            }
        }
        // Frontends not asked for this round: no longer desired; removed when the maps hold them.
        var removals: [ServiceMapKey] = []
        for p in frontends.unmarked(round) {
            let key = frontends.key(at: p)
            let wasDesired = frontends.records[p].isDesired
            if frontends.records[p].hasEntries {
                removals.append(key)
            } else if wasDesired {
                releaseRevNatID(of: key)
            }
            // Still at `p`: a desired record is not removed by releasing its ID.
            if wasDesired { frontends.setDesired(nil, at: p) }
        }
        removals.sort()
        failed = [:]
        var summary = reconcile(
            removals: removals, upserts: upserts, positions: positions, frontendPositions: frontendPositions, touched: nil,
            isCancelled: isCancelled)
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
        for key in failed.keys { changes[key] = .some(frontends[desired: key]) }
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
}
