import Foundation
import Testing

private let conformanceReady = LabPrerequisites.readyWithAgent("GatewayConformanceE2ETests")

/// The conformance suite's echo backend and client, as far as these tests need them.
private enum ConformanceScripts {
    /// `echo.py NAME PORT`: answers every request with a JSON body `{name, method, path, host,
    /// headers}` (header names lowercased) and the response headers `X-Header-Set: original` and
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
                                   "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
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
    /// body}` (response header names lowercased), or `{"error": …}` after 5 s.
    static let client = #"""
        import http.client, json, sys
        address = sys.argv[1]
        for line in sys.stdin:
            port, method, host, path, *extra = line.split()
            headers = {"Host": host}
            headers.update(dict(h.split(":", 1) for h in extra))
            try:
                conn = http.client.HTTPConnection(address, int(port), timeout=5)
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
/// (NodePort 30881), and `routes`.
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

/// The GATEWAY-HTTP conformance tests that send traffic, with real packets: a client namespace
/// sends to the node's Gateway NodePorts, the datapath hands the connections to the agent's proxy.
@Suite(.serialized, .enabled(if: conformanceReady, "needs root, the netns lab prerequisites and the portway binary"))
struct GatewayConformanceE2ETests {
    /// Starts the echo backends (infra-backend-v1 on be1, -v2 on be2), writes `yaml` and starts the
    /// agent; returns it and the client (`request.py` in the client namespace) once `probe`
    /// (`PORT METHOD HOST PATH`) is answered with `status`.
    private func start(_ lab: Lab, yaml: String, probe: String, status: Int) async throws -> (agent: Child, ask: (String) async -> Answer, client: Child) {
        try ConformanceScripts.backend.write(toFile: lab.scripts + "/echo.py", atomically: true, encoding: .utf8)
        try ConformanceScripts.client.write(toFile: lab.scripts + "/request.py", atomically: true, encoding: .utf8)
        for (name, ns) in [("infra-backend-v1", "\(lab.prefix)-be1"), ("infra-backend-v2", "\(lab.prefix)-be2")] {
            let backend = try await onDedicatedThread { try lab.spawn(in: ns, [Lab.python, lab.scripts + "/echo.py", name, "8081"]) }
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
}
