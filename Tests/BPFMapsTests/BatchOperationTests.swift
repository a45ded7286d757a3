import BPFMaps
import CPortwayBPF
import Glibc
import LoadBalancer
import Testing

/// `count` frontends 10.0.<i/250>.<i%250+1>:80, each with two backends of its own.
func batchEntries(_ count: Int, generation: Int = 0) -> [FrontendEntry] {
    (0..<count).map { i in
        entry("10.0.\(i / 250).\(i % 250 + 1)", 80, name: "s\(i)",
              backends: [backend("10.\(100 + generation).\(i / 250).\(i % 250 + 1)"), backend("10.\(150 + generation).\(i / 250).\(i % 250 + 1)")])
    }
}

/// Which phase a logged operation belongs to: 0 backends, 1 slots, 2 reverse NAT, 3 masters.
func phase(_ r: MapOperationRecord) -> Int {
    switch r.map {
    case .backends: 0
    case .services: r.description.contains(" #0") ? 3 : 1
    default: 2
    }
}

@Suite("Batch map operations: native batches, the per-element fallback, failures in the middle of a batch")
struct BatchOperationTests {
    @Test("many removed frontends go in batch deletes: masters, then slots, then reverse NAT, orphan backends last")
    func batchedRemoval() throws {
        let m = try LoggedMaps()
        _ = m.writer.sync(DesiredL4State(entries: batchEntries(100)))
        m.log.clear()
        let summary = m.writer.sync(DesiredL4State(entries: []))
        #expect(summary.failures.isEmpty && summary.removed == 100)
        #expect(summary.syscalls == 4, "one batch per phase")
        let records = m.log.all
        #expect(records.count == 100 + 200 + 100 + 200 && records.allSatisfy { $0.operation == .delete && $0.batched })
        let order = records.map { r -> Int in [3: 0, 1: 1, 2: 2, 0: 3][phase(r)]! }
        #expect(order == order.sorted(), "masters, slots, reverse NAT, backends")
        #expect(try m.state == ProgrammedState() && m.writer.programmed == ProgrammedState())
    }

    @Test("a map refusing batch commands gets one call per element, in the same phase order, with the same result")
    func refusedBatches() throws {
        let native = try LoggedMaps()
        let faults = FaultInjector(.refusingBatches)
        let refused = try LoggedMaps(faults: faults)
        let entries = batchEntries(100)
        let a = native.writer.sync(DesiredL4State(entries: entries))
        let b = refused.writer.sync(DesiredL4State(entries: entries))
        #expect(a.failures.isEmpty && b.failures.isEmpty && a.added == 100 && b.added == 100)
        #expect(a.syscalls == 4 && b.syscalls == 600, "\(a.syscalls) / \(b.syscalls)")
        #expect(refused.log.all.allSatisfy { !$0.batched } && native.log.all.allSatisfy(\.batched))
        #expect(refused.log.lines == native.log.lines, "the same operations in the same order")
        #expect(try refused.state == native.state)
        native.log.clear()
        refused.log.clear()
        let c = native.writer.sync(DesiredL4State(entries: []))
        let d = refused.writer.sync(DesiredL4State(entries: []))
        #expect(c.removed == 100 && d.removed == 100 && d.syscalls == 600)
        #expect(refused.log.lines == native.log.lines)
        #expect(try refused.state == ProgrammedState())
    }

    @Test("a delete failing in the middle of a batch: what was deleted stays deleted, the rest go one by one, the failing frontend is named")
    func partialDeleteBatch() throws {
        let faults = FaultInjector()
        let m = try LoggedMaps(faults: faults)
        let entries = batchEntries(100)
        _ = m.writer.sync(DesiredL4State(entries: entries))
        m.log.clear()
        // Services-map deletes 40, 41 and 42 fail: the 40th master in the masters batch, then the
        // first slot of the slots batch (of the 39 frontends whose master went), then frontend 40's
        // master again when it is retried alone.
        faults.arm(FaultPlan(failAt: 40, fault: .busy, map: .services, operations: [.delete], times: 3))
        let summary = m.writer.sync(DesiredL4State(entries: []))
        #expect(faults.failures == 3)
        let failed = try #require(ServiceMapKey(entries[39].frontend))
        #expect(summary.failures.map(\.subject) == ["remove \(failed)"], "\(summary.failures)")
        #expect(summary.removed == 99)
        // No slot was deleted while its master was still there.
        let services = m.log.all.filter { $0.map == .services }
        #expect(Array(services.prefix(39)).allSatisfy { $0.batched && phase($0) == 3 }, "the batch deleted 39 masters first")
        var mastersGone = Set<String>()
        for r in services {
            let frontend = String(r.description.split(separator: " ")[2])
            if phase(r) == 3 { mastersGone.insert(frontend) } else { #expect(mastersGone.contains(frontend), "\(r)") }
        }
        #expect(try m.state == m.writer.programmed)
        let listing = try LogicalListing(m.maps)
        #expect(listing.problems.isEmpty, "\(listing.problems)")
        #expect(Array(listing.frontends.keys) == [failed], "only the failed frontend is left, whole")
        // The next sync removes it.
        #expect(m.writer.sync(DesiredL4State(entries: [])).removed == 1)
        #expect(try m.state == ProgrammedState())
    }

    @Test("an update failing in the middle of a native batch: the frontends it finished go on in batches, the rest one by one")
    func partialUpdateBatch() throws {
        let faults = FaultInjector(FaultPlan(failAt: 150, fault: .busy, map: .services, operations: [.update]))
        let m = try LoggedMaps(faults: faults)
        let summary = m.writer.sync(DesiredL4State(entries: batchEntries(100)))
        #expect(faults.failures == 1)
        #expect(summary.failures.isEmpty && summary.added == 100, "\(summary.failures)")
        // Slot pair 150 is frontend 75's second slot: frontends 1...74 got their reverse NAT and
        // master in batches, 75...100 (frontend 75's first slot taken back) one by one.
        let records = m.log.all
        #expect(Array(records.prefix(200 + 149)).allSatisfy { $0.batched }, "the batch wrote up to the failing pair")
        let masters = records.filter { phase($0) == 3 }
        #expect(masters.count == 100)
        #expect(Array(masters.prefix(74)).allSatisfy { $0.batched } && Array(masters.dropFirst(74)).allSatisfy { !$0.batched })
        #expect(records.filter { $0.map == .reverseNAT && $0.batched }.count == 74)
        #expect(try m.state == m.writer.programmed)
        let listing = try LogicalListing(m.maps)
        #expect(listing.problems.isEmpty && listing.frontends.count == 100, "\(listing.problems)")
    }
}

@Suite("Batch map operations on real pins", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct PinnedBatchTests {
    @Test("a cold sync and a removal of everything take one batch syscall per phase; refusing batches gives the same maps")
    func nativeAndRefused() throws {
        try withBPFFS { fs in
            let maps = LoadBalancerMaps(try fs.maps())
            let writer = try MapWriter(maps: maps)
            let entries = batchEntries(300)
            let cold = writer.sync(DesiredL4State(entries: entries))
            #expect(cold.failures.isEmpty && cold.added == 300 && cold.syscalls == 4, "\(cold)")
            let programmed = try ProgrammedState.read(from: maps)
            #expect(programmed == writer.programmed)
            #expect(try LogicalListing(maps).problems.isEmpty)
            let removal = writer.sync(DesiredL4State(entries: []))
            #expect(removal.failures.isEmpty && removal.removed == 300 && removal.syscalls == 4, "\(removal)")
            #expect(try ProgrammedState.read(from: maps) == ProgrammedState())

            // The same through a wrapper that refuses batch commands, as an older kernel does.
            let refusing = maps.injectingFaults(FaultInjector(.refusingBatches))
            let fallback = try MapWriter(maps: refusing)
            let again = fallback.sync(DesiredL4State(entries: entries))
            #expect(again.failures.isEmpty && again.added == 300 && again.syscalls == 300 * 6, "\(again)")
            #expect(try ProgrammedState.read(from: maps) == programmed, "the same entries under the same IDs")
            #expect(fallback.sync(DesiredL4State(entries: [])).syscalls == 300 * 6)
        }
    }

    @Test("batch lookups read back what a key walk reads, across several calls")
    func lookupBatch() throws {
        try withBPFFS { fs in
            let sizes = MapSizes(services: 16_384, backends: 16_384, reverseNAT: 8_192, affinity: 256, connectionTracking: 256, snat: 256)
            let maps = LoadBalancerMaps(try fs.maps(sizes))
            let writer = try MapWriter(maps: maps)
            #expect(writer.sync(DesiredL4State(entries: batchEntries(3_000))).failures.isEmpty)
            let refusing = maps.injectingFaults(FaultInjector(.refusingBatches))
            for kind in [MapKind.services, .backends, .reverseNAT] {
                let batched = try maps[kind].allEntries(), walked = try refusing[kind].allEntries()
                #expect(batched.calls < walked.calls, "\(kind.pinName): \(batched.calls) batch calls vs \(walked.calls)")
                #expect(batched.count == walked.count && batched.count > 0)
                func pairs(_ p: PackedEntries) -> Set<[UInt8]> {
                    let ks = Int(kind.keySize), vs = Int(kind.valueSize)
                    return Set((0..<p.count).map { Array(p.keys[($0 * ks)..<(($0 + 1) * ks)]) + Array(p.values[($0 * vs)..<(($0 + 1) * vs)]) })
                }
                #expect(pairs(batched) == pairs(walked))
            }
            #expect(try maps.services.allEntries().count == 9_000 && maps.services.allEntries().calls >= 3)
            #expect(try ProgrammedState.read(from: maps) == writer.programmed)
            // A restarted writer re-adopts from the batch read: nothing to write.
            #expect(try MapWriter(maps: maps).sync(DesiredL4State(entries: batchEntries(3_000))).writes == 0)
        }
    }

    @Test("the kernel refusing a pair in the middle of a batch (map full): nothing programmed before is lost, each failure named")
    func kernelFullMidBatch() throws {
        try withBPFFS { fs in
            // 200 services-map entries: 50 programmed frontends take 150, 100 new ones need 300.
            let sizes = MapSizes(services: 200, backends: 1024, reverseNAT: 1024, affinity: 256, connectionTracking: 256, snat: 256)
            let set = try fs.maps(sizes)
            let pinned = LoadBalancerMaps(set)
            let first = batchEntries(50)
            #expect(try MapWriter(maps: pinned).sync(DesiredL4State(entries: first)).failures.isEmpty)
            let before = try ProgrammedState.read(from: pinned)
            // A services map claiming more room than it has: the capacity plan admits all, the kernel refuses.
            let blind = LoadBalancerMaps(services: ClaimingMap(pinned.services, maxEntries: 100_000), backends: pinned.backends, reverseNAT: pinned.reverseNAT)
            let writer = try MapWriter(maps: blind)
            let more = batchEntries(150)
            let summary = writer.sync(DesiredL4State(entries: more))
            #expect(summary.shortfall == nil)
            // 50 entries of room: 16 more frontends of 3 entries; 84 fail, each named, as map full.
            #expect(summary.added == 16 && summary.failures.count == 84, "\(summary)")
            #expect(summary.failures.allSatisfy { f in
                guard case .mapFull(let map, _, _) = f.error else { return false }
                return f.frontend != nil && map == MapKind.services.pinName
            }, "\(summary.failures.prefix(3))")
            let after = try ProgrammedState.read(from: pinned)
            #expect(after == writer.programmed)
            for (key, entries) in before.services { #expect(after.services[key] == entries, "\(key) kept") }
            let listing = try LogicalListing(pinned)
            #expect(listing.problems.isEmpty && listing.frontends.count == 66, "\(listing.problems)")
        }
    }

    @Test("full syncs replacing every frontend and half the backends: the batch path finds each backend where counting its uses left it, freed places reused")
    func replacedGenerations() throws {
        let m = try LoggedMaps()
        for generation in 0..<4 {
            // New frontends each time (another port); the first backend is new, the second shared
            // across generations, and a third alternates (freed, then wanted again).
            let entries = (0..<100).map { i in
                entry("10.0.0.\(i + 1)", UInt16(80 + generation), name: "s\(i)", backends: [
                    backend("10.\(100 + generation).0.\(i + 1)"), backend("10.150.0.\(i + 1)"),
                    backend("10.\(200 + generation % 2).0.\(i + 1)", 9090, .tcp, .terminating),
                ])
            }
            let summary = m.writer.sync(DesiredL4State(entries: entries))
            #expect(summary.failures.isEmpty && summary.added == 100 && summary.removed == (generation == 0 ? 0 : 100), "\(summary)")
            #expect(try m.state == m.writer.programmed)
            let fresh = try LoggedMaps()
            _ = fresh.writer.sync(DesiredL4State(entries: entries))
            let listing = try LogicalListing(m.maps)
            #expect(listing.problems.isEmpty, "\(listing.problems)")
            #expect(try listing == LogicalListing(fresh.maps), "generation \(generation) as a fresh writer writes it")
            #expect(try m.state.backends.count == 300, "the previous generation's backends pruned")
        }
    }
}

/// A map that claims another size than the kernel's (so the capacity plan admits what the kernel refuses).
final class ClaimingMap: MapOperations {
    let base: any MapOperations
    let maxEntries: UInt32
    init(_ base: any MapOperations, maxEntries: UInt32) {
        self.base = base
        self.maxEntries = maxEntries
    }
    var kind: MapKind { base.kind }
    func lookup(key: UnsafeRawBufferPointer, value: UnsafeMutableRawBufferPointer) throws(BPFMapError) -> Bool { try base.lookup(key: key, value: value) }
    func update(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(BPFMapError) { try base.update(key: key, value: value) }
    func delete(key: UnsafeRawBufferPointer) throws(BPFMapError) -> Bool { try base.delete(key: key) }
    func allKeys() throws(BPFMapError) -> [[UInt8]] { try base.allKeys() }
    func nativeUpdateBatch(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? {
        base.nativeUpdateBatch(keys: keys, values: values, count: count)
    }
    func nativeDeleteBatch(keys: UnsafeRawBufferPointer, count: Int) -> MapBatchResult? { base.nativeDeleteBatch(keys: keys, count: count) }
    func nativeEntries() throws(BPFMapError) -> PackedEntries? { try base.nativeEntries() }
}
