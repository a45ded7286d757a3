import FileSource
import Foundation
import GatewayCore
import KubeModels
import Testing

private let conformanceReady = LabPrerequisites.readyWithAgent("GatewayConformanceE2ETests")

/// The conformance suite's echo backend and client, as far as these tests need them.
private enum ConformanceScripts {
    /// `echo.py NAME PORT`: answers every request with a JSON body `{name, method, path, host,
    /// headers}` (header names lowercased, the values of a repeated header joined with commas, as
    /// the conformance suite compares them) and the response headers `X-Header-Set: original` and
    /// `X-Header-Remove: present` (for response header modifiers to act on); `?delay=1s` (or
    /// `500ms`) waits that long first, as the conformance backend does.
    static let backend = #"""
        import http.server, json, sys, time, urllib.parse
        name, port = sys.argv[1], int(sys.argv[2])
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def answer(self):
                length = int(self.headers.get("Content-Length", "0") or 0)
                if length:
                    self.rfile.read(length)
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                delay = query.get("delay", ["0s"])[0]
                seconds = float(delay[:-2]) / 1000 if delay.endswith("ms") else float(delay.rstrip("s"))
                time.sleep(seconds)
                body = json.dumps({"name": name, "method": self.command, "path": self.path, "host": self.headers.get("Host", ""),
                                   "headers": {k.lower(): ",".join(self.headers.get_all(k)) for k in self.headers.keys()}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Header-Set", "original")
                self.send_header("X-Header-Remove", "present")
                self.end_headers()
                self.wfile.write(body)
            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = answer
            def do_HEAD(self):
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
        print("ready", flush=True)
        server.serve_forever()
        """#

    /// `request.py ADDRESS`: each stdin line is `PORT METHOD HOST PATH [NAME:VALUE…]`; one request on
    /// a new connection, no redirect followed; prints one JSON line `{status, location, headers,
    /// body}` (response header names lowercased), or `{"error": …}` after 5 s. A PORT written
    /// `tls:PORT` speaks TLS with HOST as the SNI, `tls:PORT:NAME` with NAME as the SNI (the
    /// certificate is not verified).
    static let client = #"""
        import http.client, json, socket, ssl, sys
        address = sys.argv[1]
        for line in sys.stdin:
            port, method, host, path, *extra = line.split()
            headers = {"Host": host}
            headers.update(dict(h.split(":", 1) for h in extra))
            try:
                tls = port.startswith("tls:")
                port, _, sni = port.removeprefix("tls:").partition(":")
                port = int(port)
                conn = http.client.HTTPConnection(address, port, timeout=5)
                if tls:
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    conn.sock = context.wrap_socket(socket.create_connection((address, port), timeout=5), server_hostname=sni or host)
                conn.request(method, path, headers=headers)
                r = conn.getresponse()
                body = r.read().decode()
                out = {"status": r.status, "location": r.getheader("Location") or "-",
                       "headers": {k.lower(): v for k, v in r.getheaders()}, "body": body}
                conn.close()
            except Exception as e:
                out = {"error": f"{type(e).__name__} {e}"}
            print(json.dumps(out), flush=True)
        """#

    /// `wsecho.py NAME PORT`: a WebSocket echo server (RFC 6455, the standard library only): an
    /// upgrade request gets 101 with its `Sec-WebSocket-Accept`, then every data frame comes back
    /// with its opcode (ping as pong, close as close, then the connection ends); any other
    /// request gets 200 with `{name, websocket: false, path}` and the connection closed.
    static let webSocketBackend = #"""
        import base64, hashlib, json, socket, socketserver, struct, sys
        name, port = sys.argv[1], int(sys.argv[2])
        GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        def exact(f, n):
            data = f.read(n)
            if len(data) < n:
                raise EOFError
            return data
        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                lines = []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    if line in (b"\r\n", b"\n"):
                        break
                    lines.append(line.decode("latin-1").rstrip("\r\n"))
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                if headers.get("upgrade", "").lower() != "websocket":
                    body = json.dumps({"name": name, "websocket": False, "path": lines[0].split()[1]}).encode()
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
                    return
                accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
                self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
                self.wfile.flush()
                try:
                    while True:
                        b0, b1 = exact(self.rfile, 2)
                        opcode, length = b0 & 0x0F, b1 & 0x7F
                        if length == 126:
                            length = struct.unpack("!H", exact(self.rfile, 2))[0]
                        elif length == 127:
                            length = struct.unpack("!Q", exact(self.rfile, 8))[0]
                        mask = exact(self.rfile, 4) if b1 & 0x80 else b"\0\0\0\0"
                        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(exact(self.rfile, length)))
                        reply = 0xA if opcode == 0x9 else opcode
                        header = bytes([0x80 | reply]) + (bytes([len(payload)]) if len(payload) < 126 else b"\x7e" + struct.pack("!H", len(payload)))
                        self.wfile.write(header + payload)
                        self.wfile.flush()
                        if opcode == 0x8:
                            return
                except (EOFError, ConnectionError):
                    return
        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
        server = Server(("0.0.0.0", port), Handler)
        print("ready", flush=True)
        server.serve_forever()
        """#

    /// `wsclient.py ADDRESS`: each stdin line is `PORT HOST PATH ORIGIN`; a WebSocket handshake on a
    /// new connection, then, after a 101, the upstream test's text frame ("Websocket Support!") and
    /// binary frame (1…7), a 10 KiB binary frame and a close, each answer read back. Prints one JSON
    /// line `{status, acceptOK, text: "OPCODE TEXT", binary: "OPCODE B,B,…", large, close}`, or
    /// `{"error": …}` after 5 s.
    static let webSocketClient = #"""
        import base64, hashlib, json, os, socket, struct, sys
        address = sys.argv[1]
        GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        def exact(s, n):
            data = b""
            while len(data) < n:
                chunk = s.recv(n - len(data))
                if not chunk:
                    raise EOFError("connection closed")
                data += chunk
            return data
        def send(s, opcode, payload):
            mask = os.urandom(4)
            n = len(payload)
            header = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
            s.sendall(header + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
        def receive(s):
            b0, b1 = exact(s, 2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack("!H", exact(s, 2))[0]
            elif length == 127:
                length = struct.unpack("!Q", exact(s, 8))[0]
            if b1 & 0x80:
                raise ValueError("a masked frame from the server")
            return b0 & 0x0F, exact(s, length)
        for line in sys.stdin:
            port, host, path, origin = line.split()
            try:
                s = socket.create_connection((address, int(port)), timeout=5)
                key = base64.b64encode(os.urandom(16)).decode()
                s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n" % (path, host, key, origin)).encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    head += exact(s, 1)
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
                expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
                out = {"status": status, "acceptOK": headers.get("sec-websocket-accept") == expected}
                if status == 101:
                    send(s, 0x1, "Websocket Support!".encode())
                    opcode, data = receive(s)
                    out["text"] = "%d %s" % (opcode, data.decode())
                    send(s, 0x2, bytes([1, 2, 3, 4, 5, 6, 7]))
                    opcode, data = receive(s)
                    out["binary"] = "%d %s" % (opcode, ",".join(map(str, data)))
                    big = bytes(range(256)) * 40
                    send(s, 0x2, big)
                    opcode, data = receive(s)
                    out["large"] = opcode == 2 and data == big
                    send(s, 0x8, struct.pack("!H", 1000))
                    out["close"] = receive(s)[0]
                s.close()
            except Exception as e:
                out = {"error": f"{type(e).__name__} {e}"}
            print(json.dumps(out), flush=True)
        """#
}

/// One answer of `request.py`.
private struct Answer {
    var status: Int
    var location: String
    var headers: [String: String]
    /// The echo backend's JSON body, when it answered.
    var echo: [String: Any]
    var error: String?

    init(_ line: String) {
        let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? ["error": "not JSON: \(line)"]
        status = object["status"] as? Int ?? 0
        location = object["location"] as? String ?? "-"
        headers = object["headers"] as? [String: String] ?? [:]
        echo = (object["body"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        error = object["error"] as? String
    }

    /// `STATUS LOCATION`, or the error.
    var summary: String { error.map { "error \($0)" } ?? "\(status) \(location)" }
    /// The backend that answered and the path it was asked for.
    var backend: String { "\(echo["name"] as? String ?? "-") \(echo["path"] as? String ?? "-")" }
    /// A request header as the backend got it.
    func sent(_ name: String) -> String? { (echo["headers"] as? [String: String])?[name] }
}

/// The Gateway `web` in namespace `lab` with HTTP listeners on 80 (NodePort 30880) and 8080
/// (NodePort 30881), the backends infra-backend-v1/-v2/-v3, and `routes`.
private func conformanceGatewayYAML(_ routes: [String]) -> String {
    KubeYAML.join([
        KubeYAML.gatewayClass(),
        KubeYAML.gateway("web", namespace: "lab", listeners: [
            KubeYAML.listener("http", port: 80), KubeYAML.listener("http-8080", port: 8080),
        ]),
        KubeYAML.gatewayService("web", namespace: "lab", clusterIP: "10.96.0.80", ports: [
            .init(name: "http", port: 80, targetPort: 80, nodePort: 30880),
            .init(name: "http-8080", port: 8080, targetPort: 8080, nodePort: 30881),
        ]),
        backendYAML(service: "infra-backend-v1", clusterIP: "10.96.0.81", address: Lab.backendIPs["be1"]!),
        backendYAML(service: "infra-backend-v2", clusterIP: "10.96.0.82", address: Lab.backendIPs["be2"]!),
        KubeYAML.backend("infra-backend-v3", namespace: "lab", clusterIP: "10.96.0.83", targetPort: 8082, addresses: [Lab.backendIPs["be1"]!], nodeName: "lab-node"),
    ] + routes)
}

/// An HTTPRoute `name` on both listeners of `web` for `host`, with `rules` (YAML list items).
private func route(_ name: String, host: String, rules: String) -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: \(name), namespace: lab}
    spec:
      parentRefs: [{name: web}]
      hostnames: [\(host)]
      rules:
    \(rules)

    """
}

/// A rule matching PathPrefix `path` that redirects to example.org with `settings` (flow mapping entries).
private func redirectRule(_ path: String, _ settings: String = "") -> String {
    "  - matches: [{path: {type: PathPrefix, value: \(path)}}]\n"
        + "    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org\(settings.isEmpty ? "" : ", " + settings)}}]"
}

/// A rule matching PathPrefix `path` forwarding to infra-backend-v1 with `timeouts` (a flow mapping).
private func timeoutRule(_ path: String, _ timeouts: String) -> String {
    "  - matches: [{path: {type: PathPrefix, value: \(path)}}]\n"
        + "    backendRefs: [{name: infra-backend-v1, port: 80}]\n"
        + "    timeouts: \(timeouts)"
}

/// An HTTPRoute in `lab` (YAML) attached to each of `parents`, for `hosts` (none: every host), with
/// `rules` (YAML list items indented by two spaces).
private func httpRoute(_ name: String, parents: [String] = ["web"], hosts: [String] = [], rules: String) -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: \(name), namespace: lab}
    spec:
      parentRefs: [\(parents.map { "{name: \($0)}" }.joined(separator: ", "))]
    \(hosts.isEmpty ? "" : "  hostnames: [\(hosts.joined(separator: ", "))]\n")  rules:
    \(rules)

    """
}

/// An HTTPRoute of HTTPRouteHostnameIntersection: on Gateway httproute-hostname-intersection for
/// `hosts`, PathPrefix `path` to `backend`.
private func intersectionRoute(_ name: String, hosts: [String], path: String, backend: String) -> String {
    httpRoute(name, parents: ["httproute-hostname-intersection"], hosts: hosts, rules: """
          - matches: [{path: {type: PathPrefix, value: \(path)}}]
            backendRefs: [{name: \(backend), port: 80}]
        """)
}

/// The upstream suite's backend namespaces (labelled `gateway-conformance: backend`) with
/// web-backend, app-backend-v1 and app-backend-v2 (on be2, see `start(otherBackends:)`).
private let otherBackendsYAML = KubeYAML.join([
    KubeYAML.namespace("gateway-conformance-web-backend", labels: ["gateway-conformance": "backend"]),
    KubeYAML.namespace("gateway-conformance-app-backend", labels: ["gateway-conformance": "backend"]),
    KubeYAML.backend("web-backend", namespace: "gateway-conformance-web-backend", clusterIP: "10.96.0.86", targetPort: 8083, addresses: [Lab.backendIPs["be2"]!], nodeName: "lab-node"),
    KubeYAML.backend("app-backend-v1", namespace: "gateway-conformance-app-backend", clusterIP: "10.96.0.87", targetPort: 8084, addresses: [Lab.backendIPs["be2"]!], nodeName: "lab-node"),
    KubeYAML.backend("app-backend-v2", namespace: "gateway-conformance-app-backend", clusterIP: "10.96.0.88", targetPort: 8085, addresses: [Lab.backendIPs["be2"]!], nodeName: "lab-node"),
])

/// A ReferenceGrant in `namespace` from `fromGroup/fromKind` in `fromNamespace` to `toGroup/toKind` `toName`.
private func referenceGrant(
    _ name: String, in namespace: String, from: (group: String, kind: String, namespace: String), to: (group: String, kind: String, name: String)
) -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: ReferenceGrant
    metadata: {name: \(name), namespace: \(namespace)}
    spec:
      from: [{group: "\(from.group)", kind: \(from.kind), namespace: \(from.namespace)}]
      to: [{group: "\(to.group)", kind: \(to.kind), name: \(to.name)}]

    """
}

/// The upstream suite's Gateway `same-namespace-with-https-listener` (NodePort 30882): listeners
/// `https` (any host), `https-with-hostname` (second-example.org), `https-with-wildcard-hostname`
/// (*.wildcard.org) and `https-with-hostname-matching-wildcard` (fourth-example.wildcard.org) on
/// 443, each with the Secret `tls-validity-checks-certificate` (a new self-signed certificate for
/// example.org). Blocking (openssl).
private func httpsGatewayYAML(_ lab: Lab) async throws -> String {
    let certificate = lab.scripts + "/tls-validity-checks"
    try await onDedicatedThread { try makeCertificate(hostname: "example.org", path: certificate) }
    let secret = "tls-validity-checks-certificate"
    return KubeYAML.join([
        KubeYAML.gateway("same-namespace-with-https-listener", namespace: "lab", listeners: [
            KubeYAML.listener("https", port: 443, protocol: "HTTPS", certificate: secret),
            KubeYAML.listener("https-with-hostname", port: 443, protocol: "HTTPS", hostname: "second-example.org", certificate: secret),
            KubeYAML.listener("https-with-wildcard-hostname", port: 443, protocol: "HTTPS", hostname: "'*.wildcard.org'", certificate: secret),
            KubeYAML.listener("https-with-hostname-matching-wildcard", port: 443, protocol: "HTTPS", hostname: "fourth-example.wildcard.org", certificate: secret),
        ]),
        KubeYAML.gatewayService("same-namespace-with-https-listener", namespace: "lab", clusterIP: "10.96.0.92", ports: [
            .init(name: "https", port: 443, targetPort: 443, nodePort: 30882),
        ]),
        KubeYAML.tlsSecret(
            secret, namespace: "lab",
            certificate: try Data(contentsOf: URL(fileURLWithPath: certificate + ".crt")), key: try Data(contentsOf: URL(fileURLWithPath: certificate + ".key"))),
    ])
}

/// The upstream suite's Gateways `same-namespace` (routes from its namespace; NodePort 30890) and
/// `all-namespaces` (routes from every namespace; NodePort 30891), each one HTTP listener on 80.
private let upstreamGatewaysYAML = KubeYAML.join([
    KubeYAML.gateway("same-namespace", namespace: "lab", listeners: [KubeYAML.listener("http", port: 80)]),
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: all-namespaces, namespace: lab}
    spec:
      gatewayClassName: \(KubeYAML.className)
      listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]

    """,
    KubeYAML.gatewayService("same-namespace", namespace: "lab", clusterIP: "10.96.0.90", ports: [.init(name: "http", port: 80, targetPort: 80, nodePort: 30890)]),
    KubeYAML.gatewayService("all-namespaces", namespace: "lab", clusterIP: "10.96.0.91", ports: [.init(name: "http", port: 80, targetPort: 80, nodePort: 30891)]),
])

/// HTTPRouteServiceTypes' Services: `manual-endpointslices` (a ClusterIP Service without selector,
/// slices written by hand), `headless` (clusterIP None with a selector: its slice as the
/// EndpointSlice controller writes it) and `headless-manual-endpointslices`; port 8080
/// `first-port` to infra-backend-v1's port, and an empty IPv6 slice beside each IPv4 one.
private func serviceTypesYAML() -> String {
    let address = Lab.backendIPs["be1"]!
    func service(_ name: String, clusterIP: String, selector: Bool) -> String {
        """
        apiVersion: v1
        kind: Service
        metadata: {name: \(name), namespace: lab}
        spec:
          clusterIP: \(clusterIP)\(selector ? "\n  selector: {app: infra-backend-v1}" : "")
          ports: [{name: first-port, protocol: TCP, port: 8080, targetPort: 8081}]

        """
    }
    func slice(_ service: String, family: String, managed: Bool, endpoints: Bool) -> String {
        """
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: \(service)-\(family == "IPv4" ? "ip4" : "ip6")
          namespace: lab
          labels: {kubernetes.io/service-name: \(service)\(managed ? ", endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io" : "")}
        addressType: \(family)
        ports: [{name: first-port, port: 8081, protocol: TCP}]
        endpoints: \(endpoints
            ? "[{addresses: [\"\(address)\"], conditions: {ready: true, serving: true, terminating: false}, nodeName: lab-node, targetRef: {kind: Pod, name: infra-backend-v1-0, namespace: lab}}]"
            : "[]")

        """
    }
    return KubeYAML.join([
        service("manual-endpointslices", clusterIP: "10.96.0.84", selector: false),
        slice("manual-endpointslices", family: "IPv4", managed: false, endpoints: true),
        slice("manual-endpointslices", family: "IPv6", managed: false, endpoints: false),
        service("headless", clusterIP: "None", selector: true),
        slice("headless", family: "IPv4", managed: true, endpoints: true),
        service("headless-manual-endpointslices", clusterIP: "None", selector: false),
        slice("headless-manual-endpointslices", family: "IPv4", managed: false, endpoints: true),
        slice("headless-manual-endpointslices", family: "IPv6", managed: false, endpoints: false),
    ])
}

/// The GATEWAY-HTTP conformance tests that send traffic, with real packets: a client namespace
/// sends to the node's Gateway NodePorts, the datapath hands the connections to the agent's proxy.
@Suite(.serialized, .enabled(if: conformanceReady, "needs root, the netns lab prerequisites and the portway binary"))
struct GatewayConformanceE2ETests {
    /// Starts the echo backends (infra-backend-v1 on be1, -v2 on be2), writes `yaml` and starts the
    /// agent; returns it and the client (`request.py` in the client namespace) once `probe`
    /// (`PORT METHOD HOST PATH`) is answered with `status`.
    private func start(
        _ lab: Lab, yaml: String, probe: String, status: Int, otherBackends: Bool = false
    ) async throws -> (agent: Child, ask: (String) async -> Answer, client: Child) {
        try ConformanceScripts.backend.write(toFile: lab.scripts + "/echo.py", atomically: true, encoding: .utf8)
        try ConformanceScripts.client.write(toFile: lab.scripts + "/request.py", atomically: true, encoding: .utf8)
        // infra-backend-v3 shares be1's namespace on its own port; the other namespaces' backends
        // (`otherBackendsYAML`) share be2's.
        var backends = [("infra-backend-v1", "\(lab.prefix)-be1", "8081"), ("infra-backend-v2", "\(lab.prefix)-be2", "8081"), ("infra-backend-v3", "\(lab.prefix)-be1", "8082")]
        if otherBackends {
            backends += [("web-backend", "\(lab.prefix)-be2", "8083"), ("app-backend-v1", "\(lab.prefix)-be2", "8084"), ("app-backend-v2", "\(lab.prefix)-be2", "8085")]
        }
        for (name, ns, port) in backends {
            let backend = try await onDedicatedThread { try lab.spawn(in: ns, [Lab.python, lab.scripts + "/echo.py", name, port]) }
            #expect(await backend.line() == "ready")
        }
        let dir = lab.scripts + "/yaml"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try yaml.write(toFile: dir + "/gateway.yaml", atomically: true, encoding: .utf8)
        let agent = try await startAgent(lab, dir: dir)
        let client = try await onDedicatedThread { try lab.spawn(in: lab.client, [Lab.python, lab.scripts + "/request.py", Lab.nodeIP]) }
        let ask: (String) async -> Answer = { line in
            client.send(line)
            return Answer(await client.line() ?? "{\"error\": \"eof\"}")
        }
        var first = Answer("{}")
        await waitUntil(every: .milliseconds(100)) {
            first = await ask(probe)
            return first.status == status
        }
        #expect(first.status == status, "the Gateway never answered \(probe): \(first.summary)")
        return (agent, ask, client)
    }

    /// HTTPRouteRedirectPortAndScheme (the HTTP listeners' cases), HTTPRouteRedirectHostAndStatus,
    /// HTTPRoute303/307/308RedirectStatusCode, HTTPRouteRedirectPath. Issue 19: a redirect without
    /// port named the NodePort (`http://example.org:30880/…`) instead of the listener's port.
    @Test("Redirects through the Gateway NodePorts: the listener's port (80 omitted, 8080 kept), the scheme's port, an explicit port, 301/302/303/307/308, path rewrites; never the NodePort")
    func redirectsThroughNodePort() async throws {
        let rules = [
            redirectRule("/scheme-nil-and-port-nil"),
            redirectRule("/scheme-nil-and-port-80", "port: 80"),
            redirectRule("/scheme-nil-and-port-8080", "port: 8080"),
            redirectRule("/scheme-https-and-port-nil", "scheme: https"),
            redirectRule("/scheme-https-and-port-443", "scheme: https, port: 443"),
            redirectRule("/scheme-https-and-port-8443", "scheme: https, port: 8443"),
            redirectRule("/hostname-redirect"),
            redirectRule("/host-and-status", "statusCode: 301"),
            redirectRule("/status-303", "statusCode: 303"),
            redirectRule("/status-307", "statusCode: 307"),
            redirectRule("/status-308", "statusCode: 308"),
            redirectRule("/full-path", "path: {type: ReplaceFullPath, replaceFullPath: /full-path-replacement}"),
            redirectRule("/prefix-path", "path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}"),
        ].joined(separator: "\n")
        try await withLab(prefix: "pwgc") { lab in
            let yaml = conformanceGatewayYAML([route("redirects", host: "redirect.example.com", rules: rules)])
            let (agent, request, client) = try await start(lab, yaml: yaml, probe: "30880 GET redirect.example.com /hostname-redirect", status: 302)
            defer { agent.kill() }
            func ask(_ nodePort: Int, _ path: String) async -> String {
                await request("\(nodePort) GET redirect.example.com \(path)").summary
            }
            let onPort80: [(String, String)] = [
                ("/scheme-nil-and-port-nil", "302 http://example.org/scheme-nil-and-port-nil"),
                ("/scheme-nil-and-port-80", "302 http://example.org/scheme-nil-and-port-80"),
                ("/scheme-nil-and-port-8080", "302 http://example.org:8080/scheme-nil-and-port-8080"),
                ("/scheme-https-and-port-nil", "302 https://example.org/scheme-https-and-port-nil"),
                ("/scheme-https-and-port-443", "302 https://example.org/scheme-https-and-port-443"),
                ("/scheme-https-and-port-8443", "302 https://example.org:8443/scheme-https-and-port-8443"),
                ("/hostname-redirect?q=1", "302 http://example.org/hostname-redirect?q=1"),
                ("/host-and-status", "301 http://example.org/host-and-status"),
                ("/status-303", "303 http://example.org/status-303"),
                ("/status-307", "307 http://example.org/status-307"),
                ("/status-308", "308 http://example.org/status-308"),
                ("/full-path/deeper", "302 http://example.org/full-path-replacement"),
                ("/prefix-path/deeper", "302 http://example.org/replacement-prefix/deeper"),
            ]
            for (path, expected) in onPort80 {
                #expect(await ask(30880, path) == expected, "listener 80 (NodePort 30880) \(path)")
            }
            let onPort8080: [(String, String)] = [
                ("/scheme-nil-and-port-nil", "302 http://example.org:8080/scheme-nil-and-port-nil"),
                ("/scheme-nil-and-port-80", "302 http://example.org/scheme-nil-and-port-80"),
                ("/scheme-https-and-port-nil", "302 https://example.org/scheme-https-and-port-nil"),
            ]
            for (path, expected) in onPort8080 {
                #expect(await ask(30881, path) == expected, "listener 8080 (NodePort 30881) \(path)")
            }
            client.closeInput()
        }
    }

    /// HTTPRouteRedirectPortAndScheme, the cases of the HTTPS listener on 443: without scheme the
    /// request's (https) and the listener's port (443, omitted); an explicit port or scheme as on
    /// the HTTP listeners. Sent over TLS (SNI example.org) to the Gateway's NodePort.
    @Test("Redirects on an HTTPS listener through its NodePort: the request's scheme https, the listener's port 443 omitted, explicit ports and schemes")
    func redirectsOnAnHTTPSListener() async throws {
        guard haveCommand("openssl") else {
            print("⚠️ redirectsOnAnHTTPSListener skipped: openssl not found")
            return
        }
        let rules = [
            redirectRule("/scheme-nil-and-port-nil"),
            redirectRule("/scheme-nil-and-port-443", "port: 443"),
            redirectRule("/scheme-nil-and-port-8443", "port: 8443"),
            redirectRule("/scheme-http-and-port-nil", "scheme: http"),
            redirectRule("/scheme-http-and-port-80", "scheme: http, port: 80"),
            redirectRule("/scheme-http-and-port-8080", "scheme: http, port: 8080"),
        ].joined(separator: "\n")
        try await withLab(prefix: "pwgc") { lab in
            let https = try await httpsGatewayYAML(lab) + "---\n"
                + httpRoute("http-route-for-listener-on-port-443", parents: ["same-namespace-with-https-listener"], rules: rules)
            let (agent, request, client) = try await start(
                lab, yaml: conformanceGatewayYAML([https]), probe: "tls:30882 GET example.org /scheme-nil-and-port-nil", status: 302)
            defer { agent.kill() }
            let cases: [(String, String)] = [
                ("/scheme-nil-and-port-nil", "302 https://example.org/scheme-nil-and-port-nil"),
                ("/scheme-nil-and-port-443", "302 https://example.org/scheme-nil-and-port-443"),
                ("/scheme-nil-and-port-8443", "302 https://example.org:8443/scheme-nil-and-port-8443"),
                ("/scheme-http-and-port-nil", "302 http://example.org/scheme-http-and-port-nil"),
                ("/scheme-http-and-port-80", "302 http://example.org/scheme-http-and-port-80"),
                ("/scheme-http-and-port-8080", "302 http://example.org:8080/scheme-http-and-port-8080"),
            ]
            for (path, expected) in cases {
                #expect(await request("tls:30882 GET example.org \(path)").summary == expected, "listener 443 (NodePort 30882) \(path)")
            }
            client.closeInput()
        }
    }

    /// HTTPRouteCrossNamespace (Gateway backend-namespaces, routes from namespaces labelled
    /// `gateway-conformance: backend`; NodePort 30896), HTTPRouteInvalidReferenceGrant (seven
    /// grants that each miss by one field: 500), HTTPRouteReferenceGrant (the right grant: 200
    /// from web-backend; deleted: 500 again) and HTTPRoutePartiallyInvalidViaInvalidReferenceGrant
    /// (a grant for app-backend-v1 only: its rule 200, the other 500). Each with its upstream status
    /// from the builder on the objects the agent serves at that moment. Upstream runs them alone
    /// on `same-namespace`; here the two routes there have hostnames of their own.
    @Test("ReferenceGrants and cross-namespace routes through the Gateway NodePorts: grants that miss, the right grant added and deleted, a partially permitted route")
    func referenceGrantsThroughNodePort() async throws {
        let infra = "lab", webNS = "gateway-conformance-web-backend", appNS = "gateway-conformance-app-backend"
        let routes = [
            otherBackendsYAML,
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: backend-namespaces, namespace: lab}
            spec:
              gatewayClassName: \(KubeYAML.className)
              listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {gateway-conformance: backend}}}}}]

            """,
            KubeYAML.gatewayService("backend-namespaces", namespace: "lab", clusterIP: "10.96.0.96", ports: [.init(name: "http", port: 80, targetPort: 80, nodePort: 30896)]),
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: cross-namespace, namespace: \(webNS)}
            spec:
              parentRefs: [{name: backend-namespaces, namespace: lab}]
              rules: [{backendRefs: [{name: web-backend, port: 80}]}]

            """,
            upstreamGatewaysYAML,
            httpRoute("reference-grant", parents: ["same-namespace"], hosts: ["grant.example.com"], rules: "  - backendRefs: [{name: web-backend, namespace: \(webNS), port: 80}]"),
            httpRoute("invalid-reference-grant", parents: ["same-namespace"], hosts: ["partial.example.com"], rules: """
                  - matches: [{path: {type: PathPrefix, value: /v2}}]
                    backendRefs: [{name: app-backend-v2, namespace: \(appNS), port: 80}]
                  - backendRefs: [{name: app-backend-v1, namespace: \(appNS), port: 80}]
                """),
            referenceGrant("invalid-reference-grant", in: appNS, from: (GatewayAPI.group, "HTTPRoute", infra), to: ("", "Service", "app-backend-v1")),
        ]
        let invalidGrants = KubeYAML.join([
            referenceGrant("reference-grant-wrong-namespace", in: infra, from: (GatewayAPI.group, "HTTPRoute", infra), to: ("", "Service", "web-backend")),
            referenceGrant("reference-grant-wrong-from-group", in: webNS, from: ("not-the-group-youre-looking-for", "HTTPRoute", infra), to: ("", "Service", "web-backend")),
            referenceGrant("reference-grant-wrong-from-kind", in: webNS, from: (GatewayAPI.group, "Gateway", infra), to: ("", "Service", "web-backend")),
            referenceGrant("reference-grant-wrong-from-namespace", in: webNS, from: (GatewayAPI.group, "HTTPRoute", "not-the-namespace-youre-looking-for"), to: ("", "Service", "web-backend")),
            referenceGrant("reference-grant-wrong-to-group", in: webNS, from: (GatewayAPI.group, "HTTPRoute", infra), to: ("not-the-group-youre-looking-for", "Service", "web-backend")),
            referenceGrant("reference-grant-wrong-to-kind", in: webNS, from: (GatewayAPI.group, "HTTPRoute", infra), to: ("", "Secret", "web-backend")),
            referenceGrant("reference-grant-wrong-to-name", in: webNS, from: (GatewayAPI.group, "HTTPRoute", infra), to: ("", "Secret", "not-the-service-youre-looking-for")),
        ])
        let rightGrant = referenceGrant("reference-grant", in: webNS, from: (GatewayAPI.group, "HTTPRoute", infra), to: ("", "Service", "web-backend"))
        /// The `ResolvedRefs` of route `name` (namespace `namespace`) on `gateway`, from the builder over `extra` too.
        func resolvedRefs(_ name: String, in namespace: String = infra, gateway: String = "same-namespace", extra: [String]) throws -> String {
            let status = GatewayState.build(try FileSource.load(yaml: conformanceGatewayYAML(routes + extra), file: "gateway.yaml").snapshot, options: GatewayOptions()).status
            let parent = status.routes[NamespacedName(namespace: namespace, name: name)]?.first { $0.parentRef.name == gateway }
            return (parent?.conditions ?? []).map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }.joined(separator: " ")
        }
        #expect(try resolvedRefs("cross-namespace", in: webNS, gateway: "backend-namespaces", extra: [invalidGrants]) == "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs")
        #expect(try resolvedRefs("invalid-reference-grant", extra: [invalidGrants]) == "Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted")
        #expect(try resolvedRefs("reference-grant", extra: [invalidGrants]) == "Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted")
        #expect(try resolvedRefs("reference-grant", extra: [invalidGrants, rightGrant]) == "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs")
        try await withLab(prefix: "pwgc") { lab in
            // The grants that miss are there from the start: the 500 below is with them loaded.
            let (agent, ask, client) = try await start(
                lab, yaml: conformanceGatewayYAML(routes + [invalidGrants]), probe: "30896 GET cross.example.com /", status: 200, otherBackends: true)
            defer { agent.kill() }
            let dir = lab.scripts + "/yaml"
            func backend(_ port: Int, _ host: String, _ path: String = "/") async -> String {
                let answer = await ask("\(port) GET \(host) \(path)")
                return answer.status == 200 ? "\(answer.echo["name"] as? String ?? "?")" : answer.summary
            }
            // HTTPRouteCrossNamespace.
            #expect(await backend(30896, "cross.example.com") == "web-backend")
            // HTTPRoutePartiallyInvalidViaInvalidReferenceGrant.
            await waitUntil(every: .milliseconds(100)) { await ask("30890 GET partial.example.com /").status == 200 }
            #expect(await backend(30890, "partial.example.com", "/v2") == "500 -")
            #expect(await backend(30890, "partial.example.com") == "app-backend-v1")
            // HTTPRouteInvalidReferenceGrant.
            #expect(await backend(30890, "grant.example.com") == "500 -")
            // HTTPRouteReferenceGrant: the right grant, then without it.
            try rightGrant.write(toFile: dir + "/grant.yaml", atomically: true, encoding: .utf8)
            var got = ""
            await waitUntil(every: .milliseconds(100)) { got = await backend(30890, "grant.example.com"); return got == "web-backend" }
            #expect(got == "web-backend", "with the grant")
            try FileManager.default.removeItem(atPath: dir + "/grant.yaml")
            await waitUntil(every: .milliseconds(100)) { got = await backend(30890, "grant.example.com"); return got == "500 -" }
            #expect(got == "500 -", "the grant deleted")
            client.closeInput()
        }
    }

    /// HTTPRouteHTTPSListener: over TLS (SNI = Host) to the HTTPS Gateway's NodePort, a route for
    /// example.org on every listener and one by sectionName on https-with-hostname; status from
    /// the builder on the same objects.
    @Test("HTTPS listeners through their NodePort: a route by hostname, one by sectionName, an unknown host 404")
    func httpsListenerThroughNodePort() async throws {
        guard haveCommand("openssl") else {
            print("⚠️ httpsListenerThroughNodePort skipped: openssl not found")
            return
        }
        try await withLab(prefix: "pwgc") { lab in
            let yaml = conformanceGatewayYAML([
                try await httpsGatewayYAML(lab),
                httpRoute("httproute-https-test", parents: ["same-namespace-with-https-listener"], hosts: ["example.org"], rules: "  - backendRefs: [{name: infra-backend-v1, port: 80}]"),
                """
                apiVersion: gateway.networking.k8s.io/v1
                kind: HTTPRoute
                metadata: {name: httproute-https-test-no-hostname, namespace: lab}
                spec:
                  parentRefs: [{name: same-namespace-with-https-listener, sectionName: https-with-hostname}]
                  rules: [{backendRefs: [{name: infra-backend-v2, port: 80}]}]

                """,
            ])
            let status = GatewayState.build(try FileSource.load(yaml: yaml, file: "gateway.yaml").snapshot, options: GatewayOptions()).status
            for route in ["httproute-https-test", "httproute-https-test-no-hostname"] {
                let parents = status.routes[NamespacedName(namespace: "lab", name: route)] ?? []
                #expect(!parents.isEmpty && parents.allSatisfy { $0.conditions?.map { "\($0.type)=\($0.status)" } == ["Accepted=True", "ResolvedRefs=True"] }, "\(route)")
            }
            let (agent, ask, client) = try await start(lab, yaml: yaml, probe: "tls:30882 GET example.org /", status: 200)
            defer { agent.kill() }
            for (host, expected) in [("example.org", "200 infra-backend-v1"), ("unknown-example.org", "404 -"), ("second-example.org", "200 infra-backend-v2")] {
                let answer = await ask("tls:30882 GET \(host) /")
                #expect("\(answer.status) \(answer.echo["name"] as? String ?? "-")" == expected, "Host and SNI \(host)")
            }
            client.closeInput()
        }
    }

    /// HTTPRouteHTTPSListenerDetectMisdirectedRequests (GatewayHTTPSListenerDetectMisdirectedRequests):
    /// upstream's four routes, one per listener of `same-namespace-with-https-listener` by
    /// sectionName, and every case of the upstream test over TLS to the NodePort, the SNI and the
    /// Host set apart: a Host served by another listener than the SNI's gets 421; a Host of the
    /// SNI's listener its route (200) or 404. Upstream speaks HTTP/2; the proxy offers only
    /// http/1.1 in ALPN, so these are HTTP/1.1 requests (the listener choice is the same).
    @Test("Misdirected requests on HTTPS listeners through their NodePort: 421 when the Host belongs to another listener than the SNI")
    func misdirectedRequestsOnHTTPSListeners() async throws {
        guard haveCommand("openssl") else {
            print("⚠️ misdirectedRequestsOnHTTPSListeners skipped: openssl not found")
            return
        }
        func sectionRoute(_ number: Int, section: String, backend: String) -> String {
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: https-listener-detect-misdirected-requests-test-\(number), namespace: lab}
            spec:
              parentRefs: [{name: same-namespace-with-https-listener, sectionName: \(section)}]
            \(number == 1 ? "  hostnames: [example.org]\n" : "")  rules:
              - matches: [{path: {type: PathPrefix, value: /detect-misdirected-requests}}]
                backendRefs: [{name: \(backend), port: 80}]

            """
        }
        try await withLab(prefix: "pwgc") { lab in
            let yaml = conformanceGatewayYAML([
                try await httpsGatewayYAML(lab),
                sectionRoute(1, section: "https", backend: "infra-backend-v1"),
                sectionRoute(2, section: "https-with-hostname", backend: "infra-backend-v2"),
                sectionRoute(3, section: "https-with-wildcard-hostname", backend: "infra-backend-v3"),
                sectionRoute(4, section: "https-with-hostname-matching-wildcard", backend: "infra-backend-v1"),
            ])
            let status = GatewayState.build(try FileSource.load(yaml: yaml, file: "gateway.yaml").snapshot, options: GatewayOptions()).status
            for number in 1...4 {
                let parents = status.routes[NamespacedName(namespace: "lab", name: "https-listener-detect-misdirected-requests-test-\(number)")] ?? []
                #expect(parents.map { ($0.conditions ?? []).map { "\($0.type)=\($0.status)" } } == [["Accepted=True", "ResolvedRefs=True"]], "route \(number)")
            }
            let (agent, ask, client) = try await start(lab, yaml: yaml, probe: "tls:30882:example.org GET example.org /detect-misdirected-requests", status: 200)
            defer { agent.kill() }
            // (SNI, Host, expected): upstream's cases in its order.
            let cases: [(String, String, String)] = [
                ("example.org", "example.org", "200 infra-backend-v1"),
                ("example.org", "second-example.org", "421 -"),
                ("example.org", "unknown-example.org", "404 -"),
                ("second-example.org", "second-example.org", "200 infra-backend-v2"),
                ("second-example.org", "example.org", "421 -"),
                ("second-example.org", "unknown-example.org", "421 -"),
                ("third-example.wildcard.org", "third-example.wildcard.org", "200 infra-backend-v3"),
                ("third-example.wildcard.org", "fith-example.wildcard.org", "200 infra-backend-v3"),
                ("third-example.wildcard.org", "fourth-example.wildcard.org", "421 -"),
                ("third-example.wildcard.org", "second-example.org", "421 -"),
                ("third-example.wildcard.org", "unknown-example.org", "421 -"),
                ("fourth-example.wildcard.org", "fourth-example.wildcard.org", "200 infra-backend-v1"),
                ("fourth-example.wildcard.org", "fith-example.wildcard.org", "421 -"),
                ("unknown-example.org", "example.org", "200 infra-backend-v1"),
                ("unknown-example.org", "unknown-example.org", "404 -"),
            ]
            for (serverName, host, expected) in cases {
                let answer = await ask("tls:30882:\(serverName) GET \(host) /detect-misdirected-requests")
                let got = answer.error.map { "error \($0)" } ?? "\(answer.status) \(answer.echo["name"] as? String ?? "-")"
                #expect(got == expected, "SNI \(serverName), Host \(host)")
            }
            client.closeInput()
        }
    }

    /// HTTPRouteListenerPortMatching (HTTPRouteParentRefPort: routes attached by `parentRefs[].port`
    /// to listeners on 80, 8080 and 8090 of one Gateway, NodePorts 30897-30899; the request goes to
    /// the NodePort of the Host's port, as upstream picks the Gateway address by it) and
    /// HTTPRouteNamedRule (HTTPRouteNamedRouteRule: a named rule beside an unnamed one).
    @Test("parentRefs by port and named rules through the Gateway NodePorts")
    func parentRefPortAndNamedRulesThroughNodePort() async throws {
        let listeners = [
            ("listener-1", 80, "foo.com"), ("listener-2", 8080, "foo.com"), ("listener-3", 8080, "bar.com"), ("listener-4", 8090, "foo.com"), ("listener-5", 8090, "bar.com"),
        ]
        func portRoute(_ name: String, port: Int, section: String? = nil, backend: String) -> String {
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: \(name), namespace: lab}
            spec:
              parentRefs: [{name: httproute-listener-port-matching, namespace: lab, port: \(port)\(section.map { ", sectionName: \($0)" } ?? "")}]
              rules: [{backendRefs: [{name: \(backend), port: 80}]}]

            """
        }
        let routes = [
            KubeYAML.gateway("httproute-listener-port-matching", namespace: "lab", listeners: listeners.map { KubeYAML.listener($0.0, port: $0.1, hostname: $0.2) }),
            KubeYAML.gatewayService("httproute-listener-port-matching", namespace: "lab", clusterIP: "10.96.0.97", ports: [
                .init(name: "http-80", port: 80, targetPort: 80, nodePort: 30897), .init(name: "http-8080", port: 8080, targetPort: 8080, nodePort: 30898),
                .init(name: "http-8090", port: 8090, targetPort: 8090, nodePort: 30899),
            ]),
            portRoute("backend-v1", port: 80, backend: "infra-backend-v1"),
            portRoute("backend-v2", port: 8080, backend: "infra-backend-v2"),
            portRoute("backend-v3", port: 8090, section: "listener-4", backend: "infra-backend-v3"),
            upstreamGatewaysYAML,
            httpRoute("http-named-rules", parents: ["same-namespace"], rules: """
                  - name: named-rule
                    matches: [{path: {type: PathPrefix, value: /named}}]
                    backendRefs: [{name: infra-backend-v1, port: 80}]
                  - matches: [{path: {type: PathPrefix, value: /unnamed}}]
                    backendRefs: [{name: infra-backend-v2, port: 80}]
                """),
        ]
        let state = GatewayState.build(try FileSource.load(yaml: conformanceGatewayYAML(routes), file: "gateway.yaml").snapshot, options: GatewayOptions())
        for route in ["backend-v1", "backend-v2", "backend-v3", "http-named-rules"] {
            let parents = state.status.routes[NamespacedName(namespace: "lab", name: route)] ?? []
            #expect(!parents.isEmpty && parents.allSatisfy { $0.conditions?.map { "\($0.type)=\($0.status)" } == ["Accepted=True", "ResolvedRefs=True"] }, "\(route)")
        }
        let listenerStatus = state.status.gateways[NamespacedName(namespace: "lab", name: "httproute-listener-port-matching")]?.listeners ?? []
        #expect(listenerStatus.map { "\($0.name) \($0.attachedRoutes)" } == ["listener-1 1", "listener-2 1", "listener-3 1", "listener-4 1", "listener-5 0"])
        try await withLab(prefix: "pwgc") { lab in
            let (agent, ask, client) = try await start(lab, yaml: conformanceGatewayYAML(routes), probe: "30897 GET foo.com /", status: 200)
            defer { agent.kill() }
            for port in [30898, 30899, 30890] {
                await waitUntil(every: .milliseconds(100)) { await ask("\(port) GET foo.com /named").status != 0 }
            }
            let cases: [(Int, String, String, String)] = [
                (30897, "foo.com", "/", "200 infra-backend-v1"), (30898, "foo.com:8080", "/", "200 infra-backend-v2"), (30898, "bar.com:8080", "/", "200 infra-backend-v2"),
                (30899, "foo.com:8090", "/", "200 infra-backend-v3"), (30899, "bar.com:8090", "/", "404 -"),
                // HTTPRouteNamedRule.
                (30890, "named.example.com", "/named", "200 infra-backend-v1"), (30890, "named.example.com", "/unnamed", "200 infra-backend-v2"),
            ]
            for (port, host, path, expected) in cases {
                let answer = await ask("\(port) GET \(host) \(path)")
                #expect("\(answer.status) \(answer.echo["name"] as? String ?? "-")" == expected, "\(port) Host \(host) \(path)")
            }
            client.closeInput()
        }
    }

    /// GatewayHTTPListenerIsolation: four listeners on port 80 (none, *.example.com,
    /// *.foo.example.com, abc.foo.example.com), a route on each by sectionName; a request is served
    /// only by the most specific listener for its host, never by a less specific one's routes. Both
    /// upstream Gateways: routes without hostnames (NodePort 30884) and routes whose hostnames
    /// intersect several listeners (NodePort 30885).
    @Test("HTTP listener isolation through the Gateway NodePorts: each host only by its most specific listener, with and without route hostnames")
    func listenerIsolationThroughNodePort() async throws {
        let listeners = [
            ("empty-hostname", nil), ("wildcard-example-com", "'*.example.com'"), ("wildcard-foo-example-com", "'*.foo.example.com'"),
            ("abc-foo-example-com", "abc.foo.example.com"),
        ] as [(String, String?)]
        let intersecting = ["bar.com", "'*.example.com'", "'*.foo.example.com'", "abc.foo.example.com"]
        var yaml: [String] = []
        for (gateway, nodePort, hosts, suffix) in [
            ("http-listener-isolation", 30884, [String](), ""),
            ("http-listener-isolation-with-hostname-intersection", 30885, intersecting, "-with-hostname-intersection"),
        ] {
            yaml.append("""
                apiVersion: gateway.networking.k8s.io/v1
                kind: Gateway
                metadata: {name: \(gateway), namespace: lab}
                spec:
                  gatewayClassName: \(KubeYAML.className)
                  listeners:
                \(listeners.map { "  - {name: \($0.0), port: 80, protocol: HTTP\($0.1.map { ", hostname: \($0)" } ?? ""), allowedRoutes: {namespaces: {from: All}}}" }.joined(separator: "\n"))

                """)
            yaml.append(KubeYAML.gatewayService(gateway, namespace: "lab", clusterIP: "10.96.1.\(nodePort - 30800)", ports: [.init(name: "http", port: 80, targetPort: 80, nodePort: nodePort)]))
            for (listener, _) in listeners {
                yaml.append("""
                    apiVersion: gateway.networking.k8s.io/v1
                    kind: HTTPRoute
                    metadata: {name: attaches-to-\(listener)\(suffix), namespace: lab}
                    spec:
                      parentRefs: [{name: \(gateway), namespace: lab, sectionName: \(listener)}]
                    \(hosts.isEmpty ? "" : "  hostnames: [\(hosts.joined(separator: ", "))]\n")  rules:
                      - matches: [{path: {type: PathPrefix, value: /\(listener)}}]
                        backendRefs: [{name: infra-backend-v1, port: 80}]

                    """)
            }
        }
        let status = GatewayState.build(try FileSource.load(yaml: conformanceGatewayYAML(yaml), file: "gateway.yaml").snapshot, options: GatewayOptions()).status
        for suffix in ["", "-with-hostname-intersection"] {
            for (listener, _) in listeners {
                let parents = status.routes[NamespacedName(namespace: "lab", name: "attaches-to-\(listener)\(suffix)")] ?? []
                #expect(parents.count == 1 && parents[0].conditions?.map { "\($0.type)=\($0.status)" } == ["Accepted=True", "ResolvedRefs=True"], "\(listener)\(suffix)")
            }
        }
        try await withLab(prefix: "pwgc") { lab in
            let (agent, ask, client) = try await start(lab, yaml: conformanceGatewayYAML(yaml), probe: "30884 GET bar.com /empty-hostname", status: 200)
            defer { agent.kill() }
            await waitUntil(every: .milliseconds(100)) { await ask("30885 GET bar.com /empty-hostname").status == 200 }
            // The listener whose routes serve each host; every other listener's path is 404 there.
            let servedBy = ["bar.com": "empty-hostname", "bar.example.com": "wildcard-example-com", "bar.foo.example.com": "wildcard-foo-example-com", "abc.foo.example.com": "abc-foo-example-com"]
            for port in [30884, 30885] {
                for (host, serving) in servedBy.sorted(by: { $0.key < $1.key }) {
                    for (listener, _) in listeners {
                        let answer = await ask("\(port) GET \(host) /\(listener)")
                        let expected = listener == serving ? "200 infra-backend-v1" : "404 -"
                        #expect("\(answer.status) \(answer.echo["name"] as? String ?? "-")" == expected, "\(port) Host \(host) /\(listener)")
                    }
                }
            }
            client.closeInput()
        }
    }

    /// HTTPRouteTimeoutRequest and HTTPRouteTimeoutBackendRequest. Issue 19: `timeouts` was never
    /// decoded, so a backend delayed past the route's 500 ms answered 200.
    @Test("Route timeouts through the Gateway NodePort: request 500ms and backendRequest 500ms give 504 for a backend delayed 1 s, 200 when fast; 0s disables them")
    func timeoutsThroughNodePort() async throws {
        let rules = [
            timeoutRule("/request-timeout", "{request: 500ms}"),
            timeoutRule("/disable-request-timeout", "{request: 0s}"),
            timeoutRule("/backend-timeout", "{backendRequest: 500ms}"),
            timeoutRule("/disable-backend-timeout", "{backendRequest: 0s}"),
        ].joined(separator: "\n")
        try await withLab(prefix: "pwgc") { lab in
            let yaml = conformanceGatewayYAML([route("timeouts", host: "timeout.example.com", rules: rules)])
            let (agent, request, client) = try await start(lab, yaml: yaml, probe: "30880 GET timeout.example.com /request-timeout", status: 200)
            defer { agent.kill() }
            func ask(_ path: String) async -> String {
                await request("30880 GET timeout.example.com \(path)").summary
            }
            #expect(await ask("/request-timeout") == "200 -")
            #expect(await ask("/request-timeout?delay=1s") == "504 -")
            #expect(await ask("/disable-request-timeout?delay=1s") == "200 -")
            #expect(await ask("/backend-timeout") == "200 -")
            #expect(await ask("/backend-timeout?delay=1s") == "504 -")
            #expect(await ask("/disable-backend-timeout?delay=1s") == "200 -")
            client.closeInput()
        }
    }

    /// HTTPRouteQueryParamMatching, HTTPRouteMethodMatching, HTTPRouteResponseHeaderModification,
    /// HTTPRouteBackendRequestHeaderModification, HTTPRouteHostRewrite, HTTPRoutePathRewrite: the
    /// cases of the upstream tests that decide between backends, with real requests.
    @Test("Matching and modifiers through the Gateway NodePort: query parameters, methods, response headers, a backendRef's request headers, host and path rewrites")
    func matchingAndModifiersThroughNodePort() async throws {
        let backend = { (name: String) in "[{name: \(name), port: 80}]" }
        let routes = [
            route("query", host: "query.example.com", rules: """
                  - matches: [{queryParams: [{name: animal, value: whale}]}]
                    backendRefs: \(backend("infra-backend-v1"))
                  - matches: [{queryParams: [{name: animal, value: dolphin}]}]
                    backendRefs: \(backend("infra-backend-v2"))
                """),
            route("method", host: "method.example.com", rules: """
                  - matches: [{method: POST}]
                    backendRefs: \(backend("infra-backend-v1"))
                  - matches: [{method: GET}]
                    backendRefs: \(backend("infra-backend-v2"))
                """),
            route("modifiers", host: "modifiers.example.com", rules: """
                  - matches: [{path: {type: PathPrefix, value: /response}}]
                    filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: set-overwrites}], add: [{name: X-Header-Add, value: added}], remove: [X-Header-Remove]}}]
                    backendRefs: \(backend("infra-backend-v1"))
                  - matches: [{path: {type: PathPrefix, value: /backend-headers}}]
                    backendRefs: [{name: infra-backend-v2, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Backend, value: v2}]}}]}]
                  - matches: [{path: {type: PathPrefix, value: /host-rewrite}}]
                    filters: [{type: URLRewrite, urlRewrite: {hostname: one.example.org}}]
                    backendRefs: \(backend("infra-backend-v1"))
                  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
                    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}}]
                    backendRefs: \(backend("infra-backend-v1"))
                  - matches: [{path: {type: PathPrefix, value: /full/one}}]
                    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /one}}}]
                    backendRefs: \(backend("infra-backend-v1"))
                """),
        ]
        try await withLab(prefix: "pwgc") { lab in
            let (agent, ask, client) = try await start(
                lab, yaml: conformanceGatewayYAML(routes), probe: "30880 GET query.example.com /?animal=whale", status: 200)
            defer { agent.kill() }
            // Query parameters: names and values exact and case-sensitive, other parameters ignored.
            let query: [(String, String)] = [
                ("/?animal=whale", "infra-backend-v1 /?animal=whale"),
                ("/?animal=dolphin", "infra-backend-v2 /?animal=dolphin"),
                ("/?animal=whale&otherparam=irrelevant", "infra-backend-v1 /?animal=whale&otherparam=irrelevant"),
            ]
            for (path, expected) in query {
                let answer = await ask("30880 GET query.example.com \(path)")
                #expect(answer.status == 200 && answer.backend == expected, "\(path): \(answer.summary) \(answer.backend)")
            }
            for path in ["/?ANIMAL=Whale", "/?animal=dog", "/?animal=whaledolphin", "/"] {
                #expect(await ask("30880 GET query.example.com \(path)").status == 404, "\(path)")
            }
            // Methods.
            #expect(await ask("30880 POST method.example.com /").backend == "infra-backend-v1 /")
            #expect(await ask("30880 GET method.example.com /").backend == "infra-backend-v2 /")
            #expect(await ask("30880 HEAD method.example.com /").status == 404)
            // Response headers: set overwrites the backend's, add adds, remove removes.
            let response = await ask("30880 GET modifiers.example.com /response")
            #expect(response.status == 200)
            #expect(response.headers["x-header-set"] == "set-overwrites")
            #expect(response.headers["x-header-add"] == "added")
            #expect(response.headers["x-header-remove"] == nil)
            // A backendRef's RequestHeaderModifier reaches that backend.
            let backendHeaders = await ask("30880 GET modifiers.example.com /backend-headers")
            #expect(backendHeaders.backend == "infra-backend-v2 /backend-headers" && backendHeaders.sent("x-backend") == "v2")
            // Host and path rewrites, as the backend sees them.
            let host = await ask("30880 GET modifiers.example.com /host-rewrite")
            #expect(host.echo["host"] as? String == "one.example.org", "\(host.echo)")
            #expect(await ask("30880 GET modifiers.example.com /prefix/one/two").backend == "infra-backend-v1 /one/two")
            #expect(await ask("30880 GET modifiers.example.com /prefix/one").backend == "infra-backend-v1 /one")
            #expect(await ask("30880 GET modifiers.example.com /full/one/two").backend == "infra-backend-v1 /one")
            client.closeInput()
        }
    }

    /// The core tests that send traffic, each upstream route and request as it is, on the Gateway
    /// `web` under a hostname of its own (upstream each runs alone on `same-namespace` without
    /// hostnames; the hostnames keep their catch-all rules apart here): HTTPRouteExactPathMatching,
    /// HTTPRouteMatching, HTTPRouteHeaderMatching, HTTPRoutePathMatchOrder,
    /// HTTPRouteMatchingAcrossRoutes (its own hostnames), HTTPRouteRequestHeaderModifier,
    /// HTTPRouteNoBackendRefs and the 500s of HTTPRouteInvalidNonExistentBackendRef,
    /// HTTPRouteInvalidBackendRefUnknownKind and HTTPRouteInvalidCrossNamespaceBackendRef. On the
    /// upstream Gateways `same-namespace` and `all-namespaces`, as upstream: HTTPRouteMultipleGateways
    /// and HTTPRouteServiceTypes.
    @Test("Core routing through the Gateway NodePorts: exact paths, matching, headers, path order, across routes, request header modifiers, rules without backends, invalid backendRefs (500), one route on two Gateways, headless and manual-EndpointSlice Services")
    func coreRoutingThroughNodePort() async throws {
        let v1 = "[{name: infra-backend-v1, port: 80}]", v2 = "[{name: infra-backend-v2, port: 80}]", v3 = "[{name: infra-backend-v3, port: 80}]"
        func rule(_ matches: String, _ backends: String, filters: String? = nil) -> String {
            "  - matches: \(matches)\n" + (filters.map { "    filters: \($0)\n" } ?? "") + "    backendRefs: \(backends)"
        }
        let prefix = { (path: String) in "{path: {type: PathPrefix, value: \(path)}}" }
        let exact = { (path: String) in "{path: {type: Exact, value: \(path)}}" }
        let header = { (name: String, value: String) in "{name: \(name), value: \(value)}" }
        let modifier = { (settings: String) in "[{type: RequestHeaderModifier, requestHeaderModifier: {\(settings)}}]" }
        let routes = [
            httpRoute("exact-matching", hosts: ["exact.example.com"], rules: [
                rule("[\(exact("/one"))]", v1), rule("[\(exact("/two"))]", v2),
            ].joined(separator: "\n")),
            httpRoute("matching", hosts: ["matching.example.com"], rules: [
                rule("[\(prefix("/")), {headers: [\(header("version", "one"))]}]", v1),
                rule("[\(prefix("/v2")), {headers: [\(header("version", "two"))]}]", v2),
            ].joined(separator: "\n")),
            httpRoute("header-matching", hosts: ["header.example.com"], rules: [
                rule("[{headers: [\(header("version", "one"))]}]", v1),
                rule("[{headers: [\(header("version", "two"))]}]", v2),
                rule("[{headers: [\(header("version", "two")), \(header("color", "orange"))]}]", v1),
                rule("[{headers: [\(header("color", "blue"))]}, {headers: [\(header("color", "green"))]}]", v1),
                rule("[{headers: [\(header("color", "red"))]}, {headers: [\(header("color", "yellow"))]}]", v2),
            ].joined(separator: "\n")),
            httpRoute("path-matching-order", hosts: ["order.example.com"], rules: [
                rule("[\(exact("/match"))]", v1), rule("[\(exact("/match/exact"))]", v2), rule("[\(exact("/match/exact/one"))]", v3),
                rule("[\(prefix("/match/"))]", v3), rule("[\(prefix("/match/prefix/"))]", v1), rule("[\(prefix("/match/prefix/one"))]", v2),
            ].joined(separator: "\n")),
            httpRoute("matching-part1", hosts: ["example.com", "example.net"], rules: rule("[\(prefix("/")), {headers: [\(header("version", "one"))]}]", v1)),
            httpRoute("matching-part2", hosts: ["example.com"], rules: rule("[\(prefix("/v2")), {headers: [\(header("version", "two"))]}]", v2)),
            httpRoute("request-header-modifier", hosts: ["headers.example.com"], rules: [
                rule("[\(prefix("/set"))]", v1, filters: modifier("set: [{name: X-Header-Set, value: set-overwrites-values}]")),
                rule("[\(prefix("/add"))]", v1, filters: modifier("add: [{name: X-Header-Add, value: add-appends-values}]")),
                rule("[\(prefix("/remove"))]", v1, filters: modifier("remove: [X-Header-Remove]")),
                rule("[\(prefix("/multiple"))]", v1, filters: modifier(
                    "set: [{name: X-Header-Set-1, value: header-set-1}, {name: X-Header-Set-2, value: header-set-2}], "
                        + "add: [{name: X-Header-Add-1, value: header-add-1}, {name: X-Header-Add-2, value: header-add-2}, {name: X-Header-Add-3, value: header-add-3}], "
                        + "remove: [X-Header-Remove-1, X-Header-Remove-2]")),
                rule("[\(prefix("/case-insensitivity"))]", v1, filters: modifier(
                    "set: [{name: X-Header-Set, value: header-set}], add: [{name: X-Header-Add, value: header-add}], remove: [X-Header-Remove]")),
            ].joined(separator: "\n")),
            httpRoute("omitted-backendrefs", hosts: ["omitted.example.com"], rules: """
                  - matches: [\(exact("/omitted-no-forward"))]
                  - matches: [\(exact("/empty-no-forward"))]
                    backendRefs: []
                \(rule("[\(prefix("/"))]", v1))
                """),
            httpRoute("invalid-nonexistent-backend-ref", hosts: ["nonexistent.example.com"], rules: "  - backendRefs: [{name: nonexistent, namespace: lab, port: 8080}]"),
            httpRoute("invalid-backend-ref-unknown-kind", hosts: ["unknownkind.example.com"], rules:
                "  - backendRefs: [{group: unknownkind.example.com, kind: NonExistent, name: infra-backend-v1, port: 80}]"),
            httpRoute("invalid-cross-namespace-backend-ref", hosts: ["crossns.example.com"], rules:
                "  - backendRefs: [{name: web-backend, namespace: gateway-conformance-web-backend, port: 8080}]"),
            KubeYAML.service("web-backend", namespace: "gateway-conformance-web-backend", clusterIP: "10.96.0.85", ports: [.init(port: 8080, targetPort: 8081)]),
            // HTTPRouteMultipleGateways and HTTPRouteServiceTypes, on the upstream Gateways.
            upstreamGatewaysYAML,
            httpRoute("multiple-gateways-shared-route", parents: ["same-namespace", "all-namespaces"], rules: rule("[\(prefix("/shared"))]", v1)),
            httpRoute("same-namespace-dedicated-route", parents: ["same-namespace"], rules: rule("[\(prefix("/"))]", v2)),
            httpRoute("all-namespaces-dedicated-route", parents: ["all-namespaces"], rules: rule("[\(prefix("/"))]", v3)),
            httpRoute("service-types", parents: ["same-namespace"], rules: [
                rule("[\(exact("/manual-endpointslices"))]", "[{name: manual-endpointslices, port: 8080}]"),
                rule("[\(exact("/headless"))]", "[{name: headless, port: 8080}]"),
                rule("[\(exact("/headless-manual-endpointslices"))]", "[{name: headless-manual-endpointslices, port: 8080}]"),
            ].joined(separator: "\n")),
            serviceTypesYAML(),
        ]
        // Status, as upstream checks it before sending: what the builder makes of the very objects the
        // agent serves (the leader writes it; GatewayLeaderEnvtestTests checks the writing).
        let status = GatewayState.build(try FileSource.load(yaml: conformanceGatewayYAML(routes), file: "gateway.yaml").snapshot, options: GatewayOptions()).status
        func conditions(_ route: String, parent: String) -> [String] {
            let entry = status.routes[NamespacedName(namespace: "lab", name: route)]?.first { $0.parentRef.name == parent }
            return (entry?.conditions ?? []).map { "\($0.type)=\($0.status)/\($0.reason ?? "")" }
        }
        let resolved = ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"]
        for route in ["exact-matching", "matching", "header-matching", "path-matching-order", "matching-part1", "matching-part2", "request-header-modifier", "omitted-backendrefs"] {
            #expect(conditions(route, parent: "web") == resolved, "\(route)")
        }
        for (route, parents) in [
            ("multiple-gateways-shared-route", ["same-namespace", "all-namespaces"]), ("same-namespace-dedicated-route", ["same-namespace"]),
            ("all-namespaces-dedicated-route", ["all-namespaces"]), ("service-types", ["same-namespace"]),
        ] {
            for parent in parents { #expect(conditions(route, parent: parent) == resolved, "\(route) on \(parent)") }
        }
        for (route, reason) in [
            ("invalid-nonexistent-backend-ref", "BackendNotFound"), ("invalid-backend-ref-unknown-kind", "InvalidKind"), ("invalid-cross-namespace-backend-ref", "RefNotPermitted"),
        ] {
            #expect(conditions(route, parent: "web") == ["Accepted=True/Accepted", "ResolvedRefs=False/\(reason)"], "\(route)")
        }
        for gateway in ["web", "same-namespace", "all-namespaces"] {
            let accepted = status.gateways[NamespacedName(namespace: "lab", name: gateway)]?.conditions?.first
            #expect(accepted.map { "\($0.type)=\($0.status)" } == "Accepted=True", "Gateway \(gateway)")
        }
        try await withLab(prefix: "pwgc") { lab in
            let (agent, ask, client) = try await start(lab, yaml: conformanceGatewayYAML(routes), probe: "30880 GET exact.example.com /one", status: 200)
            defer { agent.kill() }
            /// `BACKEND PATH` as the backend saw it, or the status when no backend answered.
            func backend(_ port: Int, _ host: String, _ path: String, _ headers: String = "") async -> String {
                let answer = await ask("\(port) GET \(host) \(path)\(headers.isEmpty ? "" : " " + headers)")
                return answer.status == 200 ? answer.backend : answer.summary
            }
            func expect(_ host: String, _ cases: [(String, String, String)], port: Int = 30880, sourceLocation: SourceLocation = #_sourceLocation) async {
                for (path, headers, expected) in cases {
                    let got = await backend(port, host, path, headers)
                    let want = expected.hasPrefix("infra-") ? "\(expected) \(path)" : expected
                    #expect(got == want, "\(port) \(host)\(path) \(headers)", sourceLocation: sourceLocation)
                }
            }
            // The other Gateways' listeners open beside web's: wait for theirs too.
            for port in [30890, 30891] {
                await waitUntil(every: .milliseconds(100)) { await ask("\(port) GET multi.example.com /shared").status == 200 }
            }
            let (b1, b2, b3) = ("infra-backend-v1", "infra-backend-v2", "infra-backend-v3")
            let notFound = "404 -", serverError = "500 -"
            // HTTPRouteExactPathMatching.
            await expect("exact.example.com", [
                ("/one", "", b1), ("/two", "", b2), ("/", "", notFound), ("/one/example", "", notFound), ("/two/", "", notFound), ("/Two", "", notFound),
            ])
            // HTTPRouteMatching.
            await expect("matching.example.com", [
                ("/", "", b1), ("/example", "", b1), ("/", "Version:one", b1), ("/v2", "", b2), ("/v2/example", "", b2), ("/", "Version:two", b2),
                ("/v2/", "", b2), ("/v2example", "", b1), ("/foo/v2/example", "", b1),
            ])
            // HTTPRouteHeaderMatching.
            await expect("header.example.com", [
                ("/", "Version:one", b1), ("/", "Version:two", b2), ("/", "Version:two Color:orange", b1), ("/", "Version:two Color:blue", b2),
                ("/", "Color:orange", notFound), ("/", "Some-Other-Header:one", notFound), ("/", "Color:blue", b1), ("/", "Color:green", b1),
                ("/", "Color:red", b2), ("/", "Color:yellow", b2), ("/", "Color:purple", notFound),
            ])
            // HTTPRoutePathMatchOrder.
            await expect("order.example.com", [
                ("/match/exact/one", "", b3), ("/match/exact", "", b2), ("/match", "", b1), ("/match/prefix/one/any", "", b2),
                ("/match/prefix/any", "", b1), ("/match/any", "", b3),
            ])
            // HTTPRouteMatchingAcrossRoutes.
            await expect("example.com", [("/", "", b1), ("/example", "", b1), ("/example", "Version:one", b1), ("/v2", "", b2), ("/v2/example", "", b2), ("/", "Version:two", b2)])
            await expect("example.net", [("/example", "", b1), ("/v2", "", b1)])
            // HTTPRouteRequestHeaderModifier: what the backend got.
            func sent(_ path: String, _ headers: String) async -> Answer { await ask("30880 GET headers.example.com \(path) \(headers)") }
            let set1 = await sent("/set", "Some-Other-Header:val")
            #expect(set1.backend == "\(b1) /set" && set1.sent("some-other-header") == "val" && set1.sent("x-header-set") == "set-overwrites-values", "\(set1.echo)")
            let set2 = await sent("/set", "Some-Other-Header:val X-Header-Set:some-other-value")
            #expect(set2.sent("x-header-set") == "set-overwrites-values", "\(set2.echo)")
            let add1 = await sent("/add", "Some-Other-Header:val")
            #expect(add1.sent("x-header-add") == "add-appends-values" && add1.sent("some-other-header") == "val", "\(add1.echo)")
            let add2 = await sent("/add", "Some-Other-Header:val X-Header-Add:some-other-value")
            #expect(add2.sent("x-header-add") == "some-other-value,add-appends-values", "\(add2.echo)")
            let remove = await sent("/remove", "X-Header-Remove:val")
            #expect(remove.backend == "\(b1) /remove" && remove.sent("x-header-remove") == nil, "\(remove.echo)")
            let multiple = await sent("/multiple", "X-Header-Set-2:set-val-2 X-Header-Add-2:add-val-2 X-Header-Remove-2:remove-val-2 Another-Header:another-header-val")
            let multipleExpected: [String: String?] = [
                "x-header-set-1": "header-set-1", "x-header-set-2": "header-set-2", "x-header-add-1": "header-add-1", "x-header-add-2": "add-val-2,header-add-2",
                "x-header-add-3": "header-add-3", "another-header": "another-header-val", "x-header-remove-1": nil, "x-header-remove-2": nil,
            ]
            for (name, value) in multipleExpected { #expect(multiple.sent(name) == value, "/multiple \(name): \(multiple.echo)") }
            let caseless = await sent("/case-insensitivity", "x-header-set:original-val-set x-header-add:original-val-add x-header-remove:original-val-remove Another-Header:another-header-val")
            let caselessExpected: [String: String?] = ["x-header-set": "header-set", "x-header-add": "original-val-add,header-add", "another-header": "another-header-val", "x-header-remove": nil]
            for (name, value) in caselessExpected { #expect(caseless.sent(name) == value, "/case-insensitivity \(name): \(caseless.echo)") }
            // HTTPRouteNoBackendRefs.
            await expect("omitted.example.com", [("/forward", "", b1), ("/omitted-no-forward", "", serverError), ("/empty-no-forward", "", serverError)])
            // The invalid backendRefs: the route stays attached and answers 500.
            await expect("nonexistent.example.com", [("/", "", serverError)])
            await expect("unknownkind.example.com", [("/v2", "", serverError)])
            await expect("crossns.example.com", [("/", "", serverError)])
            // HTTPRouteMultipleGateways: the shared route on both, each Gateway's own route beside it.
            await expect("multi.example.com", [("/shared", "", b1), ("/", "", b2)], port: 30890)
            await expect("multi.example.com", [("/shared", "", b1), ("/", "", b3)], port: 30891)
            // HTTPRouteServiceTypes.
            await expect("types.example.com", [("/manual-endpointslices", "", b1), ("/headless", "", b1), ("/headless-manual-endpointslices", "", b1)], port: 30890)
            client.closeInput()
        }
    }

    /// HTTPRouteListenerHostnameMatching (four listeners on one port, routes by sectionName; its
    /// own Gateway, NodePort 30893), HTTPRouteHostnameIntersection (its two Gateways, NodePorts
    /// 30894 and 30895, status and traffic) and HTTPRouteWeight (70/30/0 on same-namespace, NodePort 30890:
    /// upstream checks the distribution with a tolerance; here 300 requests, each share within
    /// 0.1 of its weight — over 3.5 standard deviations — and none to the weight-0 backend).
    @Test("Hostnames and weights through the Gateway NodePorts: exact and wildcard listeners by sectionName; route and listener hostnames intersected; a 70/30/0 split")
    func hostnamesAndWeightsThroughNodePort() async throws {
        let listeners = [("listener-1", "bar.com"), ("listener-2", "foo.bar.com"), ("listener-3", "'*.bar.com'"), ("listener-4", "'*.foo.com'")]
        let hostnameGateway = KubeYAML.join([
            KubeYAML.gateway("httproute-listener-hostname-matching", namespace: "lab", listeners: listeners.map { KubeYAML.listener($0.0, port: 80, hostname: $0.1) }),
            KubeYAML.gatewayService("httproute-listener-hostname-matching", namespace: "lab", clusterIP: "10.96.0.93", ports: [
                .init(name: "http", port: 80, targetPort: 80, nodePort: 30893),
            ]),
        ])
        func sectionRoute(_ name: String, sections: [String], backend: String) -> String {
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: \(name), namespace: lab}
            spec:
              parentRefs: [\(sections.map { "{name: httproute-listener-hostname-matching, namespace: lab, sectionName: \($0)}" }.joined(separator: ", "))]
              rules: [{backendRefs: [{name: \(backend), port: 80}]}]

            """
        }
        let routes = [
            hostnameGateway,
            sectionRoute("backend-v1", sections: ["listener-1"], backend: "infra-backend-v1"),
            sectionRoute("backend-v2", sections: ["listener-2"], backend: "infra-backend-v2"),
            sectionRoute("backend-v3", sections: ["listener-3", "listener-4"], backend: "infra-backend-v3"),
            KubeYAML.gateway("httproute-hostname-intersection", namespace: "lab", listeners: [
                KubeYAML.listener("listener-1", port: 80, hostname: "very.specific.com"), KubeYAML.listener("listener-2", port: 80, hostname: "'*.wildcard.io'"),
                KubeYAML.listener("listener-3", port: 80, hostname: "'*.anotherwildcard.io'"),
            ]),
            KubeYAML.gateway("httproute-hostname-intersection-all", namespace: "lab", listeners: [KubeYAML.listener("listener-1", port: 80)]),
            KubeYAML.gatewayService("httproute-hostname-intersection", namespace: "lab", clusterIP: "10.96.0.94", ports: [.init(name: "http", port: 80, targetPort: 80, nodePort: 30894)]),
            KubeYAML.gatewayService("httproute-hostname-intersection-all", namespace: "lab", clusterIP: "10.96.0.95", ports: [.init(name: "http", port: 80, targetPort: 80, nodePort: 30895)]),
            intersectionRoute("specific-host-matches-listener-specific-host", hosts: ["non.matching.com", "'*.nonmatchingwildcard.io'", "very.specific.com"], path: "/s1", backend: "infra-backend-v1"),
            intersectionRoute("specific-host-matches-listener-wildcard-host", hosts: ["non.matching.com", "wildcard.io", "foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"], path: "/s2", backend: "infra-backend-v2"),
            intersectionRoute("wildcard-host-matches-listener-specific-host", hosts: ["non.matching.com", "'*.specific.com'"], path: "/s3", backend: "infra-backend-v3"),
            intersectionRoute("wildcard-host-matches-listener-wildcard-host", hosts: ["'*.anotherwildcard.io'"], path: "/s4", backend: "infra-backend-v1"),
            intersectionRoute("no-intersecting-hosts", hosts: ["specific.but.wrong.com", "wildcard.io"], path: "/s5", backend: "infra-backend-v2"),
            httpRoute("httproute-hostname-intersection-all", parents: ["httproute-hostname-intersection-all"], hosts: ["first.com", "sub.first.com", "second.com", "sub.second.com"],
                      rules: "  - backendRefs: [{name: infra-backend-v2, port: 80}]"),
            upstreamGatewaysYAML,
            httpRoute("weighted-backends", parents: ["same-namespace"], rules: """
                  - backendRefs: [{name: infra-backend-v1, port: 80, weight: 70}, {name: infra-backend-v2, port: 80, weight: 30}, {name: infra-backend-v3, port: 80, weight: 0}]
                """),
        ]
        let status = GatewayState.build(try FileSource.load(yaml: conformanceGatewayYAML(routes), file: "gateway.yaml").snapshot, options: GatewayOptions()).status
        for route in [
            "backend-v1", "backend-v2", "backend-v3", "weighted-backends", "specific-host-matches-listener-specific-host", "specific-host-matches-listener-wildcard-host",
            "wildcard-host-matches-listener-specific-host", "wildcard-host-matches-listener-wildcard-host", "httproute-hostname-intersection-all",
        ] {
            let parents = status.routes[NamespacedName(namespace: "lab", name: route)] ?? []
            #expect(!parents.isEmpty && parents.allSatisfy { p in
                p.conditions?.map { "\($0.type)=\($0.status)" } == ["Accepted=True", "ResolvedRefs=True"]
            }, "\(route): \(parents)")
        }
        // HTTPRouteHostnameIntersection's status: a route without a common hostname is not accepted,
        // and only accepted routes count in attachedRoutes.
        let noIntersection = status.routes[NamespacedName(namespace: "lab", name: "no-intersecting-hosts")]?.first?.conditions?.first
        #expect(noIntersection.map { "\($0.type)=\($0.status)/\($0.reason ?? "")" } == "Accepted=False/NoMatchingListenerHostname")
        let intersection = status.gateways[NamespacedName(namespace: "lab", name: "httproute-hostname-intersection")]?.listeners ?? []
        #expect(intersection.map { "\($0.name) \($0.attachedRoutes)" } == ["listener-1 2", "listener-2 1", "listener-3 1"])
        try await withLab(prefix: "pwgc") { lab in
            let (agent, ask, client) = try await start(lab, yaml: conformanceGatewayYAML(routes), probe: "30893 GET bar.com /", status: 200)
            defer { agent.kill() }
            for port in [30894, 30895] {
                await waitUntil(every: .milliseconds(100)) { await ask("\(port) GET first.com /").status != 0 }
            }
            // HTTPRouteHostnameIntersection.
            let intersections: [(Int, String, String, String)] = [
                (30894, "very.specific.com", "/s1", "infra-backend-v1"), (30894, "very.specific.com:1234", "/s1", "infra-backend-v1"),
                (30894, "non.matching.com", "/s1", "404 -"), (30894, "foo.nonmatchingwildcard.io", "/s1", "404 -"), (30894, "foo.wildcard.io", "/s1", "404 -"),
                (30894, "very.specific.com", "/non-matching-prefix", "404 -"),
                (30894, "foo.wildcard.io", "/s2", "infra-backend-v2"), (30894, "bar.wildcard.io", "/s2", "infra-backend-v2"), (30894, "foo.bar.wildcard.io", "/s2", "infra-backend-v2"),
                (30894, "non.matching.com", "/s2", "404 -"), (30894, "wildcard.io", "/s2", "404 -"), (30894, "very.specific.com", "/s2", "404 -"),
                (30894, "foo.wildcard.io", "/non-matching-prefix", "404 -"),
                (30894, "very.specific.com", "/s3", "infra-backend-v3"), (30894, "non.matching.com", "/s3", "404 -"), (30894, "foo.specific.com", "/s3", "404 -"),
                (30894, "foo.wildcard.io", "/s3", "404 -"),
                (30894, "foo.anotherwildcard.io", "/s4", "infra-backend-v1"), (30894, "bar.anotherwildcard.io", "/s4", "infra-backend-v1"),
                (30894, "foo.bar.anotherwildcard.io", "/s4", "infra-backend-v1"), (30894, "anotherwildcard.io", "/s4", "404 -"), (30894, "foo.wildcard.io", "/s4", "404 -"),
                (30894, "very.specific.com", "/s4", "404 -"), (30894, "foo.anotherwildcard.io", "/non-matching-prefix", "404 -"),
                (30894, "specific.but.wrong.com", "/s5", "404 -"), (30894, "wildcard.io", "/s5", "404 -"),
                (30895, "first.com", "/", "infra-backend-v2"), (30895, "sub.first.com", "/", "infra-backend-v2"), (30895, "second.com", "/", "infra-backend-v2"),
                (30895, "sub.second.com", "/", "infra-backend-v2"),
            ]
            for (port, host, path, expected) in intersections {
                let answer = await ask("\(port) GET \(host) \(path)")
                let got = answer.status == 200 ? answer.echo["name"] as? String ?? "?" : answer.summary
                #expect(got == expected, "\(port) Host \(host) \(path)")
            }
            await waitUntil(every: .milliseconds(100)) { await ask("30890 GET weights.example.com /").status == 200 }
            let hosts: [(String, String)] = [
                ("bar.com", "infra-backend-v1 /"), ("foo.bar.com", "infra-backend-v2 /"), ("baz.bar.com", "infra-backend-v3 /"),
                ("boo.bar.com", "infra-backend-v3 /"), ("multiple.prefixes.bar.com", "infra-backend-v3 /"), ("multiple.prefixes.foo.com", "infra-backend-v3 /"),
                ("foo.com", "404 -"), ("no.matching.host", "404 -"),
            ]
            for (host, expected) in hosts {
                let answer = await ask("30893 GET \(host) /")
                #expect((answer.status == 200 ? answer.backend : answer.summary) == expected, "Host \(host)")
            }
            var counts: [String: Int] = [:]
            let total = 300
            for i in 0..<total {
                // Upstream adds entropy to each request; a new connection per request does the rest.
                let answer = await ask("30890 GET weights.example.com /?entropy=\(i)")
                counts[answer.status == 200 ? (answer.echo["name"] as? String ?? "?") : answer.summary, default: 0] += 1
            }
            print("HTTPRouteWeight: \(counts.sorted { $0.key < $1.key })")
            let v1 = Double(counts["infra-backend-v1"] ?? 0) / Double(total), v2 = Double(counts["infra-backend-v2"] ?? 0) / Double(total)
            #expect(abs(v1 - 0.7) <= 0.1 && abs(v2 - 0.3) <= 0.1, "\(counts)")
            #expect(counts["infra-backend-v3"] == nil && (counts["infra-backend-v1"] ?? 0) + (counts["infra-backend-v2"] ?? 0) == total, "\(counts)")
            client.closeInput()
        }
    }

    /// HTTPRouteBackendProtocolWebSocket: the upstream route `backend-protocol-ws` on
    /// `same-namespace` (NodePort 30890) to a Service port with `appProtocol: kubernetes.io/ws`
    /// (8082 `third-port` to 3000, as upstream's infra-backend-v1 has it; here a Service of its own,
    /// infra-backend-ws on be1, so the other tests' backends stay as they are). A WebSocket dialled
    /// at `ws://<gateway>/ws` with the upstream Origin gets 101 and its text and binary frames
    /// echoed; status from the builder on the same objects.
    @Test("WebSocket through the Gateway NodePort to a backend port with appProtocol kubernetes.io/ws: 101, text and binary frames echoed")
    func webSocketBackendThroughNodePort() async throws {
        let backend = """
            apiVersion: v1
            kind: Service
            metadata: {name: infra-backend-ws, namespace: lab}
            spec:
              clusterIP: 10.96.0.78
              ports: [{name: third-port, protocol: TCP, appProtocol: kubernetes.io/ws, port: 8082, targetPort: 3000}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: infra-backend-ws-1
              namespace: lab
              labels: {kubernetes.io/service-name: infra-backend-ws}
            addressType: IPv4
            ports: [{name: third-port, port: 3000, protocol: TCP, appProtocol: kubernetes.io/ws}]
            endpoints: [{addresses: ["\(Lab.backendIPs["be1"]!)"], conditions: {ready: true}, nodeName: lab-node}]

            """
        let yaml = conformanceGatewayYAML([
            upstreamGatewaysYAML, backend,
            httpRoute("backend-protocol-ws", parents: ["same-namespace"], rules: "  - backendRefs: [{name: infra-backend-ws, port: 8082}]"),
        ])
        let status = GatewayState.build(try FileSource.load(yaml: yaml, file: "gateway.yaml").snapshot, options: GatewayOptions()).status
        let parents = status.routes[NamespacedName(namespace: "lab", name: "backend-protocol-ws")] ?? []
        #expect(parents.map { ($0.conditions ?? []).map { "\($0.type)=\($0.status)" } } == [["Accepted=True", "ResolvedRefs=True"]])
        try await withLab(prefix: "pwgc") { lab in
            try ConformanceScripts.webSocketBackend.write(toFile: lab.scripts + "/wsecho.py", atomically: true, encoding: .utf8)
            try ConformanceScripts.webSocketClient.write(toFile: lab.scripts + "/wsclient.py", atomically: true, encoding: .utf8)
            let echo = try await onDedicatedThread { try lab.spawn(in: "\(lab.prefix)-be1", [Lab.python, lab.scripts + "/wsecho.py", "infra-backend-ws", "3000"]) }
            #expect(await echo.line() == "ready")
            let (agent, ask, client) = try await start(lab, yaml: yaml, probe: "30890 GET gateway /ws", status: 200)
            defer { agent.kill() }
            #expect(await ask("30890 GET gateway /ws").echo["name"] as? String == "infra-backend-ws", "a plain request reaches the WebSocket backend")
            let ws = try await onDedicatedThread { try lab.spawn(in: lab.client, [Lab.python, lab.scripts + "/wsclient.py", Lab.nodeIP]) }
            // The upstream test dials twice in a row at least (its consecutive successes); three here.
            for attempt in 1...3 {
                ws.send("30890 gateway /ws ws://gateway/HTTPRouteBackendProtocolWebSocket")
                let line = await ws.line() ?? "eof"
                let answer = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
                #expect(answer["status"] as? Int == 101 && answer["acceptOK"] as? Bool == true, "attempt \(attempt): \(line)")
                #expect(answer["text"] as? String == "1 Websocket Support!", "attempt \(attempt): \(line)")
                #expect(answer["binary"] as? String == "2 1,2,3,4,5,6,7", "attempt \(attempt): \(line)")
                #expect(answer["large"] as? Bool == true && answer["close"] as? Int == 8, "attempt \(attempt): \(line)")
            }
            ws.closeInput()
            client.closeInput()
        }
    }
}

// MARK: ListenerSet (GEP-1713)

private func lsListener(_ name: String, port: Int = 80, host: String? = nil, from: String = "All") -> String {
    "  - {name: \(name), port: \(port), protocol: HTTP, hostname: \(host ?? name + ".com"), allowedRoutes: {namespaces: {from: \(from)}}}"
}
private func lsListenerSet(_ name: String, namespace: String = "lab", gateway: String, listeners: [String]) -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: ListenerSet
    metadata: {name: \(name), namespace: \(namespace)}
    spec:
      parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: \(gateway), namespace: lab}
      listeners:
    \(listeners.joined(separator: "\n"))

    """
}
private func lsRoute(_ name: String, namespace: String = "lab", parents: String, path: String, backend: String) -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: \(name), namespace: \(namespace)}
    spec:
      parentRefs: \(parents)
      rules: [{matches: [{path: {type: PathPrefix, value: \(path)}}], backendRefs: [{name: \(backend), namespace: lab, port: 80}]}]

    """
}

extension GatewayConformanceE2ETests {
    /// ListenerSetHTTPRouting with real packets: two ListenerSets on a Gateway that allows all, routes
    /// attached through the Gateway, the sets and their sections; each host answers only the routes
    /// of its own listener (a Gateway parentRef never reaches a set's listener). A set's listener on
    /// a port the Gateway lacks (8090) is served on that port's NodePort; a set naming a Gateway that
    /// allows none (ListenerSetDefaultNotAllowed) is not served.
    @Test("ListenerSet routing through the Gateway NodePorts: routes by Gateway, ListenerSet and sectionName; a set's own port; a set not allowed is not served")
    func listenerSetRoutingThroughNodePort() async throws {
        let set = "kind: ListenerSet, group: gateway.networking.k8s.io"
        let routes = [
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: ls-gw, namespace: lab}
            spec:
              gatewayClassName: portway
              allowedListeners: {namespaces: {from: All}}
              listeners:
            \(lsListener("gateway-listener-1"))
            \(lsListener("gateway-listener-2"))

            """,
            KubeYAML.gatewayService("ls-gw", namespace: "lab", clusterIP: "10.96.0.70", ports: [
                .init(name: "port-80", port: 80, targetPort: 80, nodePort: 30870), .init(name: "port-8090", port: 8090, targetPort: 8090, nodePort: 30871),
            ]),
            lsListenerSet("ls-1", gateway: "ls-gw", listeners: [lsListener("ls-1-listener-1"), lsListener("ls-1-listener-2"), lsListener("ls-1-own-port", port: 8090)]),
            lsListenerSet("ls-2", gateway: "ls-gw", listeners: [lsListener("ls-2-listener-1"), lsListener("ls-2-listener-2")]),
            lsListenerSet("not-allowed", gateway: "web", listeners: [lsListener("not-allowed-listener")]),
            lsRoute("attaches-to-all", parents: "[{name: ls-gw}, {\(set), name: ls-1}, {\(set), name: ls-2}, {\(set), name: not-allowed}]", path: "/route", backend: "infra-backend-v1"),
            lsRoute("gateway-route", parents: "[{name: ls-gw}]", path: "/gateway-route", backend: "infra-backend-v2"),
            lsRoute("gateway-section-route", parents: "[{name: ls-gw, sectionName: gateway-listener-1}]", path: "/gateway-section-route", backend: "infra-backend-v3"),
            lsRoute("ls-1-route", parents: "[{\(set), name: ls-1}]", path: "/ls-1-route", backend: "infra-backend-v2"),
            lsRoute("ls-1-section-route", parents: "[{\(set), name: ls-1, sectionName: ls-1-listener-1}]", path: "/ls-1-section-route", backend: "infra-backend-v3"),
            lsRoute("ls-2-route", parents: "[{\(set), name: ls-2}]", path: "/ls-2-route", backend: "infra-backend-v2"),
        ]
        let yaml = conformanceGatewayYAML(routes)
        // Status, from the same objects (the envtest suite checks it on the real API server).
        let state = GatewayState.build(try FileSource.load(yaml: yaml, file: "gateway.yaml").snapshot, options: GatewayOptions())
        #expect(state.status.gateways[NamespacedName(namespace: "lab", name: "ls-gw")]?.attachedListenerSets == 2)
        #expect(state.status.listenerSets[NamespacedName(namespace: "lab", name: "not-allowed")]?.conditions?.first?.reason == "NotAllowed")
        try await withLab(prefix: "pwls") { lab in
            let (agent, ask, client) = try await start(lab, yaml: yaml, probe: "30870 GET gateway-listener-1.com /route", status: 200)
            defer { agent.kill() }
            let hosts = ["gateway-listener-1.com", "gateway-listener-2.com", "ls-1-listener-1.com", "ls-1-listener-2.com", "ls-2-listener-1.com", "ls-2-listener-2.com"]
            let expected: [(path: String, served: Set<Int>, backend: String)] = [
                ("/route", [0, 1, 2, 3, 4, 5], "infra-backend-v1"),
                ("/gateway-route", [0, 1], "infra-backend-v2"),
                ("/gateway-section-route", [0], "infra-backend-v3"),
                ("/ls-1-route", [2, 3], "infra-backend-v2"),
                ("/ls-1-section-route", [2], "infra-backend-v3"),
                ("/ls-2-route", [4, 5], "infra-backend-v2"),
            ]
            for (path, served, backend) in expected {
                for (i, host) in hosts.enumerated() {
                    let answer = await ask("30870 GET \(host) \(path)")
                    let got = "\(answer.status) \(answer.echo["name"] as? String ?? "-")"
                    #expect(got == (served.contains(i) ? "200 \(backend)" : "404 -"), "\(host)\(path)")
                }
            }
            // The set's listener on its own port, through that port's NodePort.
            await waitUntil(every: .milliseconds(100)) { await ask("30871 GET ls-1-own-port.com /route").status == 200 }
            #expect("\(await ask("30871 GET ls-1-own-port.com /route").status)" == "200")
            #expect(await ask("30871 GET ls-1-own-port.com /ls-1-route").status == 200)
            // Not allowed by `web` (no allowedListeners): its host is not served there.
            #expect(await ask("30880 GET not-allowed-listener.com /route").status == 404)
            client.closeInput()
        }
    }

    /// ListenerSetDualParentRefIndependence, ListenerSetGatewayParentSectionNameNotFound and
    /// ListenerSetAllowedRoutesNamespaces with real packets: each parentRef judged on its own (a
    /// Gateway parentRef cannot name a set's listener), and a set listener's `allowedRoutes`
    /// (`Same` is the ListenerSet's namespace; `Selector` selects route namespaces by label).
    @Test("ListenerSet parentRefs and allowedRoutes through the Gateway NodePort: dual parentRefs, a Gateway parentRef naming a set's section, All/Same/Selector and a set in another namespace")
    func listenerSetParentRefsAndAllowedRoutesThroughNodePort() async throws {
        let set = "kind: ListenerSet, group: gateway.networking.k8s.io"
        let (allowedNS, notAllowedNS, crossNS) = ("gateway-api-routes-allowed-ns", "gateway-api-routes-not-allowed-ns", "gateway-api-ls-cross-ns")
        let routes = [
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: ls-gw2, namespace: lab}
            spec:
              gatewayClassName: portway
              allowedListeners: {namespaces: {from: All}}
              listeners:
            \(lsListener("gw-dual-parentref-listener", host: "gw-dual.com", from: "Same"))
            \(lsListener("gw-listener", host: "gw-section.com", from: "Same"))
            \(lsListener("gateway-listener"))

            """,
            KubeYAML.gatewayService("ls-gw2", namespace: "lab", clusterIP: "10.96.0.72", ports: [.init(name: "port-80", port: 80, targetPort: 80, nodePort: 30872)]),
            KubeYAML.namespace(allowedNS, labels: ["allowed": "ns"]), KubeYAML.namespace(notAllowedNS), KubeYAML.namespace(crossNS),
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: ReferenceGrant
            metadata: {name: routes-to-lab, namespace: lab}
            spec:
              from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: \(allowedNS)}, {group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: \(notAllowedNS)}, {group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: \(crossNS)}]
              to: [{group: "", kind: Service}]

            """,
            lsListenerSet("ls-dual-parentref", gateway: "ls-gw2", listeners: [lsListener("ls-dual-parentref-listener", host: "ls-dual.com", from: "Same")]),
            lsListenerSet("listenerset-section-name", gateway: "ls-gw2", listeners: [lsListener("ls-only-listener", host: "ls-section-name.com", from: "Same")]),
            lsListenerSet("ls-allowed-routes", gateway: "ls-gw2", listeners: [
                lsListener("allowed-routes-all", host: "allowed-routes-all.com"), lsListener("allowed-routes-same", host: "allowed-routes-same.com", from: "Same"),
                lsListener("allowed-routes-selector", host: "allowed-routes-selector.com", from: "Selector, selector: {matchLabels: {allowed: ns}}"),
            ]),
            lsListenerSet("ls-cross-ns", namespace: crossNS, gateway: "ls-gw2", listeners: [lsListener("cross-ns-same", host: "cross-ns-same.com", from: "Same")]),
            lsRoute("route-dual-parentref-both", parents: "[{name: ls-gw2}, {\(set), name: ls-dual-parentref}]", path: "/dualboth", backend: "infra-backend-v1"),
            lsRoute(
                "route-dual-parentref-one", parents: "[{name: ls-gw2, sectionName: ls-dual-parentref-listener}, {\(set), name: ls-dual-parentref, sectionName: ls-dual-parentref-listener}]",
                path: "/dualone", backend: "infra-backend-v2"),
            lsRoute("route-via-listenerset", parents: "[{\(set), name: listenerset-section-name, sectionName: ls-only-listener}]", path: "/goodsection", backend: "infra-backend-v1"),
            lsRoute("route-via-gateway", parents: "[{name: ls-gw2, sectionName: ls-only-listener}]", path: "/badsection", backend: "infra-backend-v2"),
            lsRoute("route-in-same-namespace", parents: "[{\(set), name: ls-allowed-routes}]", path: "/route-in-same-namespace", backend: "infra-backend-v1"),
            lsRoute("route-in-selected-namespace", namespace: allowedNS, parents: "[{\(set), name: ls-allowed-routes, namespace: lab}]", path: "/route-in-selected-namespace", backend: "infra-backend-v2"),
            lsRoute("route-not-in-selected-namespace", namespace: notAllowedNS, parents: "[{\(set), name: ls-allowed-routes, namespace: lab}]", path: "/route-not-in-selected-namespace", backend: "infra-backend-v3"),
            lsRoute("route-in-listenerset-namespace", namespace: crossNS, parents: "[{\(set), name: ls-cross-ns}]", path: "/route-in-listenerset-namespace", backend: "infra-backend-v1"),
            lsRoute("route-in-gateway-namespace", parents: "[{\(set), name: ls-cross-ns, namespace: \(crossNS)}]", path: "/route-in-gateway-namespace", backend: "infra-backend-v1"),
        ]
        let yaml = conformanceGatewayYAML(routes)
        // Status, from the same objects.
        let state = GatewayState.build(try FileSource.load(yaml: yaml, file: "gateway.yaml").snapshot, options: GatewayOptions())
        func accepted(_ route: String, namespace: String = "lab", parent: String) -> String {
            let entry = state.status.routes[NamespacedName(namespace: namespace, name: route)]?.first { $0.parentRef.name == parent }
            let condition = entry?.conditions?.first { $0.type == "Accepted" }
            return "\(condition?.status ?? "-")/\(condition?.reason ?? "-")"
        }
        #expect(accepted("route-dual-parentref-both", parent: "ls-gw2") == "True/Accepted")
        #expect(accepted("route-dual-parentref-both", parent: "ls-dual-parentref") == "True/Accepted")
        #expect(accepted("route-dual-parentref-one", parent: "ls-gw2") == "False/NoMatchingParent")
        #expect(accepted("route-dual-parentref-one", parent: "ls-dual-parentref") == "True/Accepted")
        #expect(accepted("route-via-gateway", parent: "ls-gw2") == "False/NoMatchingParent")
        #expect(accepted("route-via-listenerset", parent: "listenerset-section-name") == "True/Accepted")
        #expect(accepted("route-in-gateway-namespace", parent: "ls-cross-ns") == "False/NotAllowedByListeners")
        #expect(accepted("route-in-listenerset-namespace", namespace: crossNS, parent: "ls-cross-ns") == "True/Accepted")
        let attached = (state.status.listenerSets[NamespacedName(namespace: "lab", name: "ls-allowed-routes")]?.listeners ?? []).map { "\($0.name)=\($0.attachedRoutes)" }
        #expect(attached == ["allowed-routes-all=3", "allowed-routes-same=1", "allowed-routes-selector=1"])
        #expect(state.status.listenerSets[NamespacedName(namespace: "lab", name: "ls-dual-parentref")]?.listeners?.first?.attachedRoutes == 2)
        #expect(state.status.gateways[NamespacedName(namespace: "lab", name: "ls-gw2")]?.attachedListenerSets == 4)
        try await withLab(prefix: "pwlr") { lab in
            let (agent, ask, client) = try await start(lab, yaml: yaml, probe: "30872 GET gw-dual.com /dualboth", status: 200)
            defer { agent.kill() }
            let cases: [(host: String, path: String, expected: String)] = [
                ("gw-dual.com", "/dualboth", "200 infra-backend-v1"), ("ls-dual.com", "/dualboth", "200 infra-backend-v1"),
                ("ls-dual.com", "/dualone", "200 infra-backend-v2"), ("gw-dual.com", "/dualone", "404 -"),
                ("ls-section-name.com", "/goodsection", "200 infra-backend-v1"), ("gw-section.com", "/badsection", "404 -"),
                ("allowed-routes-all.com", "/route-in-same-namespace", "200 infra-backend-v1"),
                ("allowed-routes-all.com", "/route-in-selected-namespace", "200 infra-backend-v2"),
                ("allowed-routes-all.com", "/route-not-in-selected-namespace", "200 infra-backend-v3"),
                ("allowed-routes-same.com", "/route-in-same-namespace", "200 infra-backend-v1"),
                ("allowed-routes-same.com", "/route-in-selected-namespace", "404 -"),
                ("allowed-routes-same.com", "/route-not-in-selected-namespace", "404 -"),
                ("allowed-routes-selector.com", "/route-in-same-namespace", "404 -"),
                ("allowed-routes-selector.com", "/route-in-selected-namespace", "200 infra-backend-v2"),
                ("allowed-routes-selector.com", "/route-not-in-selected-namespace", "404 -"),
                ("cross-ns-same.com", "/route-in-listenerset-namespace", "200 infra-backend-v1"),
                ("cross-ns-same.com", "/route-in-gateway-namespace", "404 -"),
            ]
            for (host, path, expected) in cases {
                let answer = await ask("30872 GET \(host) \(path)")
                #expect("\(answer.status) \(answer.echo["name"] as? String ?? "-")" == expected, "\(host)\(path)")
            }
            client.closeInput()
        }
    }
}
