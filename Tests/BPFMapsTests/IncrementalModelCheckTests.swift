import BPFMaps
import LoadBalancer
import PortwayTestSupport
import Testing

/// What the maps mean, without IDs: each frontend's master fields, its reverse-NAT entry and its
/// backends in slot order (address, port, protocol, state). Two map sets with equal listings
/// forward every packet alike. `problems` lists what breaks the writer's invariants: a master
/// whose slots or backends are missing, slots beyond the count or without master, backends no
/// slot uses, two IDs for one backend, reverse-NAT entries no master uses or shared by two.
struct LogicalListing: Equatable {
    struct Frontend: Equatable {
        var count: UInt16
        var qcount: UInt16
        var flags: UInt8
        var flags2: UInt8
        var union: UInt32
        var revNat: RevNatEntry?
        var backends: [BackendEntry]
    }

    var frontends: [ServiceMapKey: Frontend] = [:]
    var problems: [String] = []

    static func == (a: LogicalListing, b: LogicalListing) -> Bool { a.frontends == b.frontends && a.problems == b.problems }

    init(_ maps: LoadBalancerMaps) throws {
        let state = try ProgrammedState.read(from: maps)
        var usedBackends = Set<UInt32>(), usedRevNat: [UInt16: ServiceMapKey] = [:]
        for (key, entries) in state.services.sorted(by: { $0.key < $1.key }) {
            guard let m = entries.master else {
                problems.append("\(key): slots without master")
                continue
            }
            var backends: [BackendEntry] = []
            for slot in 0..<m.slotCount {
                guard let id = entries.slots[UInt16(slot + 1)] else {
                    problems.append("\(key): slot \(slot + 1) missing")
                    continue
                }
                usedBackends.insert(id)
                guard let b = state.backends[id] else {
                    problems.append("\(key): slot \(slot + 1) -> backend \(id) missing")
                    continue
                }
                backends.append(b)
            }
            for slot in entries.slots.keys where Int(slot) > m.slotCount { problems.append("\(key): stale slot \(slot)") }
            if let other = usedRevNat.updateValue(key, forKey: m.revNatID) { problems.append("\(key) and \(other) share reverse NAT \(m.revNatID)") }
            let revNat = state.reverseNAT[m.revNatID]
            if revNat == nil { problems.append("\(key): reverse NAT \(m.revNatID) missing") }
            frontends[key] = Frontend(
                count: m.count, qcount: m.qcount, flags: m.flags, flags2: m.flags2, union: m.union, revNat: revNat, backends: backends)
        }
        for id in state.backends.keys.sorted() where !usedBackends.contains(id) { problems.append("orphan backend \(id)") }
        var byKey: [BackendKey: UInt32] = [:]
        for (id, b) in state.backends.sorted(by: { $0.key < $1.key }) {
            if let other = byKey.updateValue(id, forKey: b.key) { problems.append("backend \(b.key) has IDs \(other) and \(id)") }
        }
        for id in state.reverseNAT.keys.sorted() where usedRevNat[id] == nil { problems.append("stray reverse NAT \(id)") }
    }
}

/// A random workload over a small universe, so frontends and backends collide, share and churn.
struct ChangeGenerator {
    var rng: SeededRandom
    /// 8 Services (one per address) × 4 ports.
    let frontends: [(frontend: Frontend, service: String)] = (1...8).flatMap { a in
        [(UInt16(80), L4Protocol.tcp), (443, .tcp), (53, .udp), (UInt16(30000 + a), .tcp)].map { port, proto in
            (Frontend(address: IPAddress("10.0.0.\(a)")!, port: port, proto: proto), "svc-\(a)")
        }
    }

    mutating func entry(for f: (frontend: Frontend, service: String)) -> FrontendEntry {
        let n = Int.random(in: 0...6, using: &rng)
        let backends = (0..<n).map { _ -> Backend in
            let host = Int.random(in: 1...24, using: &rng)
            let state: BackendState = [.active, .active, .active, .terminating, .quarantined].randomElement(using: &rng)!
            return Backend(address: IPAddress("10.1.\(host / 8).\(host % 8 + 1)")!, port: f.frontend.proto == .udp ? 53 : 8080,
                           proto: f.frontend.proto, state: state)
        }
        var flags: ServiceFlags = [.clusterIP]
        var affinity: UInt32?, proxy: UInt16?
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: flags.insert(.sessionAffinity); affinity = UInt32.random(in: 1...100, using: &rng)
        case 1: flags.insert(.l7LoadBalancer); proxy = UInt16.random(in: 10000...10010, using: &rng)
        case 2: flags.insert(.internalLocal)
        default: break
        }
        return FrontendEntry(
            frontend: f.frontend, type: .clusterIP, flags: flags, l7ProxyPort: proxy, affinityTimeoutSeconds: affinity,
            service: ServiceReference(namespace: "mc", name: f.service, port: f.frontend.port), backends: backends)
    }

    /// One change: a few random frontends, or all frontends of one Service.
    mutating func change() -> [Frontend: FrontendEntry?] {
        var picked: [(frontend: Frontend, service: String)]
        if Int.random(in: 0..<5, using: &rng) == 0 {
            let service = frontends.randomElement(using: &rng)!.service
            picked = frontends.filter { $0.service == service }
        } else {
            picked = (0..<Int.random(in: 1...4, using: &rng)).map { _ in frontends.randomElement(using: &rng)! }
        }
        var changes: [Frontend: FrontendEntry?] = [:]
        for f in picked {
            changes[f.frontend] = Int.random(in: 0..<10, using: &rng) < 3 ? .some(nil) : .some(entry(for: f))
        }
        return changes
    }
}

@Suite("Incremental writes against from-scratch syncs (model check, in-memory maps)")
struct IncrementalModelCheckTests {
    @Test("after every random change, incremental maps equal a fresh full sync of the same desired state", arguments: [UInt64(1), 2, 3])
    func incrementalEqualsFull(seed: UInt64) async throws {
        // CPU-bound: on the tests' CPU lane, not the 2-thread cooperative pool.
        let totals = try await onCPULane { try Self.run(seed: seed) }
        // The workload really churned.
        #expect(totals.writes > 1000 && totals.deletes > 300)
    }

    /// 300 random changes of `seed`, each checked; what was written and deleted in all.
    static func run(seed: UInt64) throws -> (writes: Int, deletes: Int) {
        let sizes = MapSizes([.services: 4096, .backends: 4096, .reverseNAT: 4096])
        let maps = LoadBalancerMaps.inMemory(sizes: sizes)
        let writer = try MapWriter(maps: maps)
        var generator = ChangeGenerator(rng: SeededRandom(seed: seed))
        var desired: [Frontend: FrontendEntry] = [:]
        var totals = (writes: 0, deletes: 0)
        for step in 1...300 {
            let changes = generator.change()
            for (f, e) in changes { desired[f] = e }
            let summary = writer.apply(changes)
            totals.writes += summary.writes
            totals.deletes += summary.deletes
            try check(summary.failures.isEmpty, "step \(step): \(summary.failures)")

            let fresh = LoadBalancerMaps.inMemory(sizes: sizes)
            let reference = try MapWriter(maps: fresh).sync(DesiredL4State(entries: Array(desired.values)))
            try check(reference.failures.isEmpty, "step \(step): the reference sync failed: \(reference.failures)")
            let incremental = try LogicalListing(maps), full = try LogicalListing(fresh)
            try check(incremental.problems.isEmpty, "step \(step): \(incremental.problems)")
            try check(full.problems.isEmpty, "step \(step): \(full.problems)")
            try check(incremental == full, "step \(step) (seed \(seed)): incremental and full differ")
            try check(try ProgrammedState.read(from: maps) == writer.programmed, "step \(step): the mirror is the maps")
            if step % 25 == 0 {
                let resync = writer.sync(DesiredL4State(entries: Array(desired.values)))
                try check(resync.writes == 0 && resync.deletes == 0, "step \(step): a full sync after incremental changes wrote \(resync)")
            }
        }
        return totals
    }

    @Test("the listing comparison sees a difference (the check can fail)")
    func listingDetectsDifference() throws {
        let a = LoadBalancerMaps.inMemory(), b = LoadBalancerMaps.inMemory()
        let e = entry("10.0.0.1", 80, backends: [backend("10.1.0.1"), backend("10.1.0.2")])
        _ = try MapWriter(maps: a).sync(state(e))
        var other = e
        other.backends.reverse()
        _ = try MapWriter(maps: b).sync(state(other))
        #expect(try LogicalListing(a) != LogicalListing(b), "slot order matters")
        // An orphan backend is an invariant problem.
        try a.backends.update(UInt32(99), BackendEntry(address: IPv4Address(1, 1, 1, 1), port: 1, proto: 6, state: 0).cValue)
        #expect(try LogicalListing(a).problems == ["orphan backend 99"])
    }

    @Test("an apply writes only the changed frontend's entries, whatever the number of frontends programmed")
    func applyCostIsTheChange() throws {
        let maps = LoadBalancerMaps.inMemory(sizes: MapSizes([.services: 40_000, .backends: 40_000, .reverseNAT: 40_000]))
        let writer = try MapWriter(maps: maps)
        let entries = (0..<3000).map { i in
            entry("10.2.\(i / 256).\(i % 256)", 80, name: "s\(i)", backends: (0..<10).map { backend("10.3.\(i / 256).\(i % 256)", UInt16(8000 + $0)) })
        }
        _ = writer.sync(DesiredL4State(entries: entries))
        var changed = entries[1234]
        changed.backends[3] = backend("10.9.9.9")
        let summary = writer.apply([changed.frontend: changed])
        #expect(summary[.backends] == MapOpCounts(updates: 1, deletes: 1))
        #expect(summary[.services] == MapOpCounts(updates: 1, deletes: 0))
        #expect(summary[.reverseNAT] == MapOpCounts())
        #expect(summary.syscalls == 3)
    }
}
