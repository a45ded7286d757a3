import Testing
@testable import LoadBalancer

@Suite struct AddressTests {
    @Test(arguments: ["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.1.20"])
    func ipv4RoundTrips(_ text: String) {
        #expect(IPv4Address(text)?.description == text)
    }

    @Test(arguments: ["", "10.0.0", "10.0.0.1.2", "256.0.0.1", "01.2.3.4", "a.b.c.d", "10..0.1", " 10.0.0.1", "-1.0.0.0"])
    func ipv4RejectsMalformed(_ text: String) {
        #expect(IPv4Address(text) == nil)
    }

    @Test(arguments: [("::1", "::1"), ("fd00::10", "fd00::10"), ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"), ("::", "::")])
    func ipv6Canonical(_ input: String, _ expected: String) {
        #expect(IPv6Address(input)?.description == expected)
    }

    @Test func familiesSortIPv4First() {
        #expect(IPAddress("10.0.0.1")! < IPAddress("::1")!)
        #expect(IPAddress("10.0.0.1")! < IPAddress("10.0.0.2")!)
    }
}

@Suite("IPv4-mapped IPv6 addresses") struct IPv4MappedAddressTests {
    @Test("::ffff:a.b.c.d and its hex form are the IPv4 address they map", arguments: ["::ffff:10.0.0.4", "::FFFF:10.0.0.4", "::ffff:a00:4", "0:0:0:0:0:ffff:10.0.0.4"])
    func mappedIsIPv4(_ text: String) {
        #expect(IPAddress(text) == .v4(IPv4Address(10, 0, 0, 4)))
    }

    @Test("other IPv6 addresses with a dotted tail stay IPv6, and broken tails are rejected")
    func otherTails() {
        #expect(IPv6Address("64:ff9b::10.0.0.4")?.description == "64:ff9b::a00:4")
        #expect(IPAddress("64:ff9b::10.0.0.4")?.ipv4 == nil)
        for bad in ["::ffff:10.0.0", "::ffff:10.0.0.256", "::ffff:10.0.0.4:1", "1:2:3:4:5:6:7:10.0.0.4", "10.0.0.4::"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }
}
