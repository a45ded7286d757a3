import Testing
@testable import LoadBalancer

/// A deliberately simple, obviously correct dotted-quad parser to check the fast one against.
func referenceIPv4(_ text: String) -> IPv4Address? {
    let pieces = text.split(separator: ".", omittingEmptySubsequences: false)
    guard pieces.count == 4 else { return nil }
    var value: UInt32 = 0
    for piece in pieces {
        guard !piece.isEmpty, piece.count <= 3, piece.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }),
              !(piece.count > 1 && piece.first == "0"), let n = UInt32(piece), n <= 255
        else { return nil }
        value = value << 8 | n
    }
    return IPv4Address(value)
}

/// `IPv4Address.parse` (the allocation-free parser behind `init?(_:)`) must agree with a simple reference.
@Suite struct FastIPv4Tests {
    static let samples = [
        "10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.1.20", "1.2.3.4", "100.64.0.0", "9.99.199.249",
        "", ".", "...", "1.2.3", "1.2.3.4.5", "1..3.4", ".1.2.3", "1.2.3.", "256.0.0.1", "1.2.3.256", "01.2.3.4", "1.2.3.04",
        "00.0.0.0", "0.0.0.00", "1000.1.1.1", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "+1.2.3.4", "a.b.c.d", "1.2.3.4x",
        "１.2.3.4", "٣.2.3.4", "fd00::1", "::ffff:1.2.3.4", "1.2.3.4/24", "999999999999.1.1.1",
    ]

    @Test(arguments: samples)
    func agreesWithTheReferenceParser(_ text: String) {
        #expect(IPv4Address.parse(text) == referenceIPv4(text))
        #expect(IPv4Address(text) == referenceIPv4(text))
    }

    @Test func agreesOnGeneratedInputs() {
        // Every string of up to 4 characters over a small alphabet, plus dotted quads with odd parts.
        let alphabet = ["0", "1", "9", ".", "2", "5", "a"]
        var texts = [""]
        for _ in 0..<5 { texts += texts.flatMap { t in alphabet.map { t + $0 } }.filter { $0.count <= 5 } ; texts = Array(Set(texts)) }
        let parts = ["0", "00", "1", "01", "25", "255", "256", "300", "099", ""]
        for a in parts { for b in parts { texts.append("\(a).\(b).1.\(b)") } }
        var disagreements: [String] = []
        for text in texts where IPv4Address.parse(text) != referenceIPv4(text) { disagreements.append(text) }
        #expect(disagreements == [])
        #expect(texts.count > 1000)
    }

    @Test func ipAddressParseFallsBackToIPv6() {
        #expect(IPAddress.parse("10.1.2.3") == .v4(IPv4Address(10, 1, 2, 3)))
        #expect(IPAddress.parse("fd00::10") == IPAddress("fd00::10"))
        #expect(IPAddress.parse("nope") == nil)
    }
}
