import BPFMaps
import CPortwayBPF
import Foundation
import LoadBalancer
import Synchronization
import Testing

/// Walks the maps like the datapath does: master, then slots 1...count+qcount, then each slot's
/// backend, using only key lookups. A missing slot or backend is a violation unless the master
/// changed meanwhile (every churned master carries a new generation in its affinity timeout, so a
/// reader cannot mistake a later master for the one it started from).
final class DatapathLikeReader: Sendable {
    let maps: MapSet
    let frontends: [Frontend]
    let stop = Atomic<Bool>(false)
    let walks = Atomic<Int>(0)
    let slotReads = Atomic<Int>(0)
    let violations = Mutex<[String]>([])

    init(maps: MapSet, frontends: [Frontend]) {
        self.maps = maps
        self.frontends = frontends
    }

    func master(_ key: ServiceMapKey) -> pw_lb4_service? {
        try? maps.services.lookup(cKey(key, slot: 0), as: pw_lb4_service.self)
    }

    func cKey(_ key: ServiceMapKey, slot: UInt16) -> pw_lb4_key {
        var k = pw_lb4_key()
        k.address = key.address.value.bigEndian
        k.dport = key.port.bigEndian
        k.backend_slot = slot
        k.proto = key.proto
        k.scope = key.scope
        return k
    }

    func run() {
        let keys = frontends.compactMap(ServiceMapKey.init)
        while !stop.load(ordering: .acquiring) {
            for key in keys {
                guard let m1 = master(key) else { continue }
                walks.add(1, ordering: .relaxed)
                let slots = Int(m1.count) + Int(m1.qcount)
                guard slots > 0 else { continue }
                for slot in 1...slots {
                    slotReads.add(1, ordering: .relaxed)
                    let problem: String?
                    if let s = try? maps.services.lookup(cKey(key, slot: UInt16(slot)), as: pw_lb4_service.self) {
                        if (try? maps.backends.lookup(s.backend_id, as: pw_lb4_backend.self)) ?? nil == nil {
                            problem = "\(key) slot \(slot) -> backend \(s.backend_id) missing"
                        } else {
                            problem = nil
                        }
                    } else {
                        problem = "\(key) master count \(m1.count)+\(m1.qcount) but slot \(slot) missing"
                    }
                    guard let problem else { continue }
                    // Only a violation if the master is still the one we started from.
                    let m2 = master(key)
                    if let m2, m2.backend_id == m1.backend_id, m2.count == m1.count, m2.qcount == m1.qcount {
                        violations.withLock { $0.append(problem) }
                    }
                    break
                }
            }
        }
    }
}

@Suite("Map writer ordering under churn, with a concurrent datapath-like reader", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct ConcurrentReaderTests {
    @Test("the reader never sees a master past its slots nor a slot whose backend is missing")
    func churn() async throws {
        let fixture = try BPFFSFixture.make()
        defer { fixture.cleanup() }
        let maps = try fixture.maps()
        let writer = try MapWriter(maps: maps)
        let frontends = (0..<8).map { Frontend(address: ip("10.0.0.\($0 + 1)"), port: 30080, proto: .tcp) }
        let pool = (0..<24).map { backend("10.1.\($0 / 8).\($0 % 8 + 1)") }
        let reader = DatapathLikeReader(maps: maps, frontends: frontends)

        let readerDone = startThread { reader.run() }
        var rng = SeededRandom(seed: 0x5EED)
        var totals = (writes: 0, deletes: 0, failures: 0)
        let rounds = 400
        for generation in 1...rounds {
            var entries: [FrontendEntry] = []
            for frontend in frontends where Int.random(in: 0..<10, using: &rng) < 8 {
                let n = Int.random(in: 0...10, using: &rng)
                let chosen = pool.shuffled(using: &rng).prefix(n).map { b -> Backend in
                    var b = b
                    if Int.random(in: 0..<4, using: &rng) == 0 { b.state = .terminating }
                    return b
                }
                entries.append(FrontendEntry(
                    frontend: frontend, type: .nodePort, flags: [.nodePort, .sessionAffinity],
                    affinityTimeoutSeconds: UInt32(generation), service: ServiceReference(namespace: "demo", name: "churn", port: 80),
                    backends: chosen))
            }
            let summary = writer.sync(DesiredL4State(entries: entries))
            totals.writes += summary.writes
            totals.deletes += summary.deletes
            totals.failures += summary.failures.count
        }
        reader.stop.store(true, ordering: .releasing)
        await readerDone.value

        let violations = reader.violations.withLock { $0 }
        #expect(violations.count == 0, "first violations: \(violations.prefix(5))")
        #expect(totals.failures == 0)
        // The churn really churned and the reader really read.
        #expect(totals.writes > rounds && totals.deletes > rounds)
        #expect(reader.walks.load(ordering: .relaxed) > 0 && reader.slotReads.load(ordering: .relaxed) > 0)
        print("churn: \(rounds) syncs, \(totals.writes) writes, \(totals.deletes) deletes; reader: \(reader.walks.load(ordering: .relaxed)) masters, \(reader.slotReads.load(ordering: .relaxed)) slots")

        // And the final state is exactly what the writer believes.
        #expect(try ProgrammedState.read(from: maps) == writer.programmed)
    }

    @Test("batches keep the order too: many frontends added (backends, slots, reverse NAT, masters) and removed (masters first) at once")
    func batchChurn() async throws {
        let fixture = try BPFFSFixture.make()
        defer { fixture.cleanup() }
        let maps = try fixture.maps()
        let writer = try MapWriter(maps: maps)
        let frontends = (0..<96).map { Frontend(address: ip("10.0.\($0 / 250).\($0 % 250 + 1)"), port: 30080, proto: .tcp) }
        let pool = (0..<64).map { backend("10.1.\($0 / 8).\($0 % 8 + 1)") }
        let reader = DatapathLikeReader(maps: maps, frontends: frontends)
        let readerDone = startThread { reader.run() }
        let seed: UInt64 = 0xBA7C4
        print("batchChurn: seed \(seed)")
        // The 120 syncs on a thread of their own (synchronous map writes: on the cooperative pool they
        // would hold one of its threads for the whole churn and starve other suites' timers).
        struct Totals: Sendable { var syncs = 0, batched = 0, failures = 0 }
        let totals = try await onDedicatedThread { () -> Totals in
            var rng = SeededRandom(seed: seed)
            var present = Set<Int>()
            var totals = Totals()
            for generation in 1...120 {
                // Every other round removes at least 40 frontends at once (a batch); the next adds them back (a batch).
                let keep: Set<Int> = generation % 2 == 0
                    ? Set(present.shuffled(using: &rng).prefix(max(0, present.count - 40 - Int.random(in: 0...16, using: &rng))))
                    : Set(0..<frontends.count)
                let entries = keep.sorted().map { i -> FrontendEntry in
                    let chosen = pool.shuffled(using: &rng).prefix(Int.random(in: 1...6, using: &rng))
                    return FrontendEntry(
                        frontend: frontends[i], type: .nodePort, flags: [.nodePort, .sessionAffinity],
                        affinityTimeoutSeconds: UInt32(generation), service: ServiceReference(namespace: "demo", name: "churn-\(i)", port: 80),
                        backends: Array(chosen))
                }
                let summary = writer.sync(DesiredL4State(entries: entries))
                totals.syncs += 1
                totals.failures += summary.failures.count
                if summary.added >= 32 || summary.removed >= 32 { totals.batched += 1 }
                present = keep
            }
            return totals
        }
        reader.stop.store(true, ordering: .releasing)
        await readerDone.value
        let violations = reader.violations.withLock { $0 }
        #expect(violations.count == 0, "first violations: \(violations.prefix(5))")
        #expect(totals.failures == 0)
        #expect(totals.batched >= 100, "most syncs added or removed a batch's worth: \(totals.batched)")
        #expect(reader.walks.load(ordering: .relaxed) > 0 && reader.slotReads.load(ordering: .relaxed) > 0)
        print("batchChurn: \(totals.syncs) syncs, \(totals.batched) with batches; reader: \(reader.walks.load(ordering: .relaxed)) masters, \(reader.slotReads.load(ordering: .relaxed)) slots")
        #expect(try ProgrammedState.read(from: maps) == writer.programmed)
    }

    @Test("the reader does catch a writer that breaks the order (the test can fail)")
    func readerDetectsBadOrder() async throws {
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let maps = try fs.maps()
        let frontend = Frontend(address: ip("10.0.0.1"), port: 30080, proto: .tcp)
        let key = try #require(ServiceMapKey(frontend))
        let reader = DatapathLikeReader(maps: maps, frontends: [frontend])
        // A master with count 2 whose second slot was never written, and whose first points at no backend.
        var master = pw_lb4_service()
        master.count = 2
        try maps.services.update(reader.cKey(key, slot: 0), master)
        var slot = pw_lb4_service()
        slot.backend_id = 42
        try maps.services.update(reader.cKey(key, slot: 1), slot)
        let done = startThread { reader.run() }
        // Bounded: a reader that never finds the master must fail the test, not hang it.
        let walked = await waitUntil { reader.walks.load(ordering: .relaxed) >= 3 }
        reader.stop.store(true, ordering: .releasing)
        await done.value
        try #require(walked, "the reader never walked the master 3 times (walks: \(reader.walks.load(ordering: .relaxed)))")
        #expect(reader.violations.withLock { $0.contains { $0.contains("backend 42 missing") } })
    }
}

/// A dedicated thread (the reader loops on blocking syscalls: not for the cooperative pool).
final class ThreadDone: Sendable {
    private let finished = Mutex<Bool>(false)
    private let condition = NSCondition()

    func signal() {
        condition.lock()
        finished.withLock { $0 = true }
        condition.broadcast()
        condition.unlock()
    }

    func wait() {
        condition.lock()
        while !finished.withLock({ $0 }) { condition.wait() }
        condition.unlock()
    }

    /// Waits on another dedicated thread so the awaiting task does not block its executor.
    var value: Void {
        get async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread { self.wait(); c.resume() }
            }
        }
    }
}

func startThread(_ body: @escaping @Sendable () -> Void) -> ThreadDone {
    let done = ThreadDone()
    Thread.detachNewThread {
        body()
        done.signal()
    }
    return done
}
