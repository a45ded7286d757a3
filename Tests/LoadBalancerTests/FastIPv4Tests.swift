import Testing
@testable import LoadBalancer

/// `IPv4Address.parse` (the translator's allocation-free parser) must agree with `init?(_:)`.
@Suite struct FastIPv4Tests {
    static let samples = [
        "10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.1.20", "1.2.3.4", "100.64.0.0", "9.99.199.249",
        "", ".", "...", "1.2.3", "1.2.3.4.5", "1..3.4", ".1.2.3", "1.2.3.", "256.0.0.1", "1.2.3.256", "01.2.3.4", "1.2.3.04",
        "00.0.0.0", "0.0.0.00", "1000.1.1.1", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "+1.2.3.4", "a.b.c.d", "1.2.3.4x",
        "１.2.3.4", "٣.2.3.4", "fd00::1", "::ffff:1.2.3.4", "1.2.3.4/24", "999999999999.1.1.1",
    ]

    @Test(arguments: samples)
    func agreesWithTheReferenceParser(_ text: String) {
        #expect(IPv4Address.parse(text) == IPv4Address(text))
    }

    @Test func agreesOnGeneratedInputs() {
        // Every string of up to 4 characters over a small alphabet, plus dotted quads with odd parts.
        let alphabet = ["0", "1", "9", ".", "2", "5", "a"]
        var texts = [""]
        for _ in 0..<5 { texts += texts.flatMap { t in alphabet.map { t + $0 } }.filter { $0.count <= 5 } ; texts = Array(Set(texts)) }
        let parts = ["0", "00", "1", "01", "25", "255", "256", "300", "099", ""]
        for a in parts { for b in parts { texts.append("\(a).\(b).1.\(b)") } }
        var disagreements: [String] = []
        for text in texts where IPv4Address.parse(text) != IPv4Address(text) { disagreements.append(text) }
        #expect(disagreements == [])
        #expect(texts.count > 1000)
    }

    @Test func ipAddressParseFallsBackToIPv6() {
        #expect(IPAddress.parse("10.1.2.3") == .v4(IPv4Address(10, 1, 2, 3)))
        #expect(IPAddress.parse("fd00::10") == IPAddress("fd00::10"))
        #expect(IPAddress.parse("nope") == nil)
    }
}
