import Foundation
import Testing

private let mirrorRetryReady = LabPrerequisites.readyWithAgent("GatewayMirrorRetryE2ETests", commands: [])

/// The conformance suite's echo backend as far as RequestMirror and retry need it, and a client.
private enum MirrorRetryScripts {
    /// `echo.py NAME PORT LOG`: answers with a JSON body `{name, path, headers}` and appends
    /// `Echoing back request made to PATH to client` to LOG for each request (the line the upstream
    /// mirror tests look for). The retry simulation of the upstream echo-basic: with
    /// `?uuid=U&succeedAfter=N`, the first N requests of U fail — with `responseCode=C` as that
    /// status, else by a TCP reset — after `delayRetry` (e.g. `1s`) when given.
    static let backend = #"""
        import http.server, json, socket, struct, sys, threading, time, urllib.parse
        name, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        attempts, lock = {}, threading.Lock()
        def seconds(text):
            return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def answer(self):
                length = int(self.headers.get("Content-Length", "0") or 0)
                if length:
                    self.rfile.read(length)
                with lock, open(log, "a") as f:
                    f.write(f"Echoing back request made to {self.path} to client\n")
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                uuid = query.get("uuid", [""])[0]
                if uuid:
                    with lock:
                        failing = attempts.get(uuid, 0) < int(query["succeedAfter"][0])
                        if failing:
                            attempts[uuid] = attempts.get(uuid, 0) + 1
                    if failing:
                        time.sleep(seconds(query.get("delayRetry", ["0s"])[0]))
                        if "responseCode" in query:
                            self.send_response(int(query["responseCode"][0]))
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                        else:
                            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                            self.connection.close()
                            self.close_connection = True
                        return
                body = json.dumps({"name": name, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = do_POST = do_PUT = do_OPTIONS = answer
            def log_message(self, *args):
                pass
            def handle(self):
                try:
                    super().handle()
                except OSError:
                    pass
        server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
        print("ready", flush=True)
        server.serve_forever()
        """#

    /// `silent.py PORT`: accepts connections and never reads or answers (a mirror that hangs).
    static let silent = #"""
        import socket, sys, time
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(sys.argv[1])))
        s.listen(512)
        print("ready", flush=True)
        held = []
        while True:
            held.append(s.accept()[0])
        """#

    /// `request.py ADDRESS PORT`: each stdin line is `[METHOD] HOST PATH [NAME:VALUE…]` (GET when no
    /// method); one request on a new connection; prints `{status, seconds, headers, body}` (header
    /// names lowercased) or `{error}` after 5 s.
    static let client = #"""
        import http.client, json, sys, time
        address, port = sys.argv[1], int(sys.argv[2])
        for line in sys.stdin:
            words = line.split()
            method = words.pop(0) if words[0].isupper() else "GET"
            host, path, *extra = words
            headers = {"Host": host}
            headers.update(dict(h.split(":", 1) for h in extra))
            start = time.monotonic()
            try:
                conn = http.client.HTTPConnection(address, port, timeout=5)
                conn.request(method, path, headers=headers)
                r = conn.getresponse()
                out = {"status": r.status, "seconds": time.monotonic() - start,
                       "headers": {k.lower(): v for k, v in r.getheaders()}, "body": r.read().decode()}
                conn.close()
            except Exception as e:
                out = {"error": f"{type(e).__name__} {e}"}
            print(json.dumps(out), flush=True)
        """#
}

private struct Reply {
    var status: Int
    var seconds: Double
    var headers: [String: String]
    var echo: [String: Any]
    var error: String?

    init(_ line: String) {
        let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? ["error": "not JSON: \(line)"]
        status = object["status"] as? Int ?? 0
        seconds = object["seconds"] as? Double ?? 0
        headers = object["headers"] as? [String: String] ?? [:]
        echo = (object["body"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        error = object["error"] as? String
    }

    var backend: String { echo["name"] as? String ?? "-" }
    func sent(_ name: String) -> String? { (echo["headers"] as? [String: String])?[name] }
    var summary: String { error.map { "error \($0)" } ?? "\(status) \(backend)" }
}

/// HTTPRouteRequestMirror, HTTPRouteRequestMultipleMirrors, HTTPRouteRequestPercentageMirror,
/// HTTPRouteRetry, HTTPRouteRetryConnectionError, HTTPRouteRetryBackendTimeout with real packets:
/// a client namespace sends to the node's Gateway NodePort 30880 (listener 80).
@Suite(.serialized, .enabled(if: mirrorRetryReady, "needs root, the netns lab prerequisites and the portway binary"))
struct GatewayMirrorRetryE2ETests {
    /// Echo backends infra-backend-v1 (be1:8081), -v2 (be2:8081), -v3 (be2:8083), a Service
    /// `silent` (be2:8082, never answers) and `dead` (be1:8099, nothing listens), the Gateway and
    /// `routes`; returns the agent, the client and the log file of each echo backend.
    private func start(_ lab: Lab, routes: String, probe: String) async throws -> (agent: Child, ask: (String) async -> Reply, client: Child, logs: [String: String]) {
        try MirrorRetryScripts.backend.write(toFile: lab.scripts + "/echo.py", atomically: true, encoding: .utf8)
        try MirrorRetryScripts.silent.write(toFile: lab.scripts + "/silent.py", atomically: true, encoding: .utf8)
        try MirrorRetryScripts.client.write(toFile: lab.scripts + "/request.py", atomically: true, encoding: .utf8)
        var logs: [String: String] = [:]
        for (name, ns, port) in [("infra-backend-v1", "be1", "8081"), ("infra-backend-v2", "be2", "8081"), ("infra-backend-v3", "be2", "8083")] {
            let log = lab.scripts + "/\(name).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            logs[name] = log
            let backend = try await onDedicatedThread { try lab.spawn(in: "\(lab.prefix)-\(ns)", [Lab.python, lab.scripts + "/echo.py", name, port, log]) }
            #expect(await backend.line() == "ready")
        }
        let silent = try await onDedicatedThread { try lab.spawn(in: "\(lab.prefix)-be2", [Lab.python, lab.scripts + "/silent.py", "8082"]) }
        #expect(await silent.line() == "ready")
        let yaml = KubeYAML.join([
            KubeYAML.gatewayClass(),
            KubeYAML.gateway("web", namespace: "lab", listeners: [KubeYAML.listener("http", port: 80)]),
            KubeYAML.gatewayService("web", namespace: "lab", clusterIP: "10.96.0.80", ports: [.init(name: "http", port: 80, targetPort: 80, nodePort: 30880)]),
            backendYAML(service: "infra-backend-v1", clusterIP: "10.96.0.81", address: Lab.backendIPs["be1"]!),
            backendYAML(service: "infra-backend-v2", clusterIP: "10.96.0.82", address: Lab.backendIPs["be2"]!),
            KubeYAML.backend("infra-backend-v3", namespace: "lab", clusterIP: "10.96.0.83", targetPort: 8083, addresses: [Lab.backendIPs["be2"]!], nodeName: "lab-node"),
            KubeYAML.backend("silent", namespace: "lab", clusterIP: "10.96.0.84", targetPort: 8082, addresses: [Lab.backendIPs["be2"]!], nodeName: "lab-node"),
            KubeYAML.backend("dead", namespace: "lab", clusterIP: "10.96.0.85", targetPort: 8099, addresses: [Lab.backendIPs["be1"]!], nodeName: "lab-node"),
            routes,
        ])
        let dir = lab.scripts + "/yaml"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try yaml.write(toFile: dir + "/gateway.yaml", atomically: true, encoding: .utf8)
        let agent = try await startAgent(lab, dir: dir)
        let client = try await onDedicatedThread { try lab.spawn(in: lab.client, [Lab.python, lab.scripts + "/request.py", Lab.nodeIP, "30880"]) }
        let ask: (String) async -> Reply = { line in
            client.send(line)
            return Reply(await client.line() ?? "{\"error\": \"eof\"}")
        }
        var first = Reply("{}")
        await waitUntil(every: .milliseconds(100)) {
            first = await ask(probe)
            return first.status == 200
        }
        #expect(first.status == 200, "the Gateway never answered \(probe): \(first.summary)")
        return (agent, ask, client, logs)
    }

    /// Lines of `log` naming a request to exactly `path` (with its query).
    private func mirrored(_ log: String, _ path: String) -> Int {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "\n").filter { $0 == "Echoing back request made to \(path) to client" }.count
    }

    @Test("RequestMirror through the Gateway NodePort: one and two mirrors get the request with its path (and the rule's header changes), percentages and fractions mirror their share, a dead or silent mirror never delays or fails the request")
    func mirrorsThroughNodePort() async throws {
        let mirror = { (name: String, extra: String) in
            "{type: RequestMirror, requestMirror: {backendRef: {name: \(name), port: 80}\(extra)}}"
        }
        let headers = "{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Header-Set, value: set-overwrites-values}], add: [{name: X-Header-Add, value: header-val-1}], remove: [X-Header-Remove]}}"
        let rule = { (path: String, filters: [String]) in
            "  - matches: [{path: {type: PathPrefix, value: \(path)}}]\n    filters: [\(filters.joined(separator: ", "))]\n    backendRefs: [{name: infra-backend-v1, port: 80}]"
        }
        let routes = """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: request-mirror, namespace: lab}
            spec:
              parentRefs: [{name: web}]
              hostnames: [mirror.example.com]
              rules:
            \([
                rule("/mirror", [mirror("infra-backend-v2", "")]),
                rule("/mirror-and-modify-headers", [headers, mirror("infra-backend-v2", "")]),
                rule("/multi-mirror", [mirror("infra-backend-v2", ""), mirror("infra-backend-v3", "")]),
                rule("/percent-mirror", [mirror("infra-backend-v2", ", percent: 20")]),
                rule("/percent-mirror-fraction", [mirror("infra-backend-v3", ", fraction: {numerator: 25, denominator: 50}")]),
                rule("/dead-mirror", [mirror("dead", "")]),
                rule("/silent-mirror", [mirror("silent", "")]),
            ].joined(separator: "\n"))

            """
        try await withLab(prefix: "pwmr") { lab in
            let (agent, ask, client, logs) = try await start(lab, routes: routes, probe: "mirror.example.com /mirror?probe")
            defer { agent.kill() }
            let v2 = logs["infra-backend-v2"]!, v3 = logs["infra-backend-v3"]!
            // One mirror: the backend answers, the mirror gets the same path.
            let one = await ask("mirror.example.com /mirror?id=1")
            #expect(one.status == 200 && one.backend == "infra-backend-v1", "\(one.summary)")
            #expect(await waitUntil(timeout: .seconds(10)) { mirrored(v2, "/mirror?id=1") == 1 }, "infra-backend-v2 never got /mirror?id=1")
            // With a header modifier: the backend sees the modified headers, the mirror the path.
            let modified = await ask("mirror.example.com /mirror-and-modify-headers?id=2 X-Header-Remove:remove-val X-Header-Add-Append:append-val-1")
            #expect(modified.backend == "infra-backend-v1" && modified.sent("x-header-set") == "set-overwrites-values"
                && modified.sent("x-header-add") == "header-val-1" && modified.sent("x-header-remove") == nil, "\(modified.echo)")
            #expect(await waitUntil(timeout: .seconds(10)) { mirrored(v2, "/mirror-and-modify-headers?id=2") == 1 })
            // Two mirrors: both get it.
            #expect(await ask("mirror.example.com /multi-mirror?id=3").backend == "infra-backend-v1")
            #expect(await waitUntil(timeout: .seconds(10)) { mirrored(v2, "/multi-mirror?id=3") == 1 && mirrored(v3, "/multi-mirror?id=3") == 1 })
            // Percentages: each request mirrored with probability p (the proxy's random source);
            // 6 standard deviations of Binomial(n, p) around n·p.
            let n = 300
            for (path, log, p) in [("/percent-mirror?id=4", v2, 0.2), ("/percent-mirror-fraction?id=5", v3, 0.5)] {
                for _ in 0..<n { #expect(await ask("mirror.example.com \(path)").status == 200) }
                let margin = 6 * (Double(n) * p * (1 - p)).squareRoot()
                var count = 0
                // Mirrors finish after their requests: wait until the count stops growing.
                var last = -1
                await waitUntil(timeout: .seconds(10), every: .milliseconds(300)) {
                    count = mirrored(log, path)
                    defer { last = count }
                    return count == last
                }
                #expect(abs(Double(count) - Double(n) * p) <= margin, "\(path): \(count) of \(n) mirrored, expected \(Double(n) * p) ± \(margin)")
            }
            // A mirror that refuses or never answers: every request is answered by the backend,
            // well within the client's 5 s (a mirror waited on would take the mirror timeout, 10 s).
            for path in ["/dead-mirror", "/silent-mirror"] {
                for i in 0..<20 {
                    let reply = await ask("mirror.example.com \(path)?i=\(i)")
                    #expect(reply.status == 200 && reply.backend == "infra-backend-v1" && reply.seconds < 4, "\(path) \(i): \(reply.summary) in \(reply.seconds) s")
                }
            }
            client.closeInput()
        }
    }

    @Test("HTTPRoute retry through the Gateway NodePort: listed codes retried up to attempts (the backend's answer when used up, an unlisted code at once), connection resets retried, a backendRequest timeout retried")
    func retriesThroughNodePort() async throws {
        let rule = { (path: String, retry: String, timeouts: String) in
            "  - matches: [{path: {type: PathPrefix, value: \(path)}}]\n    retry: \(retry)\n"
                + (timeouts.isEmpty ? "" : "    timeouts: \(timeouts)\n") + "    backendRefs: [{name: infra-backend-v1, port: 80}]"
        }
        let routes = """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: retries, namespace: lab}
            spec:
              parentRefs: [{name: web}]
              hostnames: [retry.example.com]
              rules:
            \([
                rule("/retry/code-500-attempts-3", "{codes: [500], attempts: 3}", ""),
                rule("/retry/code-all-attempts-2", "{codes: [500, 502, 503, 504], attempts: 2}", ""),
                rule("/retry/connection-attempts-2", "{attempts: 2, backoff: 50ms}", ""),
                rule("/retry/backend-timeout", "{attempts: 2, backoff: 100ms}", "{backendRequest: 500ms}"),
            ].joined(separator: "\n"))

            """
        try await withLab(prefix: "pwmr") { lab in
            let (agent, ask, client, _) = try await start(lab, routes: routes, probe: "retry.example.com /retry/code-500-attempts-3")
            defer { agent.kill() }
            var uuid = 0
            func status(_ path: String, _ query: String) async -> String {
                uuid += 1
                return await ask("retry.example.com \(path)?uuid=u\(uuid)&\(query)").summary
            }
            // The cases of upstream HTTPRouteRetry.
            #expect(await status("/retry/code-500-attempts-3", "responseCode=500&succeedAfter=2") == "200 infra-backend-v1")
            #expect(await status("/retry/code-500-attempts-3", "responseCode=500&succeedAfter=4") == "500 -")
            #expect(await status("/retry/code-500-attempts-3", "responseCode=503&succeedAfter=2") == "503 -")
            for code in [500, 502, 503, 504] {
                #expect(await status("/retry/code-all-attempts-2", "responseCode=\(code)&succeedAfter=1") == "200 infra-backend-v1", "\(code)")
                #expect(await status("/retry/code-all-attempts-2", "responseCode=\(code)&succeedAfter=3") == "\(code) -", "\(code)")
            }
            // Connection errors (the backend resets the connection): retried, 502 when used up.
            #expect(await status("/retry/connection-attempts-2", "succeedAfter=2") == "200 infra-backend-v1")
            #expect(await status("/retry/connection-attempts-2", "succeedAfter=3") == "502 -")
            // The first attempt runs past backendRequest 500ms: retried, the second answers.
            #expect(await status("/retry/backend-timeout", "responseCode=500&succeedAfter=1&delayRetry=2s") == "200 infra-backend-v1")
            #expect(await status("/retry/backend-timeout", "responseCode=500&succeedAfter=3&delayRetry=2s") == "504 -")
            client.closeInput()
        }
    }

    /// HTTPRouteCORS: every case of the upstream test (its routes as written), through the NodePort.
    @Test("CORS through the Gateway NodePort: preflights answered by the proxy (204, allowed origins exact and wildcard, methods, headers, credentials, max age), simple requests get the headers, other origins get none")
    func corsThroughNodePort() async throws {
        let rule = { (path: String, cors: String) in
            "  - matches: [{path: {type: PathPrefix, value: \(path)}}]\n    filters: [{type: CORS, cors: \(cors)}]\n    backendRefs: [{name: infra-backend-v1, port: 80}]"
        }
        let routes = """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: cors, namespace: lab}
            spec:
              parentRefs: [{name: web}]
              hostnames: [cors.example.com]
              rules:
            \([
                rule("/cors-1", "{allowOrigins: ['https://www.foo.com', 'https://*.bar.com'], allowMethods: [GET, OPTIONS], allowHeaders: [x-header-1, x-header-2], exposeHeaders: [x-header-3, x-header-4], allowCredentials: true, maxAge: 3600}"),
                rule("/cors-2", "{allowOrigins: ['https://www.foo.com'], allowMethods: ['*']}"),
                rule("/cors-wildcard-origin", "{allowOrigins: ['*'], allowMethods: [PUT], allowCredentials: false}"),
                rule("/cors-wildcard-methods-headers", "{allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'], allowCredentials: true}"),
                rule("/cors-wildcard-methods-headers-unauth", "{allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'], allowCredentials: false}"),
            ].joined(separator: "\n"))

            """
        try await withLab(prefix: "pwmr") { lab in
            let (agent, ask, client, _) = try await start(lab, routes: routes, probe: "cors.example.com /cors-1")
            defer { agent.kill() }
            let asked = "access-control-request-method:GET access-control-request-headers:x-header-1,x-header-2"
            for origin in ["https://www.foo.com", "https://www.bar.com", "https://xpto.www.bar.com"] {
                let preflight = await ask("OPTIONS cors.example.com /cors-1 Origin:\(origin) \(asked)")
                #expect(preflight.status == 204 && preflight.backend == "-", "\(origin): \(preflight.summary)")
                #expect(preflight.headers["access-control-allow-origin"] == origin)
                #expect(preflight.headers["access-control-allow-methods"] == "GET, OPTIONS")
                #expect(preflight.headers["access-control-allow-headers"] == "x-header-1, x-header-2")
                #expect(preflight.headers["access-control-expose-headers"] == "x-header-3, x-header-4")
                #expect(preflight.headers["access-control-max-age"] == "3600")
                #expect(preflight.headers["access-control-allow-credentials"] == "true")
            }
            let refused = await ask("OPTIONS cors.example.com /cors-1 Origin:https://foobar.com access-control-request-method:GET")
            #expect(refused.status == 204 && refused.headers["access-control-allow-origin"] == nil, "\(refused.headers)")
            for origin in ["https://www.foo.com", "https://www.bar.com"] {
                let simple = await ask("cors.example.com /cors-1 Origin:\(origin) \(asked)")
                #expect(simple.status == 200 && simple.backend == "infra-backend-v1" && simple.headers["access-control-allow-origin"] == origin, "\(simple.headers)")
            }
            let other = await ask("cors.example.com /cors-1 Origin:https://foobar.com access-control-request-method:GET")
            #expect(other.status == 200 && other.headers["access-control-allow-origin"] == nil)
            let post = await ask("OPTIONS cors.example.com /cors-2 Origin:https://www.foo.com access-control-request-method:POST")
            #expect(post.status == 204 && post.headers["access-control-allow-methods"] == "POST"
                && post.headers["access-control-allow-origin"] == "https://www.foo.com" && post.headers["access-control-allow-credentials"] == nil)
            for origin in ["https://foobar.com", "https://foobar.com:12345"] {
                let wildcard = await ask("OPTIONS cors.example.com /cors-wildcard-origin Origin:\(origin) access-control-request-method:PUT")
                #expect(wildcard.status == 204 && wildcard.headers["access-control-allow-origin"] == origin
                    && wildcard.headers["access-control-allow-methods"] == "PUT" && wildcard.headers["access-control-allow-credentials"] == nil)
                let put = await ask("PUT cors.example.com /cors-wildcard-origin Origin:\(origin)")
                #expect(put.status == 200 && put.headers["access-control-allow-origin"] == origin && put.headers["access-control-allow-credentials"] == nil, "\(put.summary)")
            }
            let anyHeaders = "Origin:https://other.foo.com access-control-request-method:PUT access-control-request-headers:x-header-1,x-header-2"
            let credentialed = await ask("OPTIONS cors.example.com /cors-wildcard-methods-headers \(anyHeaders)")
            #expect(credentialed.headers["access-control-allow-origin"] == "https://other.foo.com" && credentialed.headers["access-control-allow-methods"] == "PUT"
                && credentialed.headers["access-control-allow-headers"] == "x-header-1,x-header-2" && credentialed.headers["access-control-allow-credentials"] == "true",
                "\(credentialed.headers)")
            let unauth = await ask("OPTIONS cors.example.com /cors-wildcard-methods-headers-unauth \(anyHeaders)")
            #expect(unauth.status == 204 && unauth.headers["access-control-allow-origin"] == "https://other.foo.com" && unauth.headers["access-control-allow-credentials"] == nil)
            let get = await ask("cors.example.com /cors-wildcard-methods-headers Origin:https://other.foo.com")
            #expect(get.status == 200 && get.headers["access-control-allow-origin"] == "https://other.foo.com" && get.headers["access-control-allow-credentials"] == "true")
            let getUnauth = await ask("cors.example.com /cors-wildcard-methods-headers-unauth Origin:https://other.foo.com")
            #expect(getUnauth.status == 200 && getUnauth.headers["access-control-allow-origin"] == "https://other.foo.com"
                && getUnauth.headers["access-control-allow-credentials"] == nil)
            client.closeInput()
        }
    }
}
