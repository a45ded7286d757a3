import BPFMaps
import CPortwayBPF
import LoadBalancer
import Testing

@Suite("bpf lb list: the listing read back from the pinned maps", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct LBListingTests {
    @Test("the table shows masters with IDs and flags, slots with backends, and the L7LB proxy port")
    func table() throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            let writer = try MapWriter(maps: maps)
            let web = entry("10.0.0.1", 30080, backends: [backend("10.1.0.1"), backend("10.1.0.2"), backend("10.1.0.3", 8080, .tcp, .terminating)])
            let gw = entry("0.0.0.0", 30510, flags: [.nodePort, .nonRoutable, .l7LoadBalancer], l7ProxyPort: 10285, name: "gw", backends: [])
            let summary = writer.sync(state(web, gw))
            #expect(summary.failures.isEmpty)
            let gwID = try #require(writer.revNatID(for: gw.frontend))
            let webID = try #require(writer.revNatID(for: web.frontend))
            let listing = try LBListing.read(from: try MapSet.openExisting(bpffs: fs.directory))
            #expect(listing.warnings.isEmpty)
            #expect(listing.table == """
                SERVICE ADDRESS         BACKEND ADDRESS (REVNAT_ID) (SLOT)
                0.0.0.0:30510/TCP (0)   0.0.0.0:0 (\(gwID)) (0) [NodePort, non-routable, l7-load-balancer] (L7LB Proxy Port: 10285)
                10.0.0.1:30080/TCP (0)  0.0.0.0:0 (\(webID)) (0) [NodePort]
                10.0.0.1:30080/TCP (1)  10.1.0.1:8080/TCP (\(webID)) (1)
                10.0.0.1:30080/TCP (2)  10.1.0.2:8080/TCP (\(webID)) (2)
                10.0.0.1:30080/TCP (3)  10.1.0.3:8080/TCP (\(webID)) (3) [terminating]

                """)
        }
    }

    @Test("the L7LB frontends' proxy ports read back from the pins (portway explain --bpffs)")
    func l7ProxyPorts() throws {
        try withBPFFS { fs in
            let writer = try MapWriter(maps: try fs.maps())
            let gw = entry("0.0.0.0", 30510, flags: [.nodePort, .nonRoutable, .l7LoadBalancer], l7ProxyPort: 10285, name: "gw", backends: [])
            let lb = entry("203.0.113.10", 80, type: .loadBalancer, flags: [.loadBalancer, .l7LoadBalancer], l7ProxyPort: 10286, name: "gw", backends: [])
            let sticky = entry("10.96.0.5", 80, type: .clusterIP, flags: [.clusterIP, .nonRoutable, .sessionAffinity], affinity: 600, name: "sticky", backends: [backend("10.1.0.1")])
            #expect(writer.sync(state(gw, lb, sticky)).failures.isEmpty)
            let ports = try ProgrammedState.read(from: try MapSet.openExisting(bpffs: fs.directory)).l7ProxyPorts
            #expect(ports == [gw.frontend: 10285, lb.frontend: 10286], "the affinity timeout of an L4 frontend is no proxy port")
        }
    }

    @Test("the JSON is translate's entries plus serviceID, revNatID, backendID and slot")
    func json() throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            let writer = try MapWriter(maps: maps)
            let sticky = entry(
                "10.96.0.5", 80, type: .clusterIP, flags: [.clusterIP, .nonRoutable, .sessionAffinity], affinity: 600, name: "sticky",
                backends: [backend("10.1.0.1")])
            _ = writer.sync(state(sticky))
            let id = try #require(writer.revNatID(for: sticky.frontend))
            let backendID = try #require(writer.backendID(for: backend("10.1.0.1")))
            let text = JSONValue.object(try LBListing.read(from: maps).json).rendered(pretty: false)
            #expect(text == """
                {"services":[{"frontend":{"address":"10.96.0.5","port":80,"protocol":"TCP","scope":"external"},\
                "serviceID":\(id),"revNatID":\(id),"type":"ClusterIP","flags":["ClusterIP","sessionAffinity","non-routable"],\
                "l7ProxyPort":null,"affinityTimeoutSeconds":600,"service":null,"backends":[{"address":"10.1.0.1","port":8080,\
                "protocol":"TCP","state":"active","backendID":\(backendID),"slot":1}]}],"warnings":[]}
                """)
        }
    }

    @Test("inconsistent maps are listed with warnings, not hidden")
    func inconsistencies() throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            var key = pw_lb4_key()
            key.address = IPv4Address(10, 0, 0, 9).value.bigEndian
            key.dport = UInt16(80).bigEndian
            key.proto = 6
            var master = pw_lb4_service()
            master.count = 2
            master.rev_nat_index = UInt16(5).bigEndian
            master.flags = UInt8(PW_SVC_FLAG_NODEPORT)
            try maps.services.update(key, master)
            key.backend_slot = 1
            var slot = pw_lb4_service()
            slot.backend_id = 77
            try maps.services.update(key, slot)
            let listing = try LBListing.read(from: maps)
            #expect(listing.warnings.map(\.description) == [
                "pw_lb4_services 10.0.0.9:80/TCP: slot 1: backend 77 is not in pw_lb4_backends",
                "pw_lb4_services 10.0.0.9:80/TCP: slot 2: missing, but the master counts 2+0 backends",
                "pw_lb4_services 10.0.0.9:80/TCP: rev_nat_index: reverse-NAT entry 5 is not in pw_lb4_reverse_nat",
            ])
            #expect(listing.table.contains("10.0.0.9:80/TCP (0)  0.0.0.0:0 (5) (0) [NodePort]"))
        }
    }

    @Test("a real pinned master with count+qcount over 65,535 is listed with a warning, not a trap (issue 12, defect 5)")
    func countOverflowOnRealPin() throws {
        try withBPFFS { fs in
            let maps = try fs.maps()
            var key = pw_lb4_key()
            key.address = IPv4Address(10, 0, 0, 7).value.bigEndian
            key.dport = UInt16(53).bigEndian
            key.proto = 17
            var master = pw_lb4_service()
            master.count = 65_535
            master.qcount = 65_535
            master.rev_nat_index = UInt16(3).bigEndian
            try maps.services.update(key, master)
            let listing = try LBListing.read(from: maps)
            #expect(listing.frontends.count == 1)
            #expect(listing.warnings.map(\.description).prefix(2) == [
                "pw_lb4_services 10.0.0.7:53/UDP: count: count+qcount is 65535+65535 = 131070, more than the 65535 slots a key can address",
                "pw_lb4_services 10.0.0.7:53/UDP: slots 1...65535: missing, but the master counts 65535+65535 backends",
            ])
        }
    }
}
