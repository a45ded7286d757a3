import BPFMaps
import LoadBalancer
import Testing

/// `bpf lb list` over content no writer of ours produces (corrupt, foreign or half-written maps):
/// every case must be listed or warned about, never trap. No bpffs needed: the listing is built
/// from a `ProgrammedState` as if read from the pins.
@Suite("bpf lb list: corrupt, foreign and half-written map content")
struct LBListingCorruptContentTests {
    let key = ServiceMapKey(address: IPv4Address(10, 0, 0, 9), port: 80, proto: 6, scope: 0)

    func master(count: UInt16, qcount: UInt16 = 0, revNat: UInt16 = 1) -> MasterEntry {
        MasterEntry(count: count, qcount: qcount, revNatID: revNat, flags: 0, flags2: 0, union: 0)
    }

    @Test("a master whose count + qcount exceeds 65,535 is listed with one warning, not a trap")
    func countPlusQcountOverflow() {
        var entries = ServiceEntries(master: master(count: 65_535, qcount: 2))
        entries.slots[1] = 7
        let state = ProgrammedState(
            services: [key: entries],
            backends: [7: BackendEntry(address: IPv4Address(10, 1, 0, 1), port: 8080, proto: 6, state: 0)],
            reverseNAT: [1: RevNatEntry(address: IPv4Address(10, 0, 0, 9), port: 80)])
        let listing = LBListing(state)
        #expect(listing.frontends.count == 1)
        #expect(listing.frontends.first?.slots.map(\.backendID) == [7])
        #expect(listing.warnings.map(\.description) == [
            "pw_lb4_services 10.0.0.9:80/TCP: count: count+qcount is 65535+2 = 65537, more than the 65535 slots a key can address",
            "pw_lb4_services 10.0.0.9:80/TCP: slots 2...65535: missing, but the master counts 65535+2 backends",
        ])
        #expect(listing.table.contains("10.0.0.9:80/TCP (1)  10.1.0.1:8080/TCP (1) (1)"))
    }

    @Test("runs of missing slots and slots past the count are summarised, one warning each")
    func missingAndStraySlots() {
        var entries = ServiceEntries(master: master(count: 3))
        entries.slots = [1: 7, 9: 7, 10: 7, 40: 7]
        let state = ProgrammedState(
            services: [key: entries],
            backends: [7: BackendEntry(address: IPv4Address(10, 1, 0, 1), port: 8080, proto: 6, state: 0)],
            reverseNAT: [1: RevNatEntry(address: IPv4Address(10, 0, 0, 9), port: 80)])
        #expect(LBListing(state).warnings.map(\.description) == [
            "pw_lb4_services 10.0.0.9:80/TCP: slots 2...3: missing, but the master counts 3+0 backends",
            "pw_lb4_services 10.0.0.9:80/TCP: slots: 3 slot(s) past count+qcount (9, 10, 40): the datapath never reads them",
        ])
    }

    @Test("unknown protocol, scope, backend protocol and backend state are warned about and listed where possible")
    func foreignValues() {
        let odd = ServiceMapKey(address: IPv4Address(10, 0, 0, 8), port: 53, proto: 99, scope: 7)
        var entries = ServiceEntries(master: master(count: 2))
        entries.slots = [1: 5, 2: 6]
        let state = ProgrammedState(
            services: [key: entries, odd: ServiceEntries(master: master(count: 0))],
            backends: [
                5: BackendEntry(address: IPv4Address(10, 1, 0, 1), port: 8080, proto: 99, state: 0),
                6: BackendEntry(address: IPv4Address(10, 1, 0, 2), port: 8080, proto: 6, state: 200),
            ],
            reverseNAT: [1: RevNatEntry(address: IPv4Address(10, 0, 0, 9), port: 80)])
        let listing = LBListing(state)
        #expect(listing.warnings.map(\.description) == [
            "pw_lb4_services 10.0.0.8:53/proto99: key: unknown protocol 99 or scope 7: not listed",
            "pw_lb4_services 10.0.0.9:80/TCP: slot 1: backend 5 has unknown protocol 99: not listed",
            "pw_lb4_services 10.0.0.9:80/TCP: slot 2: backend 6 has unknown state 200: listed as active",
        ])
        #expect(listing.rows.count == 1)
        #expect(listing.rows.first?.backendIDs == [6])
    }
}
