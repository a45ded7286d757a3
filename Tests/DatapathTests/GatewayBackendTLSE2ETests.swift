import FileSource
import Foundation
import GatewayCore
import KubeModels
import Testing

private let backendTLSReady = LabPrerequisites.readyWithAgent("GatewayBackendTLSE2ETests")

/// Scripts of the BackendTLSPolicy tests.
private enum BackendTLSScripts {
    /// `httpsbackend.py NAME PORT CERT KEY`: an HTTPS server answering every GET with
    /// `NAME sni=SNI` (the server name the client sent, `-` without one); prints `ready`.
    static let backend = #"""
        import http.server, ssl, sys
        name, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                body = f"{name} sni={getattr(self.connection, 'sni', None) or '-'}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        def remember(sock, server_name, ctx):
            sock.sni = server_name
        context.sni_callback = remember
        server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
        # The handshake runs in the connection's thread (a failed one does not stop the server).
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        print("ready", flush=True)
        server.serve_forever()
        """#

    /// `client.py ADDRESS PORT`: each stdin line is `HOST PATH [tls:PORT]`, one GET on a new
    /// connection (to PORT over TLS with HOST as the SNI, the certificate not verified, when given);
    /// prints `STATUS BODY`, or `error TYPE` after 5 s.
    static let client = #"""
        import http.client, socket, ssl, sys
        address, default_port = sys.argv[1], int(sys.argv[2])
        for line in sys.stdin:
            host, path, *tls = line.split()
            try:
                port = int(tls[0].removeprefix("tls:")) if tls else default_port
                conn = http.client.HTTPConnection(address, port, timeout=5)
                if tls:
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    conn.sock = context.wrap_socket(socket.create_connection((address, port), timeout=5), server_hostname=host)
                conn.request("GET", path, headers={"Host": host})
                r = conn.getresponse()
                out = f"{r.status} {r.read().decode().strip()}"
                conn.close()
            except Exception as e:
                out = f"error {type(e).__name__}"
            print(out, flush=True)
        """#
}

/// BackendTLSPolicy (and BackendTLSPolicySANValidation) with real packets: a client namespace
/// sends HTTP to the node's Gateway NodePort; the agent's proxy connects to an HTTPS backend as the
/// policy of each backend Service says (CA from a ConfigMap, SNI = hostname, the certificate's
/// names checked). The cases are the upstream tests' (v1.6.1, backendtlspolicy*.yaml).
@Suite(.serialized, .enabled(if: backendTLSReady, "needs root, the netns lab prerequisites and the portway binary"))
struct GatewayBackendTLSE2ETests {
    /// One route rule per case: path → the Service (all of them the one TLS backend, be1:8443).
    static let cases: [(path: String, service: String)] = [
        ("/backendtlspolicy", "btls-ok"), ("/backendtlspolicy-cert-mismatch", "btls-cert-mismatch"),
        ("/backendtlspolicy-host-mismatch", "btls-host-mismatch"), ("/backendtlspolicy-san-dns", "btls-san-dns"),
        ("/backendtlspolicy-san-dns-mismatch", "btls-san-dns-mismatch"), ("/backendtlspolicy-san-uri", "btls-san-uri"),
        ("/backendtlspolicy-san-uri-mismatch", "btls-san-uri-mismatch"), ("/backendtlspolicy-multiple-sans", "btls-multiple-sans"),
        ("/backendtlspolicy-san-instead-of-hostname", "btls-san-instead-of-hostname"),
        ("/backendtlspolicy-nonexistent-ca-certificate-ref", "btls-nonexistent-ca"),
    ]

    static func policy(_ service: String, ca: String = "tls-checks-ca-certificate", hostname: String = "abc.example.com", sans: String? = nil) -> String {
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: BackendTLSPolicy
        metadata: {name: \(service), namespace: lab}
        spec:
          targetRefs: [{group: "", kind: Service, name: \(service)}]
          validation:
            caCertificateRefs: [{group: "", kind: ConfigMap, name: \(ca)}]
            hostname: \(hostname)
        \(sans.map { "    subjectAltNames: \($0)\n" } ?? "")
        """
    }

    static func caConfigMap(_ name: String, pem: String) -> String {
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \(name), namespace: lab}\ndata: {ca.crt: \(String(reflecting: pem))}\n"
    }

    /// The Gateway `same-namespace` (HTTP 80 → NodePort 30860), one route for abc.example.com
    /// with a rule per case and `/plain` to a plain HTTP backend, the Services and their policies.
    static func yaml(ca: String, otherCA: String, listenerCertificate: Data, listenerKey: Data) -> String {
        var objects = [
            // Re-encrypt: an HTTPS listener (443 → NodePort 30861) whose route goes to the TLS backend.
            KubeYAML.tlsSecret("https-listener-certificate", namespace: "lab", certificate: listenerCertificate, key: listenerKey),
            KubeYAML.gateway(
                "same-namespace-with-https-listener", namespace: "lab",
                listeners: [KubeYAML.listener("https", port: 443, protocol: "HTTPS", hostname: "https-listener.org", certificate: "https-listener-certificate")]),
            KubeYAML.gatewayService(
                "same-namespace-with-https-listener", namespace: "lab", clusterIP: "10.96.1.59", ports: [.init(name: "https", port: 443, targetPort: 443, nodePort: 30861)]),
            KubeYAML.httpRoute(
                "backendtlspolicy-reencrypt", namespace: "lab", parent: "same-namespace-with-https-listener", hostnames: ["https-listener.org"],
                rules: [KubeYAML.rule("btls-ok", matches: "[{path: {type: Exact, value: /backendtlspolicy}}]")]),
            KubeYAML.gatewayClass(),
            KubeYAML.gateway("same-namespace", namespace: "lab", listeners: [KubeYAML.listener("http", port: 80)]),
            KubeYAML.gatewayService("same-namespace", namespace: "lab", clusterIP: "10.96.1.60", ports: [.init(port: 80, targetPort: 80, nodePort: 30860)]),
            KubeYAML.httpRoute(
                "backendtlspolicy", namespace: "lab", parent: "same-namespace", hostnames: ["abc.example.com"],
                rules: cases.map { KubeYAML.rule($0.service, matches: "[{path: {type: Exact, value: \($0.path)}}]") }
                    + [KubeYAML.rule("plain", matches: "[{path: {type: Exact, value: /plain}}]")]),
            caConfigMap("tls-checks-ca-certificate", pem: ca),
            caConfigMap("mismatch-ca-certificate", pem: otherCA),
            backendYAML(service: "plain", clusterIP: "10.96.1.99", address: Lab.backendIPs["be2"]!),
        ]
        for (i, item) in cases.enumerated() {
            objects.append(KubeYAML.backend(
                item.service, namespace: "lab", clusterIP: "10.96.1.\(61 + i)", targetPort: 8443, addresses: [Lab.backendIPs["be1"]!], nodeName: "lab-node"))
        }
        objects += [
            policy("btls-ok"),
            policy("btls-cert-mismatch", ca: "mismatch-ca-certificate"),
            policy("btls-host-mismatch", hostname: "mismatch.example.com"),
            policy("btls-san-dns", sans: "[{type: Hostname, hostname: abc.example.com}]"),
            policy("btls-san-dns-mismatch", sans: "[{type: Hostname, hostname: dce.example.com}]"),
            policy("btls-san-uri", sans: "[{type: URI, uri: \"spiffe://abc.example.com/test-identity\"}]"),
            policy("btls-san-uri-mismatch", sans: "[{type: URI, uri: \"spiffe://def.example.com/test-identity\"}]"),
            policy("btls-multiple-sans", sans: "[{type: URI, uri: \"spiffe://def.example.com/test-identity\"}, {type: Hostname, hostname: abc.example.com}]"),
            // The hostname is only the SNI when subjectAltNames is set: a name the certificate lacks is fine.
            policy("btls-san-instead-of-hostname", hostname: "other.example.com", sans: "[{type: Hostname, hostname: abc.example.com}]"),
            policy("btls-nonexistent-ca", ca: "nonexistent-ca-certificate"),
        ]
        return KubeYAML.join(objects)
    }

    @Test("BackendTLSPolicy through the Gateway NodePort: the right CA and hostname 200 (SNI sent), a wrong CA or hostname 502, SANs by DNS name and URI, a missing CA 500, re-encrypt from an HTTPS listener")
    func backendTLSThroughNodePort() async throws {
        guard haveCommand("openssl") else {
            print("⚠️ backendTLSThroughNodePort skipped: openssl not found")
            return
        }
        try await withLab(prefix: "pwbt") { lab in
            let certs = lab.scripts + "/certs"
            try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
            try await onDedicatedThread {
                // Self-signed: each is its own CA (what the ConfigMaps hold).
                try makeCertificate(
                    hostname: "abc.example.com", path: certs + "/backend", subjectAltNames: "DNS:abc.example.com,URI:spiffe://abc.example.com/test-identity")
                try makeCertificate(hostname: "other-ca", path: certs + "/other")
                try makeCertificate(hostname: "https-listener.org", path: certs + "/listener")
            }
            let listenerCertificate = try Data(contentsOf: URL(fileURLWithPath: certs + "/listener.crt"))
            let listenerKey = try Data(contentsOf: URL(fileURLWithPath: certs + "/listener.key"))
            let ca = try String(contentsOfFile: certs + "/backend.crt", encoding: .utf8)
            let otherCA = try String(contentsOfFile: certs + "/other.crt", encoding: .utf8)
            try BackendTLSScripts.backend.write(toFile: lab.scripts + "/httpsbackend.py", atomically: true, encoding: .utf8)
            try BackendTLSScripts.client.write(toFile: lab.scripts + "/client.py", atomically: true, encoding: .utf8)
            try Scripts.httpBackend.write(toFile: lab.scripts + "/httpbackend.py", atomically: true, encoding: .utf8)
            let tlsBackend = try await onDedicatedThread {
                try lab.spawn(in: "\(lab.prefix)-be1", [Lab.python, lab.scripts + "/httpsbackend.py", "tls-backend", "8443", certs + "/backend.crt", certs + "/backend.key"])
            }
            #expect(await tlsBackend.line() == "ready")
            let plain = try await onDedicatedThread { try lab.spawn(in: "\(lab.prefix)-be2", [Lab.python, lab.scripts + "/httpbackend.py", "plain", "8081"]) }
            #expect(await plain.line() == "ready")
            let dir = lab.scripts + "/yaml"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Self.yaml(ca: ca, otherCA: otherCA, listenerCertificate: listenerCertificate, listenerKey: listenerKey).write(toFile: dir + "/gateway.yaml", atomically: true, encoding: .utf8)
            let log = lab.scripts + "/agent.log"
            let agent = try await startAgent(lab, dir: dir, log: log)
            defer { agent.kill() }
            let client = try await onDedicatedThread { try lab.spawn(in: lab.client, [Lab.python, lab.scripts + "/client.py", Lab.nodeIP, "30860"]) }
            defer { client.closeInput() }
            func ask(_ path: String) async -> String {
                client.send("abc.example.com \(path)")
                return await client.line() ?? "eof"
            }
            var first = ""
            await waitUntil(every: .milliseconds(100)) {
                first = await ask("/plain")
                return first.hasPrefix("200 plain")
            }
            #expect(first.hasPrefix("200 plain"), "the Gateway never served its plain backend: \(first)")

            // BackendTLSPolicy: the CA from the ConfigMap and the hostname as SNI and identity.
            #expect(await ask("/backendtlspolicy") == "200 tls-backend sni=abc.example.com")
            #expect(await ask("/backendtlspolicy-cert-mismatch").hasPrefix("502 "), "a backend certificate of another CA is refused")
            #expect(await ask("/backendtlspolicy-host-mismatch").hasPrefix("502 "), "a certificate without the policy's hostname is refused")
            // BackendTLSPolicyInvalidCACertificateRef: never plain HTTP instead.
            #expect(await ask("/backendtlspolicy-nonexistent-ca-certificate-ref").hasPrefix("500 "))
            // BackendTLSPolicySANValidation.
            #expect(await ask("/backendtlspolicy-san-dns") == "200 tls-backend sni=abc.example.com")
            #expect(await ask("/backendtlspolicy-san-dns-mismatch").hasPrefix("502 "))
            #expect(await ask("/backendtlspolicy-san-uri") == "200 tls-backend sni=abc.example.com")
            #expect(await ask("/backendtlspolicy-san-uri-mismatch").hasPrefix("502 "))
            #expect(await ask("/backendtlspolicy-multiple-sans") == "200 tls-backend sni=abc.example.com")
            #expect(await ask("/backendtlspolicy-san-instead-of-hostname") == "200 tls-backend sni=other.example.com")
            // Re-encrypt: TLS from the client to the HTTPS listener, TLS again to the backend.
            client.send("https-listener.org /backendtlspolicy tls:30861")
            #expect(await client.line() == "200 tls-backend sni=abc.example.com", "HTTPS listener to a TLS backend")
            // Pooled connections are reused with their TLS, the plain backend is still plain.
            #expect(await ask("/backendtlspolicy") == "200 tls-backend sni=abc.example.com")
            #expect(await ask("/plain").hasPrefix("200 plain"))

            let logged = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(logged.contains("backend TLS (BackendTLSPolicy lab/btls-san-uri-mismatch, SNI abc.example.com)"), "the failure is logged with its policy")
            #expect(logged.contains("include none of URI:spiffe://def.example.com/test-identity"), "the log says which names were wanted")

            // The wrong CA's ConfigMap fixed in place: the same backend verifies now.
            try Self.yaml(ca: ca, otherCA: ca, listenerCertificate: listenerCertificate, listenerKey: listenerKey).write(toFile: dir + "/gateway.yaml", atomically: true, encoding: .utf8)
            var fixed = ""
            await waitUntil(every: .milliseconds(100)) {
                fixed = await ask("/backendtlspolicy-cert-mismatch")
                return fixed.hasPrefix("200")
            }
            #expect(fixed == "200 tls-backend sni=abc.example.com", "the ConfigMap's new CA never took effect")
        }
    }
}
