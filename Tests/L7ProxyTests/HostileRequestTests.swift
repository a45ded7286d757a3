import GatewayCore
import NIOCore
import NIOPosix
import Testing
@testable import L7Proxy

/// Issue 16, items 4–8, over real loopback sockets: what a hostile client sends is refused before it
/// reaches a backend, or forwarded exactly as it was routed. Each request here was reproduced
/// against the release binary (issue 16); the backend echoes what it received.
@Suite struct HostileRequestTests {
    func withProxy(_ body: (_ port: UInt16, _ group: any EventLoopGroup, _ a: TestBackend, _ b: TestBackend) async throws -> Void) async throws {
        try await withHostRoutedProxy { _, port, a, b, group in try await body(port, group, a, b) }
    }

    /// One request on a new connection: the response, or nil when none came within 5 s.
    func ask(_ request: String, port: UInt16, group: any EventLoopGroup) async throws -> ParsedResponse? {
        let client = try await RawClient(port: port, group: group)
        defer { Task { await client.close() } }
        try await client.send(request)
        return await client.responses(1, seconds: 5).first
    }

    @Test("item 4: a Host that is not uri-host[:port] is 400 and never forwarded (no forged Forwarded element)")
    func forgedHost() async throws {
        try await withProxy { port, group, a, _ in
            for host in [#"a.example.com:", for=6.6.6.6;host="trusted.example.com"#, "evil@a.example.com", "a.example.com:abc"] {
                let answer = try await ask("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n", port: port, group: group)
                #expect(answer?.status == 400, "Host: \(host)")
            }
            #expect(a.accepted.withLockedValue { $0 } == 0, "nothing reached the backend")
            // A valid Host with a port is forwarded, quoted in Forwarded.
            let fine = try await ask("GET / HTTP/1.1\r\nHost: a.example.com:8080\r\n\r\n", port: port, group: group)
            #expect(fine?.header("x-echo-forwarded") == #"for=127.0.0.1;host="a.example.com:8080";proto=http"#)
        }
    }

    @Test("item 5: an absolute-form target is routed and forwarded with its own authority, not the Host header")
    func absoluteForm() async throws {
        try await withProxy { port, group, _, _ in
            let answer = try await ask("GET http://b.example.com/admin HTTP/1.1\r\nHost: a.example.com\r\n\r\n", port: port, group: group)
            #expect(answer?.body == "B GET /admin")
            #expect(answer?.header("x-echo-host") == "b.example.com")
            #expect(answer?.header("x-echo-x-forwarded-host") == "b.example.com")
            #expect(answer?.header("x-echo-forwarded") == #"for=127.0.0.1;host="b.example.com";proto=http"#)
        }
    }

    @Test("item 6: the path is normalized before routing and forwarded normalized; an escaped slash or NUL is 400")
    func pathNormalization() async throws {
        try await withProxy { port, group, a, _ in
            for raw in ["/./admin", "//admin", "/%61dmin", "/x/../admin", "/%2e%2e/admin"] {
                let answer = try await ask("GET \(raw) HTTP/1.1\r\nHost: a.example.com\r\n\r\n", port: port, group: group)
                #expect(answer?.body == "A GET /admin", "\(raw)")
            }
            let before = a.accepted.withLockedValue { $0 }
            for raw in ["/a%2Fb", "/a%00", "/a%zz"] {
                let answer = try await ask("GET \(raw) HTTP/1.1\r\nHost: a.example.com\r\n\r\n", port: port, group: group)
                #expect(answer?.status == 400, "\(raw)")
            }
            #expect(a.accepted.withLockedValue { $0 } == before, "refused requests never reach the backend")
        }
    }

    @Test("item 7: characters the encoder refuses are percent-encoded at parse time, on a new and on a pooled upstream connection")
    func unsafeCharacters() async throws {
        try await withProxy { port, group, _, _ in
            let client = try await RawClient(port: port, group: group)
            // The first on a new upstream connection, the others on the pooled one.
            let requests = ["/a|b", "/q?q={1}", "/x\"y", "/x^y`z", "/l<t>"]
            for (index, target) in requests.enumerated() {
                try await client.send("GET \(target) HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
                let answers = await client.responses(index + 1, seconds: 5)
                #expect(answers.count == index + 1 && answers.last?.status == 200, "\(target): \(answers.last.map { "\($0.status) \($0.body)" } ?? "no answer")")
            }
            let bodies = parseResponses(client.text).map(\.body)
            #expect(bodies == ["A GET /a%7Cb", "A GET /q?q=%7B1%7D", "A GET /x%22y", "A GET /x%5Ey%60z", "A GET /l%3Ct%3E"])
            await client.close()
        }
    }

    @Test("item 8: a Transfer-Encoding other than exactly chunked is refused before anything is forwarded")
    func transferEncoding() async throws {
        try await withProxy { port, group, a, _ in
            let identity = try await ask(
                "POST /upload HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: identity\r\n\r\nhello", port: port, group: group)
            #expect(identity?.status == 400)
            let gzip = try await ask(
                "POST /upload HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", port: port, group: group)
            #expect(gzip?.status == 501)
            #expect(a.accepted.withLockedValue { $0 } == 0, "neither reached the backend")
            let chunked = try await ask(
                "POST /upload HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", port: port, group: group)
            #expect(chunked?.status == 200 && chunked?.body == "5")
        }
    }
}
