import Foundation
import GatewayCore
import NIOCore
import NIOPosix
import NIOSSL
import KubeModels
import LoadBalancer
import Testing
@testable import L7Proxy

/// Self-signed certificates made with the `openssl` CLI (EC P-256: fast), or nil when it is missing.
struct SelfSigned {
    var pemCertificate: [UInt8]
    var pemKey: [UInt8]

    static func make(hostname: String) throws -> SelfSigned? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { return nil }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pwpx-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard (try? makeCertificate(hostname: hostname, path: dir + "/tls")) != nil,
            let cert = FileManager.default.contents(atPath: dir + "/tls.crt"),
            let key = FileManager.default.contents(atPath: dir + "/tls.key")
        else { return nil }
        return SelfSigned(pemCertificate: Array(cert), pemKey: Array(key))
    }

    func listenerCertificate(hostname: String?) throws -> ListenerCertificate {
        try ListenerCertificate(hostname: hostname, pemCertificateChain: pemCertificate, pemPrivateKey: pemKey)
    }

    var certificate: NIOSSLCertificate { get throws { try NIOSSLCertificate(bytes: pemCertificate, format: .pem) } }
}

@Suite struct TLSListenerTests {
    @Test func sniChoosesExactThenLongestWildcardThenCatchAll() throws {
        guard let pem = try SelfSigned.make(hostname: "x.example.com") else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let exact = try pem.listenerCertificate(hostname: "a.example.com")
        let wide = try pem.listenerCertificate(hostname: "*.example.com")
        let narrow = try pem.listenerCertificate(hostname: "*.b.example.com")
        let any = try pem.listenerCertificate(hostname: nil)
        let all = [wide, narrow, exact, any]
        #expect(TLSListener.choose(serverName: "a.example.com", among: all)?.hostname == "a.example.com")
        #expect(TLSListener.choose(serverName: "A.Example.COM.", among: all)?.hostname == "a.example.com")
        #expect(TLSListener.choose(serverName: "x.b.example.com", among: all)?.hostname == "*.b.example.com")
        #expect(TLSListener.choose(serverName: "c.example.com", among: all)?.hostname == "*.example.com")
        #expect(TLSListener.choose(serverName: "example.com", among: all)?.hostname == nil)
        #expect(TLSListener.choose(serverName: nil, among: all)?.hostname == nil)
        #expect(TLSListener.choose(serverName: "other.org", among: [wide, exact])?.hostname == "*.example.com")
        #expect(throws: TLSListener.Problem.self) { try TLSListener(certificates: []).makeContext() }
    }

    /// An HTTPS proxy port with two listeners: each SNI gets its own certificate (verified against
    /// only that certificate as trust root), requests are routed by Host and say proto=https.
    @Test func httpsListenerServesTheCertificateOfEachSNI() async throws {
        guard let certA = try SelfSigned.make(hostname: "a.example.com"), let certB = try SelfSigned.make(hostname: "b.example.com") else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let a = try await TestBackend(name: "A", group: group)
        let b = try await TestBackend(name: "B", group: group)
        let proxy = L7Proxy(group: group, routes: RouteTableHolder(HostRouter(a: [a.endpoint], b: [b.endpoint])))
        let tls = TLSListener(certificates: [
            try certA.listenerCertificate(hostname: "a.example.com"), try certB.listenerCertificate(hostname: "b.example.com"),
        ])
        do {
            let port = try await proxy.open(port: 0, configuration: ListenerConfiguration(tls: tls))
            for (host, trusted, body) in [("a.example.com", certA, "A GET /"), ("b.example.com", certB, "B GET /")] {
                var client = TLSConfiguration.makeClientConfiguration()
                client.trustRoots = .certificates([try trusted.certificate])
                let connection = try await RawClient(port: port, group: group, tls: (try NIOSSLContext(configuration: client), host))
                try await connection.send("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
                let response = await connection.responses(1).first
                #expect(response?.body == body)
                #expect(response?.header("x-echo-x-forwarded-proto") == "https")
                await connection.close()
            }
            // Asking for a with only b's certificate trusted fails the handshake: a's certificate was served.
            var mismatched = TLSConfiguration.makeClientConfiguration()
            mismatched.trustRoots = .certificates([try certB.certificate])
            let refused = try await RawClient(port: port, group: group, tls: (try NIOSSLContext(configuration: mismatched), "a.example.com"))
            try? await refused.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await refused.wait { $0.isClosed })
            #expect(refused.text.isEmpty)
        } catch {
            Issue.record("unexpected error: \(error)")
        }
        await proxy.shutdown()
        await a.close()
        await b.close()
        try await group.shutdownGracefully()
    }

    /// GatewayHTTPSListenerDetectMisdirectedRequests through the real TLS pipeline: on a connection
    /// whose SNI chose listener a.example.com, a request for a.example.com is routed and one for
    /// b.example.com (another listener's host) gets 421 on the same connection; with SNI
    /// b.example.com the other way round.
    @Test func aHostOfAnotherListenerThanTheSNIsGets421() async throws {
        guard let certA = try SelfSigned.make(hostname: "a.example.com"), let certB = try SelfSigned.make(hostname: "b.example.com") else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let a = try await TestBackend(name: "A", group: group)
        let b = try await TestBackend(name: "B", group: group)
        func listener(_ host: String, _ backend: TestBackend) -> ListenerRouteTable {
            ListenerRouteTable(name: host, hostname: host, protocol: .https, rules: [
                GatewayRouteTableRouterTests.entry(host, hostnames: [], backends: [GatewayCore.WeightedBackend(
                    weight: 1, reference: NamespacedName(namespace: "default", name: backend.name), port: 80,
                    endpoints: [GatewayCore.BackendEndpoint(address: "127.0.0.1", port: backend.port)])]),
            ])
        }
        let table = PortRouteTable(gateway: NamespacedName(namespace: "default", name: "gw"), port: 443, listeners: [listener("a.example.com", a), listener("b.example.com", b)])
        let holder = RouteTableHolder()
        let proxy = L7Proxy(group: group, routes: holder)
        let tls = TLSListener(certificates: [
            try certA.listenerCertificate(hostname: "a.example.com"), try certB.listenerCertificate(hostname: "b.example.com"),
        ])
        do {
            let port = try await proxy.open(port: 0, configuration: ListenerConfiguration(tls: tls))
            holder.swap(GatewayRouteTableRouter(tables: [UInt16(port): table]))
            for (sni, trusted, own, other) in [("a.example.com", certA, "A GET /", "b.example.com"), ("b.example.com", certB, "B GET /", "a.example.com")] {
                var client = TLSConfiguration.makeClientConfiguration()
                client.trustRoots = .certificates([try trusted.certificate])
                let connection = try await RawClient(port: port, group: group, tls: (try NIOSSLContext(configuration: client), sni))
                try await connection.send("GET / HTTP/1.1\r\nHost: \(sni)\r\n\r\nGET / HTTP/1.1\r\nHost: \(other)\r\n\r\nGET / HTTP/1.1\r\nHost: \(sni.uppercased()):443\r\n\r\n")
                let responses = await connection.responses(3)
                #expect(responses.map(\.status) == [200, 421, 200], "SNI \(sni)")
                #expect(responses.first?.body == own && responses.last?.body == own, "SNI \(sni)")
                await connection.close()
            }
        } catch {
            Issue.record("unexpected error: \(error)")
        }
        await proxy.shutdown()
        await a.close()
        await b.close()
        try await group.shutdownGracefully()
    }

    /// A Secret rotated while the port stays open: new handshakes get the new certificate, an
    /// established connection keeps working, the other listener's certificate is untouched.
    @Test func certificatesAreReplacedWhileThePortStaysOpen() async throws {
        guard let oldA = try SelfSigned.make(hostname: "a.example.com"), let newA = try SelfSigned.make(hostname: "a.example.com"),
            let certB = try SelfSigned.make(hostname: "b.example.com")
        else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let a = try await TestBackend(name: "A", group: group)
        let b = try await TestBackend(name: "B", group: group)
        let proxy = L7Proxy(group: group, routes: RouteTableHolder(HostRouter(a: [a.endpoint], b: [b.endpoint])))
        func tls(_ certA: SelfSigned) throws -> TLSListener {
            TLSListener(certificates: [try certA.listenerCertificate(hostname: "a.example.com"), try certB.listenerCertificate(hostname: "b.example.com")])
        }
        func connect(_ port: UInt16, _ host: String, trusting: SelfSigned) async throws -> RawClient {
            var client = TLSConfiguration.makeClientConfiguration()
            client.trustRoots = .certificates([try trusting.certificate])
            return try await RawClient(port: port, group: group, tls: (try NIOSSLContext(configuration: client), host))
        }
        func get(_ port: UInt16, _ host: String, trusting: SelfSigned) async throws -> String? {
            let connection = try await connect(port, host, trusting: trusting)
            try? await connection.send("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
            await connection.wait { !parseResponses($0.text).isEmpty || $0.isClosed }
            let body = parseResponses(connection.text).first?.body
            await connection.close()
            return body
        }
        do {
            let port = try await proxy.open(port: 0, configuration: ListenerConfiguration(tls: try tls(oldA)))
            #expect(proxy.terminatesTLS(port: port))
            #expect(try await get(port, "a.example.com", trusting: oldA) == "A GET /")
            let established = try await connect(port, "a.example.com", trusting: oldA)
            try await established.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await established.responses(1).first?.body == "A GET /1")

            #expect(proxy.updateCertificates(port: port, tls: try tls(newA)))
            #expect(try await get(port, "a.example.com", trusting: newA) == "A GET /")
            #expect(try await get(port, "a.example.com", trusting: oldA) == nil, "the old certificate is no longer served")
            #expect(try await get(port, "b.example.com", trusting: certB) == "B GET /")
            // The connection made before the change goes on with its session.
            try await established.send("GET /2 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await established.responses(2).last?.body == "A GET /2")
            await established.close()

            // Not an HTTPS port, or no certificate at all: nothing is replaced.
            let plain = try await proxy.open(port: 0)
            #expect(!proxy.updateCertificates(port: plain, tls: try tls(oldA)))
            #expect(!proxy.updateCertificates(port: port, tls: TLSListener(certificates: [])))
            #expect(try await get(port, "a.example.com", trusting: newA) == "A GET /")
        } catch {
            Issue.record("unexpected error: \(error)")
        }
        await proxy.shutdown()
        await a.close()
        await b.close()
        try await group.shutdownGracefully()
    }

    @Test func tlsListenerFromAGatewayTableTakesEachHTTPSListenersCertificates() throws {
        guard let pem = try SelfSigned.make(hostname: "a.example.com") else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let secret = NamespacedName(namespace: "default", name: "a-tls")
        let material = TLSMaterial(certificateChain: pem.pemCertificate, privateKey: pem.pemKey)
        let gateway = NamespacedName(namespace: "default", name: "gw")
        let https = PortRouteTable(gateway: gateway, port: 443, listeners: [
            ListenerRouteTable(name: "a", hostname: "a.example.com", protocol: .https, certificates: [secret], rules: []),
            ListenerRouteTable(name: "missing", hostname: "m.example.com", protocol: .https, certificates: [NamespacedName(namespace: "default", name: "gone")], rules: []),
        ])
        var unusable: [UnusableCertificate] = []
        let tls = try #require(TLSListener(table: https, certificates: [secret: material], unusable: &unusable))
        #expect(tls.certificates.map(\.hostname) == ["a.example.com"])
        #expect(unusable.map(\.description) == ["listener missing (m.example.com): Secret default/gone: not among the resolved certificates"])
        _ = try tls.makeContext()
        let plain = PortRouteTable(gateway: gateway, port: 80, listeners: [ListenerRouteTable(name: "h", hostname: nil, protocol: .http, rules: [])])
        #expect(TLSListener(table: plain, certificates: [:], unusable: &unusable) == nil)
    }

    /// Issue 16 item 9: a certificate that does not parse (one bad Secret) is skipped and reported
    /// with its listener and Secret; the port's other listener still terminates TLS and serves.
    /// (It used to throw for the whole port: no listener at all.)
    @Test func aCertificateThatDoesNotParseIsSkippedAndTheOthersServe() async throws {
        guard let certA = try SelfSigned.make(hostname: "a.example.com") else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let good = NamespacedName(namespace: "default", name: "a-tls")
        let garbage = NamespacedName(namespace: "default", name: "b-tls")
        let table = PortRouteTable(gateway: NamespacedName(namespace: "default", name: "gw"), port: 443, listeners: [
            ListenerRouteTable(name: "a", hostname: "a.example.com", protocol: .https, certificates: [good], rules: []),
            ListenerRouteTable(name: "b", hostname: "b.example.com", protocol: .https, certificates: [garbage], rules: []),
        ])
        let hello = Array("Hello world\n".utf8)
        var unusable: [UnusableCertificate] = []
        let tls = try #require(TLSListener(
            table: table, certificates: [good: TLSMaterial(certificateChain: certA.pemCertificate, privateKey: certA.pemKey), garbage: TLSMaterial(certificateChain: hello, privateKey: hello)],
            unusable: &unusable))
        #expect(tls.certificates.map(\.hostname) == ["a.example.com"])
        #expect(unusable.map { "\($0.listener) \($0.secret)" } == ["b default/b-tls"])

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let a = try await TestBackend(name: "A", group: group)
        let proxy = L7Proxy(group: group, routes: RouteTableHolder(HostRouter(a: [a.endpoint], b: [a.endpoint])))
        do {
            let port = try await proxy.open(port: 0, configuration: ListenerConfiguration(tls: tls))
            var client = TLSConfiguration.makeClientConfiguration()
            client.trustRoots = .certificates([try certA.certificate])
            let connection = try await RawClient(port: port, group: group, tls: (try NIOSSLContext(configuration: client), "a.example.com"))
            try await connection.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await connection.responses(1).first?.body == "A GET /")
            await connection.close()
        } catch {
            Issue.record("unexpected error: \(error)")
        }
        await proxy.shutdown()
        await a.close()
        try await group.shutdownGracefully()
    }

    /// The builder's NIOSSL check: what the proxy can load passes; garbage, a key that is not a key,
    /// and a key of another certificate are named.
    @Test func theNIOSSLValidatorAgreesWithWhatTheProxyLoads() throws {
        guard let certA = try SelfSigned.make(hostname: "a.example.com"), let certB = try SelfSigned.make(hostname: "b.example.com") else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let check = NIOSSLCertificateValidator.problem(with:)
        #expect(check(TLSMaterial(certificateChain: certA.pemCertificate, privateKey: certA.pemKey)) == nil)
        #expect(check(TLSMaterial(certificateChain: certA.pemCertificate + certB.pemCertificate, privateKey: certA.pemKey)) == nil, "a chain")
        #expect(check(TLSMaterial(certificateChain: Array("Hello world\n".utf8), privateKey: certA.pemKey)) == "tls.crt holds no PEM block (expected -----BEGIN CERTIFICATE-----)")
        let mismatched = check(TLSMaterial(certificateChain: certA.pemCertificate, privateKey: certB.pemKey))
        #expect(mismatched?.hasPrefix("tls.key does not belong to the first certificate of tls.crt") == true, "\(mismatched ?? "nil")")
        // Well armored, but not a key inside: only a real parse sees it.
        let fakeKey = Array("-----BEGIN PRIVATE KEY-----\nMAEA\n-----END PRIVATE KEY-----\n".utf8)
        #expect(TLSMaterial(certificateChain: certA.pemCertificate, privateKey: fakeKey).structuralProblem == nil)
        #expect(check(TLSMaterial(certificateChain: certA.pemCertificate, privateKey: fakeKey))?.hasPrefix("tls.key does not parse as a private key") == true)
        // And every material the check passes loads in the proxy.
        _ = try ListenerCertificate(hostname: nil, pemCertificateChain: certA.pemCertificate, pemPrivateKey: certA.pemKey)
    }
}
