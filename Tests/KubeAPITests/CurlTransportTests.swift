import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Testing

@Suite("CurlTransport: cancellation, error detail, flow control")
struct CurlTransportTests {
    /// `timeout` is curl's for the whole transfer: the slow consumer's reads run on the test
    /// process's concurrency pool, which the full parallel run can keep busy for tens of seconds.
    func request(_ server: TestAPIServer, _ path: String, timeout: Duration = .seconds(20)) throws -> HTTPRequest {
        HTTPRequest(
            url: server.url + path, headers: ["Authorization: Bearer test-token"], timeout: timeout,
            tls: TLSSettings(caData: server.certificates.read(server.certificates.caCertPath)))
    }

    @Test("a cancel that comes before the transfer starts is not lost: the request is never sent")
    func cancelBeforeStart() async throws {
        let server = try await TestAPIServer.started(tokens: ["test-token": "admin"])
        try server.create("services", object: service("web"))
        let transport = CurlTransport()
        let req = try request(server, "/api/v1/namespaces/demo/services/web")
        for _ in 0..<100 {
            let outcome = await Task {
                // Cancel the task first: the cancellation handler runs before the hand-over.
                withUnsafeCurrentTask { $0?.cancel() }
                do {
                    _ = try await transport.send(req)
                    return "sent"
                } catch is CancellationError {
                    return "cancelled"
                } catch {
                    return "\(error)"
                }
            }.value
            #expect(outcome == "cancelled")
        }
        // The positive signal: a request handed over after all of them is answered. The transport's
        // one curl thread starts transfers in hand-over order, so a cancelled request that had been
        // started anyway would have reached the server first. Only this one did.
        #expect(try await transport.send(req).status == 200, "the transport still works")
        let reached = server.requests(verb: "get", resource: "services").count
        #expect(reached == 1, "no cancelled request reaches the server: \(reached - 1) of 100 did")
        try await server.stop()
    }

    @Test("a transport error carries curl's own detail (the error buffer)")
    func errorDetail() async throws {
        // A port nobody listens on: bind one, note it, close it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = UInt16(bigEndian: addr.sin_port)
        close(fd)
        do {
            _ = try await CurlTransport.shared.send(HTTPRequest(url: "https://127.0.0.1:\(port)/api", timeout: .seconds(5)))
            Issue.record("expected a transport error")
        } catch let error as TransportError {
            // curl_easy_strerror alone says "Couldn't connect to server"; the buffer names the address and port.
            #expect(error.message.contains("\(port)"), "\(error.message)")
        }
    }

    @Test("a slow consumer pauses the transfer: buffered bytes stay bounded, and nothing is lost")
    func flowControl() async throws {
        let server = try await TestAPIServer.started(tokens: ["test-token": "admin"])
        for i in 0..<1500 { try server.create("services", object: service("service-with-a-long-name-\(i)", labels: ["app": String(repeating: "x", count: 60)])) }
        let req = try request(server, "/api/v1/services", timeout: .seconds(180))
        let whole = try await CurlTransport.shared.send(req)
        #expect(whole.status == 200 && whole.body.count > 400_000)

        let limit = 32 * 1024
        let stream = CurlTransport.shared.stream(req, bufferLimit: limit)
        var iterator = stream.makeAsyncIterator()
        guard case .head(let status, _)? = try await iterator.next() else {
            Issue.record("no head")
            return
        }
        #expect(status == 200)
        // Do not read for a while: the transfer must pause instead of buffering the whole body.
        try await Task.sleep(for: .milliseconds(500))
        let stalled = stream.flow.statistics
        #expect(stalled.pauses >= 1)
        #expect(stalled.maxOutstanding <= limit + 64 * 1024, "at most the limit plus one curl chunk wait (\(stalled.maxOutstanding))")
        var body = Data()
        while let part = try await iterator.next() {
            if case .data(let data) = part { body.append(data) }
        }
        #expect(body == whole.body)
        #expect(stream.flow.statistics.maxOutstanding <= limit + 64 * 1024)
        try await server.stop()
    }
}
