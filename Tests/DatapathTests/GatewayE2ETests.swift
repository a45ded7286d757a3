import CPortwayBPF
import Datapath
import Foundation
import Testing

private let gatewayReady: Bool = {
    guard LabPrerequisites.ready else { return false }
    guard portwayBinary != nil else {
        print("⚠️ GatewayE2ETests skipped: the portway binary was not found next to the tests (set PORTWAY_BIN)")
        return false
    }
    guard haveCommand("nsenter") else {
        print("⚠️ GatewayE2ETests skipped: nsenter (util-linux) not found")
        return false
    }
    return true
}()

/// Python helpers for HTTP through the Gateway (written into the lab's script directory).
private enum HTTPScripts {
    /// `httpbackend.py NAME PORT`: answers every GET with `NAME xff=<X-Forwarded-For>` (keep-alive).
    static let backend = #"""
        import http.server, sys
        name, port = sys.argv[1], int(sys.argv[2])
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                body = f"{name} xff={self.headers.get('X-Forwarded-For', '-')}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
        print("ready", flush=True)
        server.serve_forever()
        """#

    /// `httpclient.py HOST PORT`: one keep-alive connection; each stdin line is a Host header, and
    /// `STATUS BODY` (or `error ...`) is printed per request. `new` as a line reconnects.
    static let client = #"""
        import http.client, sys
        host, port = sys.argv[1], int(sys.argv[2])
        conn = http.client.HTTPConnection(host, port, timeout=3)
        for line in sys.stdin:
            name = line.strip()
            if name == "new":
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=3)
                print("reconnected", flush=True)
                continue
            try:
                conn.request("GET", "/", headers={"Host": name})
                r = conn.getresponse()
                print(r.status, r.read().decode().strip(), flush=True)
            except Exception as e:
                print("error", type(e).__name__, e, flush=True)
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=3)
        """#
}

private func gatewayYAML(aBackend: String) -> String {
    var text = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: portway}
        spec: {controllerName: portway.io/gateway-controller}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: web, namespace: lab}
        spec:
          gatewayClassName: portway
          listeners:
          - {name: http, port: 80, protocol: HTTP}
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: portway-gw-web
          namespace: lab
          labels: {gateway.networking.k8s.io/gateway-name: web}
        spec:
          type: NodePort
          clusterIP: 10.96.0.80
          ports:
          - {name: http, port: 80, targetPort: 80, nodePort: 30880, protocol: TCP}

        """
    for (route, host, service) in [("route-a", "a.example.com", aBackend), ("route-b", "b.example.com", "b")] {
        text += """
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: \(route), namespace: lab}
            spec:
              parentRefs: [{name: web}]
              hostnames: [\(host)]
              rules:
              - backendRefs: [{name: \(service), port: 80}]

            """
    }
    return text
}

private func backendYAML(service: String, clusterIP: String, address: String) -> String {
    """
    apiVersion: v1
    kind: Service
    metadata: {name: \(service), namespace: lab}
    spec:
      clusterIP: \(clusterIP)
      ports: [{name: http, port: 80, targetPort: 8081, protocol: TCP}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: \(service)-1
      namespace: lab
      labels: {kubernetes.io/service-name: \(service)}
    addressType: IPv4
    ports: [{name: http, port: 8081, protocol: TCP}]
    endpoints:
    - {addresses: ["\(address)"], conditions: {ready: true}, nodeName: lab-node}

    """
}

/// The Gateway half end to end: `portway agent --from-dir` with a Portway Gateway, its NodePort
/// Service and two Host-routed HTTPRoutes; a client outside the node sends to nodeIP:NodePort, the
/// datapath hands the connection to the agent's transparent L7 proxy, which routes by Host.
@Suite(.serialized, .enabled(if: gatewayReady, "needs root, the netns lab prerequisites and the portway binary"))
struct GatewayE2ETests {
    @Test("Host routing through the Gateway NodePort: a→A, b→B, unknown→404, X-Forwarded-For is the client; an HTTPRoute edit moves a keep-alive connection")
    func hostRoutingThroughNodePort() async throws {
        try await withLab(prefix: "pwl7") { lab in
            try HTTPScripts.backend.write(toFile: lab.scripts + "/httpbackend.py", atomically: true, encoding: .utf8)
            try HTTPScripts.client.write(toFile: lab.scripts + "/httpclient.py", atomically: true, encoding: .utf8)
            for (name, ns) in [("A", "\(lab.prefix)-be1"), ("B", "\(lab.prefix)-be2")] {
                let backend = try await onDedicatedThread { try lab.spawn(in: ns, [Lab.python, lab.scripts + "/httpbackend.py", name, "8081"]) }
                #expect(await backend.line() == "ready")
            }
            let dir = lab.scripts + "/yaml"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try backendYAML(service: "a", clusterIP: "10.96.0.81", address: Lab.backendIPs["be1"]!).write(
                toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
            try backendYAML(service: "b", clusterIP: "10.96.0.82", address: Lab.backendIPs["be2"]!).write(
                toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
            try gatewayYAML(aBackend: "a").write(toFile: dir + "/gateway.yaml", atomically: true, encoding: .utf8)

            let agent = try await onDedicatedThread {
                try lab.spawn(in: nil, [
                    "nsenter", "--net=/var/run/netns/\(lab.node)", portwayBinary!, "agent", "--from-dir", dir,
                    "--device", Lab.device, "--pod-device", Lab.podDevice, "--node-name", "lab-node", "--node-ip", Lab.nodeIP,
                    "--bpffs", lab.bpffs, "--bpf-object", try ObjectLocator.locate(explicit: nil, currentDirectory: Lab.packageRoot),
                    "--service-map-size", "1024", "--backend-map-size", "1024", "--revnat-map-size", "1024",
                    "--affinity-map-size", "1024", "--ct-map-size", "4096", "--snat-map-size", "4096", "--proxy-threads", "1",
                ])
            }
            defer { agent.kill() }

            let client = try await onDedicatedThread {
                try lab.spawn(in: lab.client, [Lab.python, lab.scripts + "/httpclient.py", Lab.nodeIP, "30880"])
            }
            func ask(_ host: String) async -> String {
                client.send(host)
                return await client.line() ?? "eof"
            }
            // Until the agent has programmed the redirect and opened the proxy port.
            var first = ""
            for _ in 0..<100 {
                first = await ask("a.example.com")
                if first.hasPrefix("200 ") { break }
                client.send("new")
                _ = await client.line()
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(first == "200 A xff=\(Lab.clientIP)")
            #expect(await ask("b.example.com") == "200 B xff=\(Lab.clientIP)")
            #expect(await ask("c.example.com").hasPrefix("404"))
            #expect(await ask("a.example.com") == "200 A xff=\(Lab.clientIP)")

            // The HTTPRoute for a.example.com now points at B; the same keep-alive connection follows.
            try gatewayYAML(aBackend: "b").write(toFile: dir + "/gateway.yaml", atomically: true, encoding: .utf8)
            var moved = ""
            for _ in 0..<60 {
                moved = await ask("a.example.com")
                if moved != "200 A xff=\(Lab.clientIP)" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(moved == "200 B xff=\(Lab.clientIP)", "no request may fail while the route moves")
            client.closeInput()
        }
    }
}
