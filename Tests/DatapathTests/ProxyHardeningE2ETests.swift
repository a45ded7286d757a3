import Foundation
import Glibc
import Testing

/// Scripts for the hardening suite (written into the lab's script directory).
private enum HardeningScripts {
    /// `echobackend.py NAME PORT`: answers every request with `NAME METHOD PATH` and, as JSON on the
    /// second line, the headers it received; `GET /__seen` lists the request lines seen so far.
    static let backend = #"""
        import http.server, json, sys, threading
        name, port = sys.argv[1], int(sys.argv[2])
        seen, lock = [], threading.Lock()
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def answer(self):
                if self.path == "/__seen":
                    with lock:
                        body = json.dumps(seen).encode()
                else:
                    with lock:
                        seen.append(f"{self.command} {self.path}")
                    length = int(self.headers.get("Content-Length", "0") or "0")
                    if length:
                        self.rfile.read(length)
                    body = (f"{name} {self.command} {self.path}\n" + json.dumps({k.lower(): v for k, v in self.headers.items()})).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = do_POST = answer
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
        print("ready", flush=True)
        server.serve_forever()
        """#

    /// `raw.py HOST PORT SOURCE`: reads one request per stdin line (Python string escapes, e.g.
    /// `\r\n`), sends it on a new connection from SOURCE and prints `STATUS FIRST-BODY-LINE` and the
    /// body's second line, or `timeout` / `closed`.
    static let raw = #"""
        import codecs, socket, sys
        host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        def one(request):
            s = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
            s.sendall(request)
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    head, sep, body = data.partition(b"\r\n\r\n")
                    if sep:
                        length = [int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
                        if length and len(body) >= length[0]:
                            break
            except socket.timeout:
                return "timeout", ""
            finally:
                s.close()
            if not data:
                return "closed", ""
            head, _, body = data.partition(b"\r\n\r\n")
            lines = body.decode("latin-1").split("\n")
            return head.split(b" ")[1].decode() + " " + lines[0], lines[1] if len(lines) > 1 else ""
        for line in sys.stdin:
            try:
                first, second = one(codecs.decode(line.rstrip("\n"), "unicode_escape").encode("latin-1"))
            except Exception as e:
                first, second = f"error {type(e).__name__}", ""
            print(first, flush=True)
            print(second, flush=True)
        """#

    /// `flood.py HOST PORT SOURCE N`: opens N TCP connections from SOURCE without sending a byte
    /// (at most 32 handshakes in flight, so the listener's queue never overflows and every connection
    /// the client counts is one the node holds), prints `opened K` once every attempt connected or
    /// failed, and holds them until stdin closes.
    static let flood = #"""
        import resource, select, socket, sys, time
        host, port, source, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        pending, opened, started = {}, [], 0
        poller = select.poll()
        deadline = time.time() + 60
        while (started < n or pending) and time.time() < deadline:
            while started < n and len(pending) < 32:
                s = socket.socket()
                s.setblocking(False)
                s.bind((source, 0))
                s.connect_ex((host, port))
                pending[s.fileno()] = s
                poller.register(s, select.POLLOUT)
                started += 1
            for fd, _ in poller.poll(1000):
                s = pending.pop(fd, None)
                if s is None:
                    continue
                poller.unregister(fd)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    opened.append(s)
                else:
                    s.close()
        print(f"opened {len(opened)}", flush=True)
        sys.stdin.read()
        """#
}

private let hardeningReady = LabPrerequisites.readyWithAgent("ProxyHardeningE2ETests", commands: ["nsenter", "prlimit"])

/// The Gateway `web` (port 80, NodePort 30880): paths.example.com sends `/admin` to A and the rest to
/// B, echo.example.com sends everything to B; and a plain L4 NodePort Service `plain` (30090) to A.
private let hardeningYAML = KubeYAML.join(
    webGatewayYAML,
    KubeYAML.httpRoute("paths", namespace: "lab", hostnames: ["paths.example.com"], rules: [
        KubeYAML.rule("a", matches: "[{path: {type: PathPrefix, value: /admin}}]"), KubeYAML.rule("b"),
    ]),
    KubeYAML.httpRoute("echo", namespace: "lab", hostnames: ["echo.example.com"], rules: [KubeYAML.rule("b")]),
    KubeYAML.service("plain", namespace: "lab", type: "NodePort", clusterIP: "10.96.0.90", ports: [.init(port: 80, targetPort: 8081, nodePort: 30090)]),
    KubeYAML.endpointSlice(
        "plain-1", namespace: "lab", service: "plain", ports: [.init(port: 8081)], endpoints: [.init(Lab.backendIPs["be1"]!, nodeName: "lab-node")]))

/// Issue 16 with real packets: a client outside the node sends hostile requests and floods
/// connections through the Gateway NodePort, to the real agent binary (file mode, datapath on).
@Suite(.serialized, .enabled(if: hardeningReady, "needs root, the netns lab prerequisites, util-linux and the portway binary"))
struct ProxyHardeningE2ETests {
    /// Other client addresses on the client's LAN (other clients to the proxy's limits); each flood
    /// uses its own, so no port of the second meets a TIME_WAIT the node kept from the first.
    static let floodIP = "192.0.2.11"
    static let secondFloodIP = "192.0.2.12"

    /// Backends A (be1) and B (be2), the YAML directory, and the raw client; returns the directory.
    private func setUp(_ lab: Lab) async throws -> String {
        try HardeningScripts.backend.write(toFile: lab.scripts + "/echobackend.py", atomically: true, encoding: .utf8)
        try HardeningScripts.raw.write(toFile: lab.scripts + "/raw.py", atomically: true, encoding: .utf8)
        try HardeningScripts.flood.write(toFile: lab.scripts + "/flood.py", atomically: true, encoding: .utf8)
        for (name, ns) in [("A", "\(lab.prefix)-be1"), ("B", "\(lab.prefix)-be2")] {
            let backend = try await onDedicatedThread { try lab.spawn(in: ns, [Lab.python, lab.scripts + "/echobackend.py", name, "8081"]) }
            #expect(await backend.line() == "ready")
        }
        for address in [Self.floodIP, Self.secondFloodIP] {
            _ = try await onDedicatedThread { try run(["ip", "-n", lab.client, "addr", "add", "\(address)/24", "dev", "eth0"]) }
        }
        let dir = lab.scripts + "/yaml"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try backendYAML(service: "a", clusterIP: "10.96.0.81", address: Lab.backendIPs["be1"]!).write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        try backendYAML(service: "b", clusterIP: "10.96.0.82", address: Lab.backendIPs["be2"]!).write(toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
        try hardeningYAML.write(toFile: dir + "/gateway.yaml", atomically: true, encoding: .utf8)
        return dir
    }

    /// A raw-request client from `source` to nodeIP:`port`.
    private final class RawRequests: Sendable {
        let child: Child
        init(_ lab: Lab, port: Int, source: String = Lab.clientIP) async throws {
            child = try await onDedicatedThread { try lab.spawn(in: lab.client, [Lab.python, lab.scripts + "/raw.py", Lab.nodeIP, String(port), source]) }
        }
        /// `STATUS BACKEND METHOD PATH` (or `timeout` / `closed`) and the headers the backend got.
        func send(_ request: String) async -> (line: String, headers: [String: String]) {
            let escaped = request.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
            child.send(escaped)
            let line = await child.line() ?? "eof"
            let json = await child.line() ?? ""
            let headers = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: String] ?? [:]
            return (line, headers)
        }
    }

    /// Until `GET / Host: echo.example.com` is answered by B through the Gateway NodePort.
    private func waitForGateway(_ client: RawRequests) async throws -> String {
        var answer = ""
        await waitUntil(every: .milliseconds(100)) {
            answer = await client.send("GET / HTTP/1.1\r\nHost: echo.example.com\r\n\r\n").line
            return answer.hasPrefix("200 B")
        }
        return answer
    }

    @Test("items 4–8 through the Gateway NodePort: forged Host refused, absolute-form routed and forwarded alike, paths normalized before routing, unsafe characters encoded, bad Transfer-Encoding never forwarded")
    func hostileRequests() async throws {
        try await withLab(prefix: "pwhd") { lab in
            let dir = try await setUp(lab)
            let agent = try await startAgent(lab, dir: dir)
            defer { agent.kill() }
            let client = try await RawRequests(lab, port: 30880)
            #expect(try await waitForGateway(client) == "200 B GET /")

            // 4. Host forgery: refused, nothing forwarded.
            for host in [#"echo.example.com:", for=6.6.6.6;host="trusted.example.com"#, "evil@echo.example.com", "echo.example.com:abc"] {
                #expect(await client.send("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n").line.hasPrefix("400"), "Host: \(host)")
            }
            // 5. Absolute-form: the authority routes and is what the backend is told.
            let absolute = await client.send("GET http://paths.example.com/admin HTTP/1.1\r\nHost: echo.example.com\r\n\r\n")
            #expect(absolute.line == "200 A GET /admin")
            #expect(absolute.headers["host"] == "paths.example.com")
            #expect(absolute.headers["x-forwarded-host"] == "paths.example.com")
            #expect(absolute.headers["forwarded"] == #"for=\#(Lab.clientIP);host="paths.example.com";proto=http"#)
            // 6. Normalized before matching: these reach the /admin rule (A), normalized; escaped slashes are 400.
            for raw in ["/./admin", "//admin", "/%61dmin", "/public/../admin"] {
                #expect(await client.send("GET \(raw) HTTP/1.1\r\nHost: paths.example.com\r\n\r\n").line == "200 A GET /admin", "\(raw)")
            }
            #expect(await client.send("GET /admin%2Fx HTTP/1.1\r\nHost: paths.example.com\r\n\r\n").line.hasPrefix("400"))
            #expect(await client.send("GET /a%00 HTTP/1.1\r\nHost: paths.example.com\r\n\r\n").line.hasPrefix("400"))
            // 7. Characters the encoder would refuse: encoded at parse time, answered at once.
            #expect(await client.send("GET /a|b HTTP/1.1\r\nHost: echo.example.com\r\n\r\n").line == "200 B GET /a%7Cb")
            #expect(await client.send("GET /q?q={1} HTTP/1.1\r\nHost: echo.example.com\r\n\r\n").line == "200 B GET /q?q=%7B1%7D")
            // 8. Transfer-Encoding other than exactly chunked: refused, and the backend never saw it.
            #expect(await client.send("POST /te HTTP/1.1\r\nHost: echo.example.com\r\nTransfer-Encoding: identity\r\n\r\nhello").line.hasPrefix("400"))
            #expect(await client.send("POST /te HTTP/1.1\r\nHost: echo.example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").line.hasPrefix("501"))
            let seen = try await onDedicatedThread {
                try run(["ip", "netns", "exec", lab.client, "curl", "-sS", "--max-time", "5", "-H", "Host: echo.example.com", "http://\(Lab.nodeIP):30880/__seen"])
            }
            #expect(!seen.contains("POST"), "no refused POST reached the backend: \(seen)")
            #expect(!seen.contains("6.6.6.6") && !seen.contains("evil"))
        }
    }

    @Test("item 1: a flood of idle connections never costs the node its maps; with the proxy's limits the Gateway keeps serving other clients, and even without them a read that fails keeps the last good state")
    func connectionFlood() async throws {
        try await withLab(prefix: "pwhd") { lab in
            let dir = try await setUp(lab)
            let log = lab.scripts + "/agent.log"
            let limit = ["prlimit", "--nofile=1100:1100", "--"]

            /// Frontends in the pinned maps, as `bpf lb list` counts them.
            func frontends() async throws -> Int {
                try await onDedicatedThread {
                    let out = try run([portwayBinary!, "bpf", "lb", "list", "--bpffs", lab.bpffs])
                    return out.split(separator: "\n").filter { $0.contains("(0)") }.count
                }
            }
            /// One request to the plain L4 NodePort (served by the datapath alone).
            func plainAnswers() async throws -> Bool {
                try await onDedicatedThread {
                    let out = try run(["ip", "netns", "exec", lab.client, "curl", "-sS", "--max-time", "3", "http://\(Lab.nodeIP):30090/plain"], allowFailure: true)
                    return out.hasPrefix("A GET /plain")
                }
            }

            // Phase 1: the default limits, derived from a descriptor limit of 1,100.
            var agent = try await startAgent(lab, dir: dir, wrapper: limit, log: log)
            let client = try await RawRequests(lab, port: 30880)
            #expect(try await waitForGateway(client) == "200 B GET /")
            let programmed = try await frontends()
            #expect(programmed >= 4, "frontends programmed: \(programmed)")

            let flood = try await onDedicatedThread {
                try lab.spawn(in: lab.client, [Lab.python, lab.scripts + "/flood.py", Lab.nodeIP, "30880", Self.floodIP, "1150"])
            }
            let opened = await flood.line() ?? "eof"
            print("flood with the default limits: \(opened)")
            // Another client is served at once, the L4 NodePort answers, nothing is lost.
            #expect(await client.send("GET /during HTTP/1.1\r\nHost: echo.example.com\r\n\r\n").line == "200 B GET /during")
            #expect(try await plainAnswers())
            #expect(try await frontends() == programmed)
            flood.closeInput()
            flood.kill()
            agent.kill()

            // Phase 2: the proxy's limits lifted: the flood takes every descriptor. The file source's
            // reads fail; that is an error that keeps the last good state, never "no objects".
            agent = try await startAgent(
                lab, dir: dir,
                extra: ["--proxy-max-connections", "100000", "--proxy-max-connections-per-client", "100000"], wrapper: limit, log: log)
            defer { agent.kill() }
            #expect(try await waitForGateway(client) == "200 B GET /")
            let exhaust = try await onDedicatedThread {
                try lab.spawn(in: lab.client, [Lab.python, lab.scripts + "/flood.py", Lab.nodeIP, "30880", Self.secondFloodIP, "1150"])
            }
            print("flood without limits: \(await exhaust.line() ?? "eof")")
            var text = ""
            await waitUntil(every: .milliseconds(50)) {
                text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                return text.contains("Too many open files")
            }
            #expect(text.contains("Too many open files"), "the agent ran out of descriptors and said so")
            #expect(try await plainAnswers(), "the L4 NodePort keeps answering")
            #expect(try await frontends() == programmed, "no frontend was deleted")
            exhaust.closeInput()
            exhaust.kill()
            // Descriptors back: the Gateway serves again, from the same state.
            #expect(try await waitForGateway(client) == "200 B GET /")
            #expect(try await frontends() == programmed)
            text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(!text.contains("all objects gone"), "the file source never saw an empty directory")
        }
    }
}
