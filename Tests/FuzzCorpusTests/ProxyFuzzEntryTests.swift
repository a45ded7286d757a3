import GatewayCore
import PortwayFuzzEntries
import PortwayTestSupport
import Testing

/// Seeds for `fuzzProxyRequestParser`, the entry the fuzz harness calls: each must run without a
/// crash and give the answer the proxy owes it.
@Suite struct FuzzEntryTests {
    static let seeds: [(String, [Int])] = [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", [404]),
        ("GET /redirect HTTP/1.1\r\nHost: x\r\n\r\n", [302]),
        ("GET / HTTP/1.1\r\nHost: backend\r\n\r\n", [504]),
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", [404, 404]),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", [404]),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", [400]),
        ("\u{0}\u{0}\u{0}", [400]),
        ("GET / HTTP/1.1\r\nHost: x\r\nX: \(String(repeating: "y", count: 70_000))\r\n\r\n", [431]),
        ("GET / HTTP/1.1\r\nHost: x", [408]),
        ("", []),
        ("GET / HTTP/9.9\r\nHost: x\r\n\r\n", [400]),
        ("GET http://a.b/c HTTP/1.1\r\n\r\n", [404]),
    ]

    @Test(arguments: seeds)
    func seedRunsWithoutCrashing(seed: (String, [Int])) {
        let bytes = Array(seed.0.utf8)
        #expect(fuzzProxyRequestParser(bytes).statuses == seed.1)
        // The same bytes split anywhere give the same answer.
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 7)) {
            #expect(fuzzProxyRequestParser(bytes, splitAt: cut).statuses == seed.1, "split at \(cut)")
        }
    }

    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", [200]),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", [200]),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", [101]),
        ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", [100, 204]),
        ("garbage\r\n\r\n", [502]),
        ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", [200]),
    ])
    func upstreamResponsesAreRelayedOrRefused(response: String, statuses: [Int]) {
        let request = Array("GET / HTTP/1.1\r\nHost: backend\r\n\r\n".utf8)
        #expect(fuzzProxyRequestParser(request, upstreamResponse: Array(response.utf8)).statuses == statuses)
    }

    @Test func randomBytesNeverCrash() async throws {
        // CPU-bound: on the tests' CPU lane, not the 2-thread cooperative pool.
        try await onCPULane { Self.randomBytes() }
    }

    static func randomBytes() {
        var generator = SeededRandom()
        for _ in 0..<200 {
            let count = Int.random(in: 0..<300, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if Bool.random(using: &generator) { bytes = Array("GET / HTTP/1.1\r\n".utf8) + bytes }
            _ = fuzzProxyRequestParser(bytes, splitAt: Int.random(in: 0...max(count, 1), using: &generator))
            let request = Array("GET / HTTP/1.1\r\nHost: backend\r\n\r\n".utf8)
            _ = fuzzProxyRequestParser(request, upstreamResponse: Array("HTTP/1.1 ".utf8) + bytes)
        }
    }
}
