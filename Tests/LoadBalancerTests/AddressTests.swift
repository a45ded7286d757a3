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
