import Foundation
import GatewayCore
import NIOCore
import NIOPosix
import NIOSSL
import PortwayTestSupport
import Testing
@testable import L7Proxy

/// TLS to backends (BackendTLSPolicy) in the proxy, over loopback: an HTTPS test backend whose
/// self-signed certificate (DNS and URI SANs) is its own CA; the policy's CA, SNI and names decide.
@Suite struct BackendTLSTests {
    /// `cert`/`key` PEM of a self-signed certificate for abc.example.com with `subjectAltNames`.
    static func certificate(_ sans: String) throws -> (cert: [UInt8], key: [UInt8])? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { return nil }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pwpx-btls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeCertificate(hostname: "abc.example.com", path: dir + "/tls", subjectAltNames: sans)
        return (Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/tls.crt"))), Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/tls.key"))))
    }

    @Test func theCertificateIsVerifiedAgainstTheCAAndTheNamesAndPoolsKeyOnTheTLS() async throws {
        guard let backendCert = try Self.certificate("DNS:abc.example.com,URI:spiffe://abc.example.com/id"),
            let otherCert = try Self.certificate("DNS:abc.example.com")
        else {
            print("skipping: openssl is missing")
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let serverContext = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: backendCert.cert, format: .pem))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: backendCert.key, format: .pem))))
        let backend = try await TestBackend(name: "S", group: group, tls: serverContext)
        let policy = NamespacedName(namespace: "ns", name: "p")
        func endpoint(hostname: String = "abc.example.com", ca: [UInt8] = backendCert.cert, sans: [BackendSubjectAltName] = []) throws -> UpstreamEndpoint {
            let tls = try UpstreamTLS.make(BackendTLS(policy: policy, hostname: hostname, subjectAltNames: sans, caCertificateRefs: [policy], caCertificates: ca))
            return UpstreamEndpoint(host: "127.0.0.1", port: backend.port, tls: tls)
        }
        /// The status of one GET through a proxy whose a.example.com goes to `endpoint`.
        func status(_ endpoint: UpstreamEndpoint, path: String = "/") async throws -> Int? {
            let proxy = L7Proxy(group: group, routes: RouteTableHolder(HostRouter(a: [endpoint], b: [])))
            let port = try await proxy.open(port: 0)
            let client = try await RawClient(port: port, group: group)
            try await client.send("GET \(path) HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            let answer = await client.responses(1).first
            await client.close()
            await proxy.shutdown()
            return answer?.status
        }
        #expect(try await status(try endpoint()) == 200, "the CA and the hostname")
        #expect(try await status(try endpoint(ca: otherCert.cert)) == 502, "a certificate of another CA")
        #expect(try await status(try endpoint(hostname: "mismatch.example.com")) == 502, "a hostname the certificate lacks")
        #expect(try await status(try endpoint(sans: [BackendSubjectAltName(type: .uri, value: "spiffe://abc.example.com/id")])) == 200)
        #expect(try await status(try endpoint(hostname: "other.example.com", sans: [BackendSubjectAltName(type: .hostname, value: "abc.example.com")])) == 200,
                "with subjectAltNames the hostname is only the SNI")
        #expect(try await status(try endpoint(sans: [BackendSubjectAltName(type: .uri, value: "spiffe://def.example.com/id")])) == 502)
        #expect(try await status(try endpoint(sans: [BackendSubjectAltName(type: .hostname, value: "def.example.com")])) == 502)
        // The same policy content is one UpstreamTLS (pooled connections survive a rebuilt table);
        // a different one is another pool key.
        #expect(try endpoint() == endpoint())
        #expect(try endpoint() != endpoint(hostname: "x.example.com"))
        #expect(try endpoint() != UpstreamEndpoint(host: "127.0.0.1", port: backend.port), "plain and TLS to one address are different pool keys")

        // One proxy: TLS requests reuse their connection; plain HTTP to the same address never gets it.
        let tls = try endpoint()
        let plain = UpstreamEndpoint(host: "127.0.0.1", port: backend.port)
        let proxy = L7Proxy(group: group, routes: RouteTableHolder(HostRouter(a: [tls], b: [plain])))
        let port = try await proxy.open(port: 0)
        let client = try await RawClient(port: port, group: group)
        let before = backend.accepted.withLockedValue { $0 }
        try await client.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.example.com\r\n\r\nGET /3 HTTP/1.1\r\nHost: b.example.com\r\n\r\n")
        let answers = await client.responses(3)
        #expect(answers.map(\.status) == [200, 200, 502], "\(answers)")
        #expect(answers.first?.body == "S GET /1")
        #expect(backend.accepted.withLockedValue { $0 } - before >= 2, "the plain request opened a connection of its own")
        await client.close()
        await proxy.shutdown()
        await backend.close()
        try await group.shutdownGracefully()
    }

    @Test func dnsNamesMatchExactlyOrByOneLabelWildcard() {
        #expect(UpstreamTLS.dnsName("abc.example.com", matches: "abc.example.com"))
        #expect(UpstreamTLS.dnsName("*.example.com", matches: "abc.example.com"))
        #expect(!UpstreamTLS.dnsName("*.example.com", matches: "a.b.example.com"))
        #expect(!UpstreamTLS.dnsName("*.example.com", matches: "example.com"))
        #expect(!UpstreamTLS.dnsName("abc.example.com", matches: "def.example.com"))
        #expect(!UpstreamTLS.dnsName("*", matches: "abc"))
    }
}
