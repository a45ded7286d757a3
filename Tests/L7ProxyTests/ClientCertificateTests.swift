import Foundation
import GatewayCore
import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import L7Proxy

/// Client certificate validation on an HTTPS proxy port (a Gateway's `spec.tls.frontend`), through
/// the real TLS pipeline: self-signed client certificates, each its own CA.
@Suite struct ClientCertificateTests {
    /// A request on a new connection presenting `client` (nil: no certificate): the body, or nil
    /// when the connection closed without an answer (the handshake refused).
    static func get(_ port: UInt16, group: any EventLoopGroup, server: SelfSigned, client: SelfSigned?) async throws -> String? {
        let connection = try await connect(port, group: group, server: server, client: client)
        try? await connection.send("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        await connection.wait { !parseResponses($0.text).isEmpty || $0.isClosed }
        let body = parseResponses(connection.text).first?.body
        await connection.close()
        return body
    }

    static func connect(_ port: UInt16, group: any EventLoopGroup, server: SelfSigned, client: SelfSigned?) async throws -> RawClient {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([try server.certificate])
        if let client {
            configuration.certificateChain = [.certificate(try client.certificate)]
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: client.pemKey, format: .pem))
        }
        return try await RawClient(port: port, group: group, tls: (try NIOSSLContext(configuration: configuration), "a.example.com"))
    }

    /// AllowValidOnly: a client certificate of the CA is served, one of another CA and none are
    /// refused at the handshake. Changing the validation on the open port (another CA, then the
    /// insecure fallback) applies to new handshakes; a connection made before keeps its session.
    @Test func onlyClientsWithACertificateOfTheCAAreServedAndTheValidationChangesInPlace() async throws {
        guard let server = try SelfSigned.make(hostname: "a.example.com"), let clientA = try SelfSigned.make(hostname: "client-a"),
            let clientB = try SelfSigned.make(hostname: "client-b")
        else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let a = try await TestBackend(name: "A", group: group)
        let proxy = L7Proxy(group: group, routes: RouteTableHolder(HostRouter(a: [a.endpoint], b: [a.endpoint])))
        func tls(_ validation: ClientCertificateValidation?) throws -> TLSListener {
            TLSListener(certificates: [try server.listenerCertificate(hostname: "a.example.com")], clientValidation: validation)
        }
        do {
            let port = try await proxy.open(port: 0, configuration: ListenerConfiguration(tls: try tls(ClientCertificateValidation(pemTrustRoots: clientA.pemCertificate))))
            #expect(try await Self.get(port, group: group, server: server, client: clientA) == "A GET /")
            #expect(try await Self.get(port, group: group, server: server, client: clientB) == nil, "a certificate of another CA is refused")
            #expect(try await Self.get(port, group: group, server: server, client: nil) == nil, "no certificate is refused")
            let established = try await Self.connect(port, group: group, server: server, client: clientA)
            try await established.send("GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await established.responses(1).first?.body == "A GET /1")

            // Another CA, in place.
            #expect(proxy.updateCertificates(port: port, tls: try tls(ClientCertificateValidation(pemTrustRoots: clientB.pemCertificate))))
            #expect(try await Self.get(port, group: group, server: server, client: clientB) == "A GET /")
            #expect(try await Self.get(port, group: group, server: server, client: clientA) == nil)
            try await established.send("GET /2 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(await established.responses(2).last?.body == "A GET /2", "the connection made before keeps its session")
            await established.close()

            // AllowInsecureFallback: every client is served, with any certificate or none.
            #expect(proxy.updateCertificates(port: port, tls: try tls(ClientCertificateValidation(pemTrustRoots: clientB.pemCertificate, required: false))))
            for client in [clientA, clientB, nil] {
                #expect(try await Self.get(port, group: group, server: server, client: client) == "A GET /")
            }
            // And back to required.
            #expect(proxy.updateCertificates(port: port, tls: try tls(ClientCertificateValidation(pemTrustRoots: clientA.pemCertificate + clientB.pemCertificate))))
            #expect(try await Self.get(port, group: group, server: server, client: nil) == nil)
            #expect(try await Self.get(port, group: group, server: server, client: clientA) == "A GET /", "a bundle of two CAs takes both")
            #expect(try await Self.get(port, group: group, server: server, client: clientB) == "A GET /")
        } catch {
            Issue.record("unexpected error: \(error)")
        }
        await proxy.shutdown()
        await a.close()
        try await group.shutdownGracefully()
    }

    /// A Gateway table's validation becomes the port's TLS: the mode decides whether a certificate
    /// is required; CA certificates that do not load leave the whole port out (never served
    /// without the validation it asks for), each HTTPS listener reported with the ConfigMap.
    @Test func aTablesValidationBecomesThePortsAndABadCABundleLeavesThePortOut() throws {
        guard let server = try SelfSigned.make(hostname: "a.example.com"), let client = try SelfSigned.make(hostname: "client") else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let secret = NamespacedName(namespace: "default", name: "a-tls")
        let ca = NamespacedName(namespace: "default", name: "ca")
        let material = TLSMaterial(certificateChain: server.pemCertificate, privateKey: server.pemKey)
        func table(_ validation: FrontendValidation?) -> PortRouteTable {
            PortRouteTable(gateway: NamespacedName(namespace: "default", name: "gw"), port: 443, listeners: [
                ListenerRouteTable(name: "a", hostname: "a.example.com", protocol: .https, certificates: [secret], rules: []),
                ListenerRouteTable(name: "b", hostname: "b.example.com", protocol: .https, certificates: [secret], rules: []),
            ], clientValidation: validation)
        }
        var unusable: [UnusableCertificate] = []
        let required = try #require(TLSListener(
            table: table(FrontendValidation(mode: .allowValidOnly, caCertificateRefs: [ca], caCertificates: client.pemCertificate)),
            certificates: [secret: material], unusable: &unusable))
        #expect(required.clientValidation == ClientCertificateValidation(trustRoots: [try client.certificate], required: true))
        let fallback = try #require(TLSListener(
            table: table(FrontendValidation(mode: .allowInsecureFallback, caCertificateRefs: [ca], caCertificates: client.pemCertificate)),
            certificates: [secret: material], unusable: &unusable))
        #expect(fallback.clientValidation?.required == false)
        #expect(try #require(TLSListener(table: table(nil), certificates: [secret: material], unusable: &unusable)).clientValidation == nil)
        #expect(unusable.isEmpty)

        let broken = FrontendValidation(mode: .allowValidOnly, caCertificateRefs: [ca], caCertificates: Array("-----BEGIN CERTIFICATE-----\nMAEA\n-----END CERTIFICATE-----\n".utf8))
        #expect(TLSListener(table: table(broken), certificates: [secret: material], unusable: &unusable) == nil)
        #expect(unusable.map { "\($0.listener) \($0.kind) \($0.secret)" } == ["a ConfigMap default/ca", "b ConfigMap default/ca"])
        #expect(unusable.first?.description.hasPrefix("listener a (a.example.com): ConfigMap default/ca: client CA certificates (ca.crt) failed to load") == true)
    }

    /// The builder's CA check with NIOSSL: real certificates pass, garbage and a well-armored
    /// block that is no certificate are named.
    @Test func theNIOSSLCAValidatorAgreesWithWhatTheProxyLoads() throws {
        guard let one = try SelfSigned.make(hostname: "one"), let two = try SelfSigned.make(hostname: "two") else {
            print("skipping: /usr/bin/openssl is missing (install openssl)")
            return
        }
        let check = NIOSSLCACertificateValidator.problem(with:)
        #expect(check(one.pemCertificate) == nil)
        #expect(check(one.pemCertificate + two.pemCertificate) == nil)
        #expect(check(Array("Hello world\n".utf8)) == "holds no PEM block (expected -----BEGIN CERTIFICATE-----)")
        #expect(check(one.pemKey)?.hasPrefix("holds no CERTIFICATE block") == true)
        let fake = Array("-----BEGIN CERTIFICATE-----\nMAEA\n-----END CERTIFICATE-----\n".utf8)
        #expect(FrontendValidation.structuralProblem(fake) == nil)
        #expect(check(fake)?.hasPrefix("does not parse as X.509 certificates") == true)
        _ = try ClientCertificateValidation(pemTrustRoots: one.pemCertificate + two.pemCertificate)
    }
}
