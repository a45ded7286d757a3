import LoadBalancer

/// What the writer knows of one frontend: the services-map entries it holds (the mirror), its
/// reverse-NAT ID and what the last calls asked for. One record for the three, so a frontend
/// costs one probe where three dictionaries cost one each.
struct FrontendRecord: Sendable {
    /// Its entries in the services map; nil: none.
    var entries: ServiceEntries?
    /// Its reverse-NAT ID; 0: none (IDs start at 1).
    var revNatID: UInt16 = 0
    /// What the last calls asked for; nil: not desired.
    var desired: DesiredService?
    /// The full sync that last asked for it (`WriterCore.sync`'s duplicate check and removals).
    var round: UInt32 = 0
    /// Whether `entries` and `desired` are set: what the hot paths read, since testing the
    /// optionals themselves copied the record (retaining its arrays) in the release build.
    fileprivate(set) var hasEntries = false
    fileprivate(set) var isDesired = false
}

/// The writer's frontends by key, each record at a position that stays its own while the record
/// exists (like `BackendTable`): a full sync inserts each desired frontend once and hands the
/// positions to the batch path, which reads and writes the mirror, the reverse-NAT ID and the
/// desired state by position. Read and written like three dictionaries (`[key]`, `[revNatID:]`,
/// `[desired:]`); a record goes when all three are empty. Removed positions are reused.
struct FrontendTable: Sendable {
    private var index = PositionIndex<ServiceMapKey>()
    /// Per position (a free position holds an empty record).
    private(set) var records: [FrontendRecord] = []
    /// Records with services-map entries, with a reverse-NAT ID, with a desired state.
    private(set) var programmedCount = 0
    private(set) var revNatCount = 0
    private(set) var desiredCount = 0

    /// The position of a frontend's record, if it has one (one probe).
    func position(of key: ServiceMapKey) -> Int? { index.position(of: key) }

    /// The position of a frontend's record, made empty when there is none (one probe).
    mutating func insert(_ key: ServiceMapKey) -> Int {
        let (p, appended) = index.insert(key)
        if appended { records.append(FrontendRecord()) }
        return p
    }

    /// Frontends with a record.
    var count: Int { index.count }

    /// The positions in use whose record was not marked with `round`.
    func unmarked(_ round: UInt32) -> [Int] {
        var out: [Int] = []
        for p in records.indices where index.keys[p] != nil && records[p].round != round { out.append(p) }
        return out
    }

    /// Forgets every frontend's entries and reverse-NAT ID (the mirror is about to be replaced);
    /// records left empty go.
    mutating func clearMirror() {
        for p in records.indices where index.keys[p] != nil {
            records[p].entries = nil
            records[p].hasEntries = false
            records[p].revNatID = 0
            removeIfEmpty(at: p)
        }
        programmedCount = 0
        revNatCount = 0
    }

    /// The key at a position in use.
    func key(at p: Int) -> ServiceMapKey { index.key(at: p) }

    /// The positions in use.
    var live: [Int] { index.live }

    /// Whether the record at a position holds nothing.
    func isEmpty(at p: Int) -> Bool { !records[p].hasEntries && records[p].revNatID == 0 && !records[p].isDesired }

    /// Removes the record at a position when it is empty.
    private mutating func removeIfEmpty(at p: Int) {
        guard isEmpty(at: p), index.remove(at: p) else { return }
        records[p] = FrontendRecord()
    }

    mutating func reserveCapacity(_ n: Int) {
        index.reserveCapacity(n)
        records.reserveCapacity(n)
    }

    // MARK: by position

    mutating func setEntries(_ entries: ServiceEntries?, at p: Int) {
        let has = entries != nil
        programmedCount += (has ? 1 : 0) - (records[p].hasEntries ? 1 : 0)
        records[p].entries = entries
        records[p].hasEntries = has
        if !has { removeIfEmpty(at: p) }
    }

    mutating func setRevNatID(_ id: UInt16, at p: Int) {
        revNatCount += (id != 0 ? 1 : 0) - (records[p].revNatID != 0 ? 1 : 0)
        records[p].revNatID = id
        if id == 0 { removeIfEmpty(at: p) }
    }

    mutating func setDesired(_ service: DesiredService?, at p: Int) {
        let has = service != nil
        desiredCount += (has ? 1 : 0) - (records[p].isDesired ? 1 : 0)
        records[p].desired = service
        records[p].isDesired = has
        if !has { removeIfEmpty(at: p) }
    }

    /// Marks a record as asked for by full sync `round`; false when it was already.
    mutating func mark(_ round: UInt32, at p: Int) -> Bool {
        guard records[p].round != round else { return false }
        records[p].round = round
        return true
    }

    // MARK: by key, like dictionaries

    /// The services-map entries of a frontend (the mirror).
    subscript(key: ServiceMapKey) -> ServiceEntries? {
        get { index.position(of: key).flatMap { records[$0].entries } }
        _modify {
            // Moved out while yielded, so the caller mutates a unique value (no copy on write).
            let p = insert(key)
            var value: ServiceEntries? = nil
            swap(&value, &records[p].entries)
            defer { setEntries(value, at: p) }
            yield &value
        }
    }

    /// The entries of a frontend, empty ones when it has none (written back even when left empty,
    /// as a dictionary's `default:` subscript does).
    subscript(key: ServiceMapKey, default empty: @autoclosure () -> ServiceEntries) -> ServiceEntries {
        get { self[key] ?? empty() }
        _modify {
            let p = insert(key)
            var taken: ServiceEntries? = nil
            swap(&taken, &records[p].entries)
            var value = taken ?? empty()
            defer { setEntries(value, at: p) }
            yield &value
        }
    }

    /// The reverse-NAT ID of a frontend.
    subscript(revNatID key: ServiceMapKey) -> UInt16? {
        get {
            guard let p = index.position(of: key), records[p].revNatID != 0 else { return nil }
            return records[p].revNatID
        }
        set {
            if let newValue {
                setRevNatID(newValue, at: insert(key))
            } else if let p = position(of: key) {
                setRevNatID(0, at: p)
            }
        }
    }

    /// Clears a frontend's reverse-NAT ID; returns it.
    mutating func removeRevNatID(of key: ServiceMapKey) -> UInt16? {
        guard let p = position(of: key), records[p].revNatID != 0 else { return nil }
        let id = records[p].revNatID
        setRevNatID(0, at: p)
        return id
    }

    /// What the last calls asked for a frontend.
    subscript(desired key: ServiceMapKey) -> DesiredService? {
        get { index.position(of: key).flatMap { records[$0].desired } }
        set {
            if let newValue {
                setDesired(newValue, at: insert(key))
            } else if let p = position(of: key) {
                setDesired(nil, at: p)
            }
        }
    }

    /// Every frontend with services-map entries (the public `ProgrammedState` view).
    var services: [ServiceMapKey: ServiceEntries] {
        var out: [ServiceMapKey: ServiceEntries] = [:]
        out.reserveCapacity(programmedCount)
        for p in records.indices where records[p].hasEntries { if let key = index.keys[p], let e = records[p].entries { out[key] = e } }
        return out
    }

    /// Every (key, reverse-NAT ID).
    var revNatIDs: [(key: ServiceMapKey, id: UInt16)] {
        var out: [(key: ServiceMapKey, id: UInt16)] = []
        out.reserveCapacity(revNatCount)
        for p in records.indices { if let key = index.keys[p], records[p].revNatID != 0 { out.append((key, records[p].revNatID)) } }
        return out
    }
}
