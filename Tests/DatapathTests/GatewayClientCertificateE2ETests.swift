import FileSource
import Foundation
import GatewayCore
import KubeModels
import Testing

private let clientCertificatesReady = LabPrerequisites.readyWithAgent("GatewayClientCertificateE2ETests")

/// Scripts of the client certificate tests.
private enum ClientCertificateScripts {
    /// `mtls.py ADDRESS DIR`: each stdin line is `[tls:]PORT HOST CERT`, one GET / on a new
    /// connection (over TLS with HOST as the SNI, the server's certificate not verified, presenting
    /// DIR/CERT.crt with its key unless CERT is `-`); prints `STATUS NAME` (NAME: the body's first
    /// word, the backend's name), or `error TYPE` after 5 s or when the handshake or the request fails.
    static let client = #"""
        import http.client, socket, ssl, sys
        address, directory = sys.argv[1], sys.argv[2]
        for line in sys.stdin:
            port, host, cert = line.split()
            try:
                tls = port.startswith("tls:")
                port = int(port.removeprefix("tls:"))
                conn = http.client.HTTPConnection(address, port, timeout=5)
                if tls:
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    if cert != "-":
                        context.load_cert_chain(f"{directory}/{cert}.crt", f"{directory}/{cert}.key")
                    conn.sock = context.wrap_socket(socket.create_connection((address, port), timeout=5), server_hostname=host)
                conn.request("GET", "/", headers={"Host": host})
                r = conn.getresponse()
                out = f"{r.status} {(r.read().decode().split() or [''])[0]}"  # the backend's name
                conn.close()
            except Exception as e:
                out = f"error {type(e).__name__}"
            print(out, flush=True)
        """#
}

/// GatewayFrontendClientCertificateValidation with real packets: a client namespace speaks TLS to
/// the node's Gateway NodePorts, presenting client certificates (or none); the datapath hands the
/// connections to the agent's proxy, which asks for and verifies them as each Gateway's
/// `spec.tls.frontend` says. The Gateways are the upstream tests' (v1.6.1), each port its NodePort.
@Suite(.serialized, .enabled(if: clientCertificatesReady, "needs root, the netns lab prerequisites and the portway binary"))
struct GatewayClientCertificateE2ETests {
    static func listener(_ name: String, port: Int, hostname: String? = nil) -> String {
        KubeYAML.listener(name, port: port, protocol: "HTTPS", hostname: hostname, certificate: "tls-validity-checks-certificate")
    }

    static func gateway(_ name: String, frontend: String, listeners: [String]) -> String {
        KubeYAML.gateway(name, namespace: "lab", listeners: listeners).replacingOccurrences(
            of: "  listeners:\n", with: "  tls:\n    frontend:\n" + frontend.split(separator: "\n").map { "      \($0)\n" }.joined() + "  listeners:\n")
    }

    static func caConfigMap(_ name: String, pem: String) -> String {
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: \(name), namespace: lab}
        data: {ca.crt: \(String(reflecting: pem))}

        """
    }

    static func route(_ name: String, gateway: String, host: String? = nil, section: String? = nil, backend: String) -> String {
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: \(name), namespace: lab}
        spec:
          parentRefs: [{name: \(gateway)\(section.map { ", sectionName: \($0)" } ?? "")}]
          hostnames: [\(host ?? "")]
          rules: [{backendRefs: [{name: \(backend), port: 80}]}]

        """
    }

    /// The three upstream Gateways: `client-validation-default` (443 → NodePort 30884, default CA
    /// `client`; 8443 second-example.org → 30885, per-port CA `per-port-client`),
    /// `client-validation-insecure-fallback` (the same with AllowInsecureFallback; 30886, 30887)
    /// and `invalid-default-client-validation-config` (a default CA that does not exist; HTTPS 443
    /// → 30888, HTTP 80 → 30889). `defaultCA` is the PEM of `client-validation-default`'s default CA.
    static func yaml(_ dir: String, defaultCA: String) throws -> String {
        func read(_ name: String) throws -> String { try String(contentsOfFile: "\(dir)/\(name).crt", encoding: .utf8) }
        func frontend(_ mode: String?, default ca: String) -> String {
            let m = mode.map { "mode: \($0), " } ?? ""
            return """
                default:
                  validation: {\(m)caCertificateRefs: [{kind: ConfigMap, group: "", name: \(ca)}]}
                perPort:
                - {port: 8443, tls: {validation: {\(m)caCertificateRefs: [{kind: ConfigMap, group: "", name: tls-validity-checks-per-port-ca-certificate}]}}}
                """
        }
        let two = [listener("https", port: 443), listener("https-with-hostname", port: 8443, hostname: "second-example.org")]
        return KubeYAML.join([
            KubeYAML.gatewayClass(),
            KubeYAML.tlsSecret(
                "tls-validity-checks-certificate", namespace: "lab",
                certificate: try Data(contentsOf: URL(fileURLWithPath: dir + "/server.crt")), key: try Data(contentsOf: URL(fileURLWithPath: dir + "/server.key"))),
            caConfigMap("tls-validity-checks-ca-certificate", pem: defaultCA),
            caConfigMap("tls-validity-checks-per-port-ca-certificate", pem: try read("per-port-client")),
            backendYAML(service: "infra-backend-v1", clusterIP: "10.96.0.81", address: Lab.backendIPs["be1"]!),
            backendYAML(service: "infra-backend-v2", clusterIP: "10.96.0.82", address: Lab.backendIPs["be2"]!),

            gateway("client-validation-default", frontend: frontend(nil, default: "tls-validity-checks-ca-certificate"), listeners: two),
            KubeYAML.gatewayService("client-validation-default", namespace: "lab", clusterIP: "10.96.0.84", ports: [
                .init(name: "https", port: 443, targetPort: 443, nodePort: 30884), .init(name: "https-8443", port: 8443, targetPort: 8443, nodePort: 30885),
            ]),
            route("default-https", gateway: "client-validation-default", host: "example.org", backend: "infra-backend-v1"),
            route("default-no-hostname", gateway: "client-validation-default", section: "https-with-hostname", backend: "infra-backend-v2"),

            gateway("client-validation-insecure-fallback", frontend: frontend("AllowInsecureFallback", default: "tls-validity-checks-ca-certificate"), listeners: two),
            KubeYAML.gatewayService("client-validation-insecure-fallback", namespace: "lab", clusterIP: "10.96.0.86", ports: [
                .init(name: "https", port: 443, targetPort: 443, nodePort: 30886), .init(name: "https-8443", port: 8443, targetPort: 8443, nodePort: 30887),
            ]),
            route("fallback-https", gateway: "client-validation-insecure-fallback", host: "example.org", backend: "infra-backend-v1"),
            route("fallback-no-hostname", gateway: "client-validation-insecure-fallback", section: "https-with-hostname", backend: "infra-backend-v2"),

            gateway(
                "invalid-default-client-validation-config",
                frontend: """
                    default:
                      validation: {caCertificateRefs: [{kind: ConfigMap, group: "", name: does-not-exist}]}
                    perPort:
                    - {port: 80, tls: {validation: {caCertificateRefs: [{kind: ConfigMap, group: "", name: tls-validity-checks-per-port-ca-certificate}]}}}
                    """,
                listeners: [listener("https", port: 443), KubeYAML.listener("http", port: 80)]),
            KubeYAML.gatewayService("invalid-default-client-validation-config", namespace: "lab", clusterIP: "10.96.0.88", ports: [
                .init(name: "https", port: 443, targetPort: 443, nodePort: 30888), .init(name: "http", port: 80, targetPort: 80, nodePort: 30889),
            ]),
            route("invalid-default", gateway: "invalid-default-client-validation-config", host: "example.org", backend: "infra-backend-v1"),
        ])
    }

    @Test("Client certificates through the Gateway NodePorts: the default and per-port CAs required, the insecure fallback, an invalid default that refuses only HTTPS, a CA rotated in place")
    func clientCertificatesThroughNodePort() async throws {
        guard haveCommand("openssl") else {
            print("⚠️ clientCertificatesThroughNodePort skipped: openssl not found")
            return
        }
        try await withLab(prefix: "pwcc") { lab in
            let certs = lab.scripts + "/certs"
            try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
            try await onDedicatedThread {
                try makeCertificate(hostname: "example.org", path: certs + "/server")
                try makeCertificate(hostname: "client", path: certs + "/client")
                try makeCertificate(hostname: "per-port-client", path: certs + "/per-port-client")
            }
            let clientCA = try String(contentsOfFile: certs + "/client.crt", encoding: .utf8)
            let perPortCA = try String(contentsOfFile: certs + "/per-port-client.crt", encoding: .utf8)
            try Scripts.httpBackend.write(toFile: lab.scripts + "/httpbackend.py", atomically: true, encoding: .utf8)
            try ClientCertificateScripts.client.write(toFile: lab.scripts + "/mtls.py", atomically: true, encoding: .utf8)
            for (name, ns) in [("infra-backend-v1", "\(lab.prefix)-be1"), ("infra-backend-v2", "\(lab.prefix)-be2")] {
                let backend = try await onDedicatedThread { try lab.spawn(in: ns, [Lab.python, lab.scripts + "/httpbackend.py", name, "8081"]) }
                #expect(await backend.line() == "ready")
            }
            let dir = lab.scripts + "/yaml"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Self.yaml(certs, defaultCA: clientCA).write(toFile: dir + "/gateway.yaml", atomically: true, encoding: .utf8)
            let agent = try await startAgent(lab, dir: dir)
            defer { agent.kill() }
            let client = try await onDedicatedThread { try lab.spawn(in: lab.client, [Lab.python, lab.scripts + "/mtls.py", Lab.nodeIP, certs]) }
            defer { client.closeInput() }
            func ask(_ nodePort: Int, _ host: String, _ cert: String?, tls: Bool = true) async -> String {
                client.send("\(tls ? "tls:" : "")\(nodePort) \(host) \(cert ?? "-")")
                return await client.line() ?? "eof"
            }
            var first = ""
            await waitUntil(every: .milliseconds(100)) {
                first = await ask(30884, "example.org", "client")
                return first == "200 infra-backend-v1"
            }
            #expect(first == "200 infra-backend-v1", "the Gateway never served a valid client certificate")

            // GatewayFrontendClientCertificateValidation: each port's CA, required.
            #expect(await ask(30884, "example.org", "per-port-client").hasPrefix("error "), "443: a certificate of the per-port CA is refused")
            #expect(await ask(30884, "example.org", nil).hasPrefix("error "), "443: no certificate is refused")
            #expect(await ask(30885, "second-example.org", "per-port-client") == "200 infra-backend-v2")
            #expect(await ask(30885, "second-example.org", "client").hasPrefix("error "), "8443: a certificate of the default CA is refused")
            #expect(await ask(30885, "second-example.org", nil).hasPrefix("error "))

            // GatewayFrontendClientCertificateValidationInsecureFallback: everyone is served.
            for cert in ["client", "per-port-client", nil] {
                #expect(await ask(30886, "example.org", cert) == "200 infra-backend-v1", "fallback 443 with \(cert ?? "no certificate")")
                #expect(await ask(30887, "second-example.org", cert) == "200 infra-backend-v2", "fallback 8443 with \(cert ?? "no certificate")")
            }

            // GatewayFrontendInvalidDefaultClientCertificateValidation: HTTP served, HTTPS not.
            #expect(await ask(30889, "example.org", nil, tls: false) == "200 infra-backend-v1")
            for cert in ["client", nil] {
                #expect(await ask(30888, "example.org", cert).hasPrefix("error "), "the HTTPS listener of the invalid default is not served")
            }

            // The default CA's ConfigMap changed while the port stays open: new handshakes verify
            // against the new CA.
            try Self.yaml(certs, defaultCA: perPortCA).write(toFile: dir + "/gateway.yaml", atomically: true, encoding: .utf8)
            var rotated = ""
            await waitUntil(every: .milliseconds(100)) {
                rotated = await ask(30884, "example.org", "per-port-client")
                return rotated == "200 infra-backend-v1"
            }
            #expect(rotated == "200 infra-backend-v1", "the rotated CA never took effect")
            #expect(await ask(30884, "example.org", "client").hasPrefix("error "), "the old CA no longer admits its client")
        }
    }
}
