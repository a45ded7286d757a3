import BPFMaps
import CPortwayBPF
import Glibc
import LoadBalancer
import Testing

/// In-memory maps logging every operation, and a writer on them (no root needed).
struct LoggedMaps {
    let log = MapOperationLog()
    let maps: LoadBalancerMaps
    let writer: MapWriter

    init(sizes: MapSizes = BPFFSFixture.smallSizes, faults: FaultInjector? = nil) throws {
        let base = LoadBalancerMaps.inMemory(sizes: sizes, log: log)
        maps = faults.map { base.injectingFaults($0) } ?? base
        writer = try MapWriter(maps: maps)
    }

    /// The log since the last call.
    func take() -> [String] {
        defer { log.clear() }
        return log.lines
    }

    var state: ProgrammedState { get throws { try ProgrammedState.read(from: maps) } }
}

@Suite("Map writer on in-memory maps: exact operation order, make before break, rollback")
struct WriterOperationTests {
    static let web = entry("10.0.0.1", 30080, backends: [backend("10.1.0.1"), backend("10.1.0.2"), backend("10.1.0.3", 8080, .tcp, .terminating)])

    @Test("a new frontend: backends, slots, reverse NAT, master last; shrink: master before stale slots; removal: master first")
    func writeOrder() throws {
        let m = try LoggedMaps()
        let first = m.writer.sync(state(Self.web))
        #expect(first.failures.isEmpty && first.added == 1)
        #expect(m.take() == [
            "update pw_lb4_backends #1 -> 10.1.0.1:8080/TCP active",
            "update pw_lb4_backends #2 -> 10.1.0.2:8080/TCP active",
            "update pw_lb4_backends #3 -> 10.1.0.3:8080/TCP terminating",
            "update pw_lb4_services 10.0.0.1:30080/TCP #1 -> backend 1",
            "update pw_lb4_services 10.0.0.1:30080/TCP #2 -> backend 2",
            "update pw_lb4_services 10.0.0.1:30080/TCP #3 -> backend 3",
            "update pw_lb4_reverse_nat #1 -> 10.0.0.1:30080",
            "update pw_lb4_services 10.0.0.1:30080/TCP #0 -> master 2+1 revnat 1",
        ])

        var shrunk = Self.web
        shrunk.backends = [backend("10.1.0.2")]
        let shrink = m.writer.apply([shrunk.frontend: shrunk])
        #expect(shrink.failures.isEmpty && shrink.updated == 1)
        #expect(m.take() == [
            "update pw_lb4_services 10.0.0.1:30080/TCP #1 -> backend 2",
            "update pw_lb4_services 10.0.0.1:30080/TCP #0 -> master 1+0 revnat 1",
            "delete pw_lb4_services 10.0.0.1:30080/TCP #2",
            "delete pw_lb4_services 10.0.0.1:30080/TCP #3",
            "delete pw_lb4_backends #1",
            "delete pw_lb4_backends #3",
        ])

        let unchanged = m.writer.apply([shrunk.frontend: shrunk])
        #expect(unchanged.writes == 0 && unchanged.deletes == 0 && m.take().isEmpty)

        let removal = m.writer.apply([shrunk.frontend: nil])
        #expect(removal.removed == 1)
        #expect(m.take() == [
            "delete pw_lb4_services 10.0.0.1:30080/TCP #0",
            "delete pw_lb4_services 10.0.0.1:30080/TCP #1",
            "delete pw_lb4_reverse_nat #1",
            "delete pw_lb4_backends #2",
        ])
        #expect(try m.state == ProgrammedState())
    }

    @Test("a backend shared by two frontends turns terminating only when no frontend has it active")
    func sharedBackendState() throws {
        let m = try LoggedMaps()
        let a = entry("10.0.0.1", 1, name: "a", backends: [backend("10.1.0.1")])
        let b = entry("10.0.0.1", 2, name: "b", backends: [backend("10.1.0.1", 8080, .tcp, .terminating)])
        _ = m.writer.sync(state(a, b))
        _ = m.take()
        _ = m.writer.apply([a.frontend: nil])
        #expect(m.take() == [
            "delete pw_lb4_services 10.0.0.1:1/TCP #0",
            "delete pw_lb4_services 10.0.0.1:1/TCP #1",
            "delete pw_lb4_reverse_nat #1",
            "update pw_lb4_backends #1 -> 10.1.0.1:8080/TCP terminating",
        ])
    }

    @Test("EBUSY on the master of a changed frontend restores its slots; the failure names it; retry programs it")
    func busyMasterRollsBack() throws {
        let faults = FaultInjector()
        let m = try LoggedMaps(faults: faults)
        _ = m.writer.sync(state(Self.web))
        let before = try m.state
        _ = m.take()
        var changed = Self.web
        changed.backends = [backend("10.1.0.4"), backend("10.1.0.2")]
        // Operations: backend #4, slot 1, then the master: the third fails.
        faults.arm(FaultPlan(failAt: 3, fault: .busy))
        let summary = m.writer.apply([changed.frontend: changed])
        #expect(summary.failures.map(\.frontend) == [changed.frontend])
        #expect(summary.failures.first?.error == .syscall(map: "pw_lb4_services", operation: "update", errno: EBUSY))
        #expect(m.take() == [
            "update pw_lb4_backends #4 -> 10.1.0.4:8080/TCP active",
            "update pw_lb4_services 10.0.0.1:30080/TCP #1 -> backend 4",
            "update pw_lb4_services 10.0.0.1:30080/TCP #1 -> backend 1",
            "delete pw_lb4_backends #4",
        ])
        #expect(try m.state == before, "what was there before stays")
        #expect(m.writer.programmed == before)
        #expect(m.writer.failedFrontends.keys.map { $0 } == [changed.frontend])

        faults.arm(nil)
        let retry = m.writer.retryFailed()
        #expect(retry.failures.isEmpty && retry.updated == 1)
        #expect(m.writer.failedFrontends.isEmpty)
        #expect(try m.state == m.writer.programmed)
        #expect(try m.state.services[ServiceMapKey(changed.frontend)!]?.master?.count == 2)
    }

    @Test("a full map while writing a new frontend deletes the backends it created; no half-written frontend stays")
    func mapFullRollsBackNewFrontend() throws {
        let faults = FaultInjector(FaultPlan(failAt: 4, fault: .mapFull, map: .services))
        let m = try LoggedMaps(faults: faults)
        let summary = m.writer.sync(state(Self.web))
        #expect(summary.failures.first?.error == .mapFull(map: "pw_lb4_services", maxEntries: 1024, sizeFlag: "--service-map-size"))
        #expect(summary.failures.first?.frontend == Self.web.frontend)
        #expect(m.take() == [
            "update pw_lb4_backends #1 -> 10.1.0.1:8080/TCP active",
            "update pw_lb4_backends #2 -> 10.1.0.2:8080/TCP active",
            "update pw_lb4_backends #3 -> 10.1.0.3:8080/TCP terminating",
            "update pw_lb4_services 10.0.0.1:30080/TCP #1 -> backend 1",
            "update pw_lb4_services 10.0.0.1:30080/TCP #2 -> backend 2",
            "update pw_lb4_services 10.0.0.1:30080/TCP #3 -> backend 3",
            "update pw_lb4_reverse_nat #1 -> 10.0.0.1:30080",
            "delete pw_lb4_reverse_nat #1",
            "delete pw_lb4_services 10.0.0.1:30080/TCP #3",
            "delete pw_lb4_services 10.0.0.1:30080/TCP #2",
            "delete pw_lb4_services 10.0.0.1:30080/TCP #1",
            "delete pw_lb4_backends #3",
            "delete pw_lb4_backends #2",
            "delete pw_lb4_backends #1",
        ])
        #expect(try m.state == ProgrammedState())
        #expect(m.writer.revNatID(for: Self.web.frontend) == nil)
    }

    @Test("a failing delete while removing a frontend is reported for that frontend; the next sync finishes it")
    func failingRemoval() throws {
        let faults = FaultInjector()
        let m = try LoggedMaps(faults: faults)
        _ = m.writer.sync(state(Self.web))
        faults.arm(FaultPlan(failAt: 2, fault: .busy, operations: [.delete]))
        let summary = m.writer.sync(state())
        #expect(summary.failures.map(\.subject) == ["remove 10.0.0.1:30080/TCP"])
        #expect(summary.failures.first?.frontend == Self.web.frontend)
        #expect(try m.state.services.values.first?.master == nil, "the master went first: the datapath no longer uses it")
        #expect(try m.state == m.writer.programmed)
        faults.arm(nil)
        let again = m.writer.sync(state())
        #expect(again.failures.isEmpty)
        #expect(try m.state == ProgrammedState())
    }

    @Test("when entries do not fit, whole Services are programmed (already-programmed first) and one line names the shortfall")
    func capacity() throws {
        var sizes = BPFFSFixture.smallSizes
        sizes[.services] = 20
        let m = try LoggedMaps(sizes: sizes)
        func service(_ name: String, _ third: UInt8) -> [FrontendEntry] {
            (1...2).map { port in
                entry("10.0.\(third).1", UInt16(port), name: name, backends: (1...3).map { backend("10.1.\(third).\($0)") })
            }
        }
        // Each Service: 2 frontends of 1 master + 3 slots = 8 entries; 20 hold two Services.
        let b = service("b", 2), c = service("c", 3), d = service("d", 4)
        let first = m.writer.sync(DesiredL4State(entries: b + c + d))
        #expect(first.added == 4)
        #expect(first.shortfall == "pw_lb4_services needs 24 entries, has 20: raise --service-map-size")
        #expect(Set(first.failures.compactMap(\.frontend)) == Set(d.map(\.frontend)))
        #expect(first.failures.allSatisfy { $0.error == .doesNotFit(map: "pw_lb4_services", needed: 24, maxEntries: 20, sizeFlag: "--service-map-size") })
        #expect(first.description.contains("pw_lb4_services needs 24 entries, has 20: raise --service-map-size"))
        #expect(try m.state.services.count == 4)
        // A Service sorting first does not push out the programmed ones.
        let a = service("a", 1)
        let second = m.writer.sync(DesiredL4State(entries: a + b + c + d))
        #expect(second.writes == 0, "\(second)")
        #expect(Set(second.failures.compactMap(\.frontend)) == Set((a + d).map(\.frontend)))
        #expect(second.shortfall == "pw_lb4_services needs 32 entries, has 20: raise --service-map-size")
        // Room made: c goes, a (first by name) comes in.
        let third = m.writer.sync(DesiredL4State(entries: a + b + d))
        #expect(Set(third.failures.compactMap(\.frontend)) == Set(d.map(\.frontend)))
        #expect(try Set(m.state.services.keys.map(\.address)) == [IPv4Address(10, 0, 1, 1), IPv4Address(10, 0, 2, 1)])
        #expect(try m.state == m.writer.programmed)
    }

    @Test("apply plans capacity from the change alone: a new Service that does not fit fails whole, and fits once room is made")
    func capacityIncremental() throws {
        var sizes = BPFFSFixture.smallSizes
        sizes[.backends] = 6
        let m = try LoggedMaps(sizes: sizes)
        let a = entry("10.0.0.1", 80, name: "a", backends: (1...3).map { backend("10.1.0.\($0)") })
        let b = entry("10.0.0.2", 80, name: "b", backends: (4...6).map { backend("10.1.0.\($0)") })
        _ = m.writer.apply([a.frontend: a, b.frontend: b])
        _ = m.take()
        // c and c2 (one Service) need 2 new backends; the map holds 6, all used.
        let c = entry("10.0.0.3", 80, name: "c", backends: [backend("10.1.0.1"), backend("10.1.0.7")])
        let c2 = entry("10.0.0.3", 81, name: "c", backends: [backend("10.1.0.8")])
        let full = m.writer.apply([c.frontend: c, c2.frontend: c2])
        #expect(full.shortfall == "pw_lb4_backends needs 8 entries, has 6: raise --backend-map-size")
        #expect(Set(full.failures.compactMap(\.frontend)) == [c.frontend, c2.frontend])
        #expect(m.take().isEmpty, "nothing written for a Service that does not fit")
        // Replacing b's backends by shared ones frees room within the same change plan.
        var b2 = b
        b2.backends = [backend("10.1.0.1")]
        let freed = m.writer.apply([b2.frontend: b2])
        #expect(freed.failures.isEmpty && freed[.backends].deletes == 3)
        let retry = m.writer.retryFailed()
        #expect(retry.failures.isEmpty && retry.added == 2 && retry.shortfall == nil)
        #expect(try LogicalListing(m.maps).problems.isEmpty)
        #expect(try LogicalListing(m.maps).frontends.count == 4)
    }

    @Test("more than 65,534 endpoints on one frontend: the first 65,534 are programmed and the summary warns")
    func tooManyEndpoints() throws {
        let sizes = MapSizes([.services: 70_000, .backends: 70_000])
        let maps = LoadBalancerMaps.inMemory(sizes: sizes)
        let writer = try MapWriter(maps: maps)
        let many = (0..<65_600).map { i in backend("10.\(64 + i / 65536).\(i / 256 % 256).\(i % 256)") }
        let summary = writer.sync(state(entry("10.0.0.1", 80, name: "big", backends: many)))
        #expect(summary.failures.isEmpty)
        #expect(summary.warnings == ["10.0.0.1:80/TCP (Service demo/big): 65600 endpoints, the datapath holds 65534 per frontend; the rest are not programmed"])
        #expect(summary.description.contains("1 warnings"))
        #expect(try ProgrammedState.read(from: maps).services.values.first?.master?.count == 65_534)
    }

    @Test("a long sync stops between frontends when cancelled; the rest are kept for retryFailed")
    func cancellation() throws {
        let m = try LoggedMaps()
        let entries = (1...10).map { entry("10.0.0.1", UInt16($0), name: "s\($0)", backends: [backend("10.1.0.\($0)")]) }
        var checks = 0
        let summary = m.writer.sync(DesiredL4State(entries: entries)) {
            checks += 1
            return checks > 4
        }
        #expect(summary.added == 4 && summary.interrupted == 6)
        #expect(summary.description.contains("interrupted, 6 frontends left for later"))
        #expect(m.writer.failedFrontends.count == 6 && m.writer.failedFrontends.values.allSatisfy { $0 == .interrupted })
        #expect(try m.state.services.count == 4)
        let retry = m.writer.retryFailed()
        #expect(retry.added == 6 && m.writer.failedFrontends.isEmpty)
        #expect(try m.state.services.count == 10)
    }

    @Test("many new frontends are written in batches, phase by phase: backends, slots, reverse NAT, masters")
    func batchedColdPath() throws {
        let m = try LoggedMaps()
        let entries = (1...100).map { entry("10.0.1.\($0)", 80, name: "s\($0)", backends: [backend("10.1.0.\($0)"), backend("10.1.1.\($0)")]) }
        let summary = m.writer.sync(DesiredL4State(entries: entries))
        #expect(summary.failures.isEmpty && summary.added == 100)
        #expect(summary.syscalls == 4, "one batch per phase")
        let records = m.log.all
        #expect(records.count == 200 + 200 + 100 + 100 && records.allSatisfy(\.batched))
        let phases = records.map { r -> Int in
            switch r.map {
            case .backends: 0
            case .services: r.description.contains("#0 ->") ? 3 : 1
            default: 2
            }
        }
        #expect(phases == phases.sorted(), "all backends, then all slots, then reverse NAT, then masters")
        #expect(try m.state == m.writer.programmed)
        let listing = try LogicalListing(m.maps)
        #expect(listing.problems.isEmpty, "\(listing.problems)")
        #expect(listing.frontends.count == 100)
        for e in entries {
            let f = try #require(listing.frontends[ServiceMapKey(e.frontend)!])
            #expect(f.count == 2 && f.qcount == 0 && f.backends.map { "\($0.key)" } == e.backends.map { "\($0.address):8080/TCP" })
            #expect(f.revNat == RevNatEntry(address: e.frontend.address.ipv4!, port: 80))
        }
    }

    @Test("a batch that hits a full map falls back to one frontend at a time; nothing half-written stays")
    func batchFallback() throws {
        var sizes = BPFFSFixture.smallSizes
        sizes[.services] = 100 * 3 - 1
        let faults = FaultInjector(FaultPlan(failAt: 150, fault: .mapFull, map: .services))
        let m = try LoggedMaps(sizes: sizes, faults: faults)
        let entries = (1...100).map { entry("10.0.1.\($0)", 80, name: "s\($0)", backends: [backend("10.1.0.\($0)"), backend("10.1.1.\($0)")]) }
        let summary = m.writer.sync(DesiredL4State(entries: entries))
        // The plan admits 99 Services (297 entries); the fault stops the slot batch, the frontends
        // are taken back and written one by one.
        #expect(faults.failures == 1)
        #expect(summary.failures.map(\.subject) == ["10.0.1.99:80/TCP"], "\(summary.failures)")
        #expect(try m.state == m.writer.programmed)
        let listing = try LogicalListing(m.maps)
        #expect(listing.frontends.count == 99 && listing.problems.isEmpty, "\(listing.problems)")
        let retry = m.writer.retryFailed()
        #expect(retry.failures.count == 1 && retry.shortfall != nil)
        #expect(try LogicalListing(m.maps).frontends.count == 99)
    }

    @Test("repair rewrites entries deleted or changed by hand and names them")
    func repairInMemory() throws {
        let m = try LoggedMaps()
        let desired = state(Self.web)
        _ = m.writer.sync(desired)
        let key = try #require(ServiceMapKey(Self.web.frontend))
        let before = try m.state
        try m.maps.services.delete(key.cKey(slot: 2))
        try m.maps.backends.update(UInt32(3), BackendEntry(address: IPv4Address(9, 9, 9, 9), port: 1, proto: 6, state: 0).cValue)
        try m.maps.reverseNAT.update(UInt16(77).bigEndian, RevNatEntry(address: IPv4Address(1, 2, 3, 4), port: 5).cValue)
        let summary = m.writer.repair(desired)
        #expect(summary.repaired == [
            "pw_lb4_services 10.0.0.1:30080/TCP #2: deleted outside the agent",
            "pw_lb4_backends #3: changed outside the agent",
            "pw_lb4_reverse_nat #77: added outside the agent",
        ])
        #expect(summary.description.contains("repaired 3 entries changed outside the agent"))
        #expect(try m.state == before)
        #expect(m.writer.repair(desired).repaired.isEmpty)
    }
}
