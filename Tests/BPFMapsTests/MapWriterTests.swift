import BPFMaps
import CPortwayBPF
import LoadBalancer
import Glibc
import Testing

/// What the datapath would see for one frontend: its master and the backends of slots 1...count+qcount.
struct FrontendView: Equatable, CustomStringConvertible {
    var master: MasterEntry
    var backends: [BackendEntry]
    var backendIDs: [UInt32]
    var description: String { "\(master) \(backends.map { "\($0.address):\($0.port)" })" }
}

/// Reads a frontend through the pins the way the datapath does (lookups by key).
func view(_ maps: MapSet, _ frontend: Frontend) throws -> FrontendView? {
    let state = try ProgrammedState.read(from: maps)
    guard let key = ServiceMapKey(frontend), let entries = state.services[key], let master = entries.master else { return nil }
    var backends: [BackendEntry] = []
    var ids: [UInt32] = []
    for slot in 1...max(1, master.slotCount) where slot <= master.slotCount {
        let id = try #require(entries.slots[UInt16(slot)], "slot \(slot) of \(frontend)")
        ids.append(id)
        backends.append(try #require(state.backends[id], "backend \(id) of \(frontend) slot \(slot)"))
    }
    return FrontendView(master: master, backends: backends, backendIDs: ids)
}

@Suite("Map writer: programming, only what changed, IDs, restart, full maps", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct MapWriterTests {
    static let web = entry("10.0.0.1", 30080, backends: [backend("10.1.0.1"), backend("10.1.0.2"), backend("10.1.0.3", 8080, .tcp, .terminating)])
    static let api = entry("10.0.0.1", 30081, name: "api", backends: [backend("10.1.0.2"), backend("10.1.0.9")])
    static let gateway = entry(
        "0.0.0.0", 30510, flags: [.nodePort, .nonRoutable, .l7LoadBalancer], l7ProxyPort: 10285, name: "gw", backends: [])
    static let sticky = entry(
        "10.96.0.5", 80, type: .clusterIP, flags: [.clusterIP, .nonRoutable, .sessionAffinity], affinity: 600, name: "sticky",
        backends: [backend("10.1.0.1")])

    @Test("programs masters, slots, backends and reverse NAT as the datapath reads them")
    func programs() throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            let writer = try MapWriter(maps: maps)
            let summary = writer.sync(state(Self.web, Self.api, Self.gateway, Self.sticky))
            #expect(summary.failures.isEmpty, "\(summary.failures)")
            #expect(summary.added == 4 && summary.frontends == 4 && summary.backends == 4)

            let web = try #require(try view(maps, Self.web.frontend))
            #expect(web.master.count == 2 && web.master.qcount == 1)
            #expect(web.master.flags == UInt8(PW_SVC_FLAG_NODEPORT) && web.master.flags2 == 0 && web.master.union == 0)
            #expect(web.backends.map { "\($0.address)" } == ["10.1.0.1", "10.1.0.2", "10.1.0.3"])
            #expect(web.backends.map(\.state) == [UInt8(PW_BACKEND_ACTIVE), UInt8(PW_BACKEND_ACTIVE), UInt8(PW_BACKEND_TERMINATING)])
            #expect(web.backends.allSatisfy { $0.port == 8080 && $0.proto == 6 })

            let gw = try #require(try view(maps, Self.gateway.frontend))
            #expect(gw.master.count == 0 && gw.master.flags2 == UInt8(PW_SVC_FLAG2_L7LB) && gw.master.union == 10285)
            #expect(gw.master.flags == UInt8(PW_SVC_FLAG_NODEPORT | PW_SVC_FLAG_NON_ROUTABLE))
            #expect(gw.master.serviceFlags == [.nodePort, .nonRoutable, .l7LoadBalancer])

            let sticky = try #require(try view(maps, Self.sticky.frontend))
            #expect(sticky.master.union == 600 && sticky.master.flags & UInt8(PW_SVC_FLAG_AFFINITY) != 0)
            #expect(sticky.master.frontendType == .clusterIP)

            // Reverse NAT: each frontend its own ID, mapping back to the frontend address.
            let programmed = try ProgrammedState.read(from: maps)
            let revNats = [Self.web, Self.api, Self.gateway, Self.sticky].map { try! #require(writer.revNatID(for: $0.frontend)) }
            #expect(Set(revNats).count == 4)
            #expect(programmed.reverseNAT[web.master.revNatID] == RevNatEntry(address: IPv4Address(10, 0, 0, 1), port: 30080))
            #expect(programmed.reverseNAT.count == 4)
            #expect(web.master.revNatID == writer.revNatID(for: Self.web.frontend))
        }
    }

    @Test("backend IDs are shared across services for the same address, port and protocol")
    func sharedBackendIDs() throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            let writer = try MapWriter(maps: maps)
            // The same address and port over UDP is another backend.
            let dns = entry("10.0.0.1", 30053, .udp, name: "dns", backends: [backend("10.1.0.2", 8080, .udp)])
            _ = writer.sync(state(Self.web, Self.api, dns))
            let web = try #require(try view(maps, Self.web.frontend))
            let api = try #require(try view(maps, Self.api.frontend))
            let udp = try #require(try view(maps, dns.frontend))
            #expect(web.backendIDs[1] == api.backendIDs[0], "10.1.0.2:8080/TCP has one ID")
            #expect(udp.backendIDs[0] != web.backendIDs[1], "10.1.0.2:8080/UDP is another backend")
            #expect(try ProgrammedState.read(from: maps).backends.count == 5)
            #expect(writer.backendID(for: backend("10.1.0.2")) == web.backendIDs[1])
        }
    }

    @Test("a second sync of the same state writes nothing; a change writes only itself")
    func onlyWhatChanged() throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            let writer = try MapWriter(maps: maps)
            let first = writer.sync(state(Self.web, Self.api))
            #expect(first[.services].updates == 1 + 3 + 1 + 2 && first[.backends].updates == 4 && first[.reverseNAT].updates == 2)
            let again = writer.sync(state(Self.web, Self.api))
            #expect(again.writes == 0 && again.deletes == 0 && again.added == 0 && again.updated == 0, "\(again)")

            // Replace 10.1.0.9 by 10.1.0.8 in api: one new backend, one slot, one orphan deleted; the master (count 2) stays.
            var api = Self.api
            api.backends = [backend("10.1.0.2"), backend("10.1.0.8")]
            let change = writer.sync(state(Self.web, api))
            #expect(change[.backends] == MapOpCounts(updates: 1, deletes: 1), "\(change)")
            #expect(change[.services] == MapOpCounts(updates: 1, deletes: 0))
            #expect(change[.reverseNAT] == MapOpCounts())
            #expect(change.updated == 1 && change.added == 0 && change.removed == 0)

            // A backend turning terminating in web: the master (count/qcount) changes, slots stay. Its
            // entry stays active: api still has it active (a backend entry holds the most available state).
            var web = Self.web
            web.backends = [backend("10.1.0.1"), backend("10.1.0.2", 8080, .tcp, .terminating), backend("10.1.0.3", 8080, .tcp, .terminating)]
            let terminating = writer.sync(state(web, api))
            #expect(terminating[.backends] == MapOpCounts(updates: 0, deletes: 0), "\(terminating)")
            #expect(terminating[.services] == MapOpCounts(updates: 1, deletes: 0))
            let v = try #require(try view(maps, web.frontend))
            #expect(v.master.count == 1 && v.master.qcount == 2)
            // Without api, 10.1.0.2's entry turns terminating: one backend write, nothing else.
            let alone = writer.sync(state(web))
            #expect(alone[.backends] == MapOpCounts(updates: 1, deletes: 1), "\(alone)")
            #expect(try view(maps, web.frontend)?.backends[1].state == UInt8(PW_BACKEND_TERMINATING))
            _ = writer.sync(state(web, api))

            // Shrinking: master first, then the stale slots; removing a frontend: master, slots, rev NAT.
            web.backends = [backend("10.1.0.1")]
            let shrink = writer.sync(state(web))
            #expect(shrink.removed == 1 && shrink.updated == 1)
            #expect(shrink[.services] == MapOpCounts(updates: 1, deletes: 2 + 3), "\(shrink)")
            #expect(shrink[.reverseNAT] == MapOpCounts(updates: 0, deletes: 1))
            #expect(shrink[.backends] == MapOpCounts(updates: 0, deletes: 3))
            let programmed = try ProgrammedState.read(from: maps)
            #expect(programmed.services.count == 1 && programmed.backends.count == 1 && programmed.reverseNAT.count == 1)
            #expect(programmed == writer.programmed)
        }
    }

    @Test("a restarted writer re-adopts IDs, writes nothing before its first sync, then prunes only what is gone")
    func restart() throws {
        try withBPFFS { fs in
            let writer = try MapWriter(maps: try fs.maps())
            _ = writer.sync(state(Self.web, Self.api, Self.gateway))
            let before = try ProgrammedState.read(from: try fs.maps())
            let webRevNat = writer.revNatID(for: Self.web.frontend)
            let sharedID = writer.backendID(for: backend("10.1.0.2"))

            // Leftovers of a crash mid-sync: a slot beyond a master's count and an unused backend.
            let maps = try fs.maps()
            var stray = pw_lb4_service()
            stray.backend_id = 999
            var key = pw_lb4_key()
            key.address = IPv4Address(10, 0, 0, 1).value.bigEndian
            key.dport = UInt16(30081).bigEndian
            key.backend_slot = 7
            key.proto = 6
            try maps.services.update(key, stray)
            try maps.backends.update(UInt32(999), pw_lb4_backend())

            // "Agent restart": new map set and writer on the same pins.
            let restarted = try MapWriter(maps: try fs.maps())
            var afterOpen = before
            afterOpen.services[ServiceMapKey(Self.api.frontend)!]!.slots[7] = 999
            afterOpen.backends[999] = BackendEntry(address: IPv4Address(0), port: 0, proto: 0, state: 0)
            #expect(try ProgrammedState.read(from: maps) == afterOpen, "opening changes nothing")
            #expect(restarted.revNatID(for: Self.web.frontend) == webRevNat)
            #expect(restarted.backendID(for: backend("10.1.0.2")) == sharedID)

            // First sync: api is gone; web and gateway unchanged.
            let summary = restarted.sync(state(Self.web, Self.gateway))
            #expect(summary.added == 0 && summary.updated == 0 && summary.removed == 1, "\(summary)")
            #expect(summary.writes == 0, "nothing rewritten for unchanged services: \(summary)")
            // api: master + 2 slots + stray slot 7; rev NAT of api; backends 10.1.0.9 and stray 999.
            #expect(summary[.services] == MapOpCounts(updates: 0, deletes: 4))
            #expect(summary[.reverseNAT] == MapOpCounts(updates: 0, deletes: 1))
            #expect(summary[.backends] == MapOpCounts(updates: 0, deletes: 2))
            var expected = before
            expected.services[ServiceMapKey(Self.api.frontend)!] = nil
            expected.reverseNAT[try #require(writer.revNatID(for: Self.api.frontend))] = nil
            let apiOnly = try #require(writer.backendID(for: backend("10.1.0.9")))
            expected.backends[apiOnly] = nil
            #expect(try ProgrammedState.read(from: maps) == expected)
            #expect(restarted.revNatID(for: Self.web.frontend) == webRevNat)
        }
    }

    @Test("after the backends pin was recreated, new backend IDs never reuse IDs old slots still name")
    func recreatedBackendsMap() throws {
        try withBPFFS { fs in
            let writer = try MapWriter(maps: try fs.maps())
            _ = writer.sync(state(Self.web, Self.api))
            let oldIDs = try ProgrammedState.read(from: try fs.maps()).referencedIDs
            // The operator resizes the backends map: pin removed, recreated empty with another size.
            #expect(unlink(fs.directory + "/pw_lb4_backends") == 0)
            var sizes = BPFFSFixture.smallSizes
            sizes[.backends] = 2048
            let maps = try fs.maps(sizes)
            let restarted = try MapWriter(maps: maps)
            let summary = restarted.sync(state(Self.web, Self.api))
            #expect(summary.failures.isEmpty && summary[.backends].updates == 4)
            let after = try ProgrammedState.read(from: maps)
            #expect(Set(after.backends.keys).isDisjoint(with: oldIDs), "new IDs \(after.backends.keys.sorted()) vs old \(oldIDs.sorted())")
            #expect(try view(maps, Self.web.frontend)?.backends.count == 3)
            #expect(try view(maps, Self.api.frontend)?.backends.count == 2)
        }
    }

    @Test("a backends map too small names the map and its flag, keeps what fit, leaves nothing half-written")
    func fullBackendsMap() throws {
        try withBPFFS { fs in
            var sizes = BPFFSFixture.smallSizes
            sizes[.backends] = 4
            let maps = try fs.maps(sizes)
            let writer = try MapWriter(maps: maps)
            let a = entry("10.0.0.1", 1, name: "a", backends: [backend("10.1.0.1"), backend("10.1.0.2")])
            let b = entry("10.0.0.1", 2, name: "b", backends: [backend("10.2.0.1"), backend("10.2.0.2"), backend("10.2.0.3")])
            let c = entry("10.0.0.1", 3, name: "c", backends: [backend("10.1.0.2"), backend("10.3.0.1")])
            let summary = writer.sync(state(a, b, c))
            #expect(summary.failures.count == 1)
            let failure = try #require(summary.failures.first)
            #expect(failure.subject == "10.0.0.1:2/TCP")
            #expect(failure.error == .doesNotFit(map: "pw_lb4_backends", needed: 6, maxEntries: 4, sizeFlag: "--backend-map-size"))
            #expect(failure.description.contains("pw_lb4_backends needs 6 entries, has 4: raise --backend-map-size"))
            #expect(summary.shortfall == "pw_lb4_backends needs 6 entries, has 4: raise --backend-map-size")
            #expect(try view(maps, a.frontend)?.backends.count == 2)
            #expect(try view(maps, c.frontend)?.backends.count == 2)
            let programmed = try ProgrammedState.read(from: maps)
            #expect(programmed.services[ServiceMapKey(b.frontend)!] == nil, "no master, no slots for b")
            #expect(programmed.backends.count == 3, "nothing of b was written")
            #expect(programmed.reverseNAT.count == 2 && writer.revNatID(for: b.frontend) == nil)

            // An existing frontend whose update does not fit while it is written (the new backends
            // come before the old ones go) keeps its old entries.
            var a2 = a
            a2.backends = [backend("10.4.0.1"), backend("10.4.0.2")]
            let update = writer.sync(state(a2, c))
            #expect(update.failures.map(\.subject) == ["10.0.0.1:1/TCP"])
            #expect(update.failures.first?.error == .mapFull(map: "pw_lb4_backends", maxEntries: 4, sizeFlag: "--backend-map-size"))
            #expect(try view(maps, a.frontend)?.backends.map { "\($0.address)" } == ["10.1.0.1", "10.1.0.2"])
            #expect(try ProgrammedState.read(from: maps).backends.count == 3)
            #expect(try ProgrammedState.read(from: maps) == writer.programmed)

            // Once room is made (c removed), the next sync programs a2.
            let retry = writer.sync(state(a2))
            #expect(retry.failures.isEmpty, "\(retry.failures)")
            #expect(try view(maps, a2.frontend)?.backends.map { "\($0.address)" } == ["10.4.0.1", "10.4.0.2"])
        }
    }

    @Test("a services map too small: the frontend that does not fit is not written at all")
    func fullServicesMap() throws {
        try withBPFFS { fs in
            var sizes = BPFFSFixture.smallSizes
            sizes[.services] = 5
            let maps = try fs.maps(sizes)
            let writer = try MapWriter(maps: maps)
            let a = entry("10.0.0.1", 1, name: "a", backends: [backend("10.1.0.1"), backend("10.1.0.2")])
            let b = entry("10.0.0.1", 2, name: "b", backends: [backend("10.1.0.1"), backend("10.1.0.3")])
            let summary = writer.sync(state(a, b))
            #expect(summary.failures.map(\.description) == ["10.0.0.1:2/TCP: pw_lb4_services needs 6 entries, has 5: raise --service-map-size"])
            #expect(summary[.services].deletes == 0 && summary[.backends].deletes == 0, "nothing to roll back")
            let programmed = try ProgrammedState.read(from: maps)
            #expect(programmed.services.keys.map(\.port) == [1])
            #expect(programmed.services.values.first?.slots.count == 2)
            #expect(programmed.reverseNAT.count == 1)
            #expect(programmed.backends.count == 2, "10.1.0.3 was never written")
        }
    }

    @Test("a frontend that failed for room is kept and programmed by retryFailed once room is made, on real pins")
    func retryOnRealPins() throws {
        try withBPFFS { fs in
            var sizes = BPFFSFixture.smallSizes
            sizes[.services] = 5
            let maps = try fs.maps(sizes)
            let writer = try MapWriter(maps: maps)
            let a = entry("10.0.0.1", 1, name: "a", backends: [backend("10.1.0.1"), backend("10.1.0.2")])
            let b = entry("10.0.0.1", 2, name: "b", backends: [backend("10.1.0.1"), backend("10.1.0.3")])
            let first = writer.sync(state(a, b))
            #expect(first.failures.map(\.frontend) == [b.frontend])
            #expect(writer.failedFrontends.keys.map { $0 } == [b.frontend])

            // Nothing changed: a retry fails the same way and leaves nothing half-written.
            let again = writer.retryFailed()
            #expect(again.failures.map(\.frontend) == [b.frontend])
            #expect(try view(maps, b.frontend) == nil)
            #expect(try ProgrammedState.read(from: maps) == writer.programmed)

            // a goes away (its input changed): now b fits, and the retry programs it.
            let removal = writer.apply([a.frontend: nil])
            #expect(removal.failures.isEmpty)
            let retry = writer.retryFailed()
            #expect(retry.failures.isEmpty, "\(retry.failures)")
            #expect(writer.failedFrontends.isEmpty)
            #expect(try view(maps, b.frontend)?.backends.map { "\($0.address)" } == ["10.1.0.1", "10.1.0.3"])
            #expect(try view(maps, a.frontend) == nil)
            #expect(try ProgrammedState.read(from: maps) == writer.programmed)
        }
    }

    @Test("IPv6 entries are reported as skipped, not written")
    func ipv6Skipped() throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            let writer = try MapWriter(maps: maps)
            let v6 = entry("fd00::1", 80, backends: [backend("fd00::2")])
            let mixed = entry("10.0.0.1", 80, backends: [backend("fd00::2"), backend("10.1.0.1")])
            let summary = writer.sync(state(v6, mixed))
            #expect(summary.skipped.count == 2 && summary.failures.isEmpty)
            #expect(try view(maps, mixed.frontend)?.backends.count == 1)
            #expect(try ProgrammedState.read(from: maps).services.count == 1)
        }
    }
}

extension ProgrammedState {
    /// Backend IDs named by any slot.
    var referencedIDs: Set<UInt32> { Set(services.values.flatMap { $0.slots.values }) }
}
