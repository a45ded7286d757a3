import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Testing
import Views

@Suite("Recorded kube-apiserver traces decode with the slim models", .enabled(if: SharedFixtures.traces, "needs ../shared/k8s-api-traces"))
struct TraceDecodingTests {
    @Test("list and get bodies")
    func plainReads() throws {
        let p1 = try Trace("list-services-page1.http")
        let page1 = try JSONDecoder().decode(KubeList<Service>.self, from: p1.body)
        let page2 = try JSONDecoder().decode(KubeList<Service>.self, from: try Trace("list-services-page2.http").body)
        #expect(p1.status == 200)
        #expect(page1.items.count == 2)
        #expect(page1.metadata.remainingItemCount == 4)
        #expect(page1.metadata.continue?.isEmpty == false)
        #expect(page1.metadata.resourceVersion == page2.metadata.resourceVersion)
        #expect(page2.items.map(\.metadata.name) == ["s3", "s4"])

        let slices = try JSONDecoder().decode(KubeList<EndpointSlice>.self, from: try Trace("list-endpointslices.http").body)
        let web = try #require(slices.items.first { $0.metadata.name == "web-abc12" })
        #expect(web.endpoints?.count == 3)
        #expect(web.endpoints?[2].conditions?.terminating == true)
        #expect(web.metadata.labels?[EndpointSlice.serviceNameLabel] == "web")

        let endpoints = try JSONDecoder().decode(Endpoints.self, from: try Trace("get-endpoints.http").body)
        #expect(endpoints.subsets?.first?.notReadyAddresses?.first?.ip == "10.244.2.12")

        let gateway = try JSONDecoder().decode(Gateway.self, from: try Trace("get-gateway.http").body)
        #expect(gateway.spec.gatewayClassName == "lbgw")
        #expect(gateway.spec.listeners.first?.hostname == "*.example.com")
        #expect(gateway.spec.listeners.first?.allowedRoutes?.namespaces?.from == "Same")

        let patched = try Trace("patch-gateway-status.http")
        let pg = try JSONDecoder().decode(Gateway.self, from: patched.body)
        #expect(pg.status?.conditions?.map(\.type) == ["Accepted", "Programmed"])
        #expect(pg.status?.conditions?.first?.observedGeneration == 1)
    }

    @Test("error Status bodies", arguments: [
        ("get-404.http", 404, "NotFound"), ("create-409.http", 409, "AlreadyExists"), ("create-422.http", 422, "Invalid"),
        ("list-401.http", 401, "Unauthorized"), ("list-403.http", 403, "Forbidden"), ("list-410.http", 410, "Expired"),
    ])
    func statuses(file: String, code: Int, reason: String) throws {
        let trace = try Trace(file)
        #expect(trace.status == code)
        let status = try JSONDecoder().decode(Status.self, from: trace.body)
        #expect(status.kind == "Status")
        #expect(status.code == code)
        #expect(status.reason == reason)
        #expect(status.status == "Failure")
        if reason == "Invalid" { #expect(status.details?.causes?.count == 2) }
    }

    @Test("watch streams: one event per line, bookmarks, ERROR 410")
    func watches() throws {
        let services = try Trace("watch-services.http").lines.map { try decodeWatchEvent(Service.self, line: $0) }
        #expect(services.count == 3)
        guard case .added(let a) = services[0], case .modified(let m) = services[1], case .bookmark(let rv) = services[2] else {
            Issue.record("unexpected events \(services)")
            return
        }
        #expect(a.spec.ports?.first?.nodePort == 30080)
        #expect(m.spec.ports?.first?.nodePort == 30081)
        #expect(rv == "246")

        let routes = try Trace("watch-httproutes.http").lines.map { try decodeWatchEvent(HTTPRoute.self, line: $0) }
        let kinds = routes.map { e -> String in
            switch e {
            case .added: "ADDED"
            case .modified: "MODIFIED"
            case .deleted: "DELETED"
            case .bookmark: "BOOKMARK"
            case .error: "ERROR"
            }
        }
        #expect(kinds.contains("DELETED"))
        if case .added(let route) = routes[0] {
            #expect(route.spec.hostnames == ["mail.example.com"])
            #expect(route.spec.rules?.first?.backendRefs?.first?.port == 80)
            #expect(route.spec.rules?.first?.matches?.first?.path?.type == "PathPrefix")
        } else {
            Issue.record("first HTTPRoute event is not ADDED")
        }

        let slices = try Trace("watch-endpointslices.http").lines.map { try decodeWatchEvent(EndpointSlice.self, line: $0) }
        #expect(slices.count == 3)
        if case .bookmark(let rv) = slices[1] { #expect(rv == "240") } else { Issue.record("expected a bookmark") }

        let expired = try Trace("watch-410.http")
        #expect(expired.status == 200)
        let events = try expired.lines.map { try decodeWatchEvent(Service.self, line: $0) }
        guard case .error(let status) = events.first else {
            Issue.record("expected ERROR")
            return
        }
        #expect(status.code == 410)
        #expect(status.reason == "Expired")
    }
}

/// The keys of a JSON value, recursively ("metadata.resourceVersion", "items[].metadata.name"...),
/// for comparing the shape of the test server's answers with the recordings.
func shape(_ v: JSONValue, prefix: String = "") -> Set<String> {
    switch v {
    case .object(let o):
        var out: Set<String> = []
        for (k, child) in o {
            let path = prefix.isEmpty ? k : "\(prefix).\(k)"
            out.insert(path)
            out.formUnion(shape(child, prefix: path))
        }
        return out
    case .array(let a): return a.reduce(into: Set<String>()) { $0.formUnion(shape($1, prefix: prefix + "[]")) }
    default: return []
    }
}

@Suite("The test API server answers like the recordings", .enabled(if: SharedFixtures.traces, "needs ../shared/k8s-api-traces"))
struct TraceShapeTests {
    /// Loads objs.yaml's web Service / EndpointSlice equivalents into the server.
    func seeded() async throws -> TestAPIServer {
        let server = try await TestAPIServer.started(tokens: ["test-token": "admin", "viewer-token": "viewer"])
        // The recordings were made in an existing namespace `demo` (a create elsewhere is a 404).
        try server.create("namespaces", object: Namespace(metadata: ObjectMeta(name: "demo")))
        for i in 1...6 { try server.create("services", object: service("s\(i)", labels: ["app": "s\(i)"])) }
        try server.create("endpointslices", object: slice("web-abc12", service: "web", addresses: ["10.244.1.10", "10.244.2.11"]))
        return server
    }

    func raw(_ server: TestAPIServer, _ path: String, token: String = "test-token", method: String = "GET", body: Data? = nil, contentType: String? = nil) async throws -> HTTPResponse {
        var headers = ["Authorization: Bearer \(token)"]
        if let contentType { headers.append("Content-Type: \(contentType)") }
        return try await CurlTransport.shared.send(HTTPRequest(
            method: method, url: server.url + path, headers: headers, body: body, tls: TLSSettings(caData: server.certificates.read(server.certificates.caCertPath))))
    }

    @Test("list page, Status errors and status patch have the recorded status codes and JSON keys")
    func shapes() async throws {
        let server = try await seeded()
        let cases: [(String, String, String, Data?, String?, String)] = [
            ("list-services-page1.http", "GET", "/api/v1/namespaces/demo/services?limit=2", nil, nil, "test-token"),
            ("get-404.http", "GET", "/api/v1/namespaces/demo/services/nope", nil, nil, "test-token"),
            ("create-409.http", "POST", "/api/v1/namespaces/demo/services", try JSONEncoder().encode(service("s1")), "application/json", "test-token"),
            ("create-422.http", "POST", "/api/v1/namespaces/demo/services", try JSONEncoder().encode(service("bad", port: 99999)), "application/json", "test-token"),
            ("list-401.http", "GET", "/api/v1/services", nil, nil, "nobody"),
            ("list-403.http", "GET", "/api/v1/services", nil, nil, "viewer-token"),
        ]
        server.forbid(user: "viewer", verb: "list", resource: "services")
        for (file, method, path, body, type, token) in cases {
            let trace = try Trace(file)
            let response = try await raw(server, path, token: token, method: method, body: body, contentType: type)
            #expect(response.status == trace.status, "\(file)")
            #expect(response.headers["content-type"] == "application/json", "\(file)")
            let ours = try JSONValue.parse(response.body)
            let theirs = try trace.json
            // Same keys (ignoring managedFields/annotations, which the recorded objects carry from kubectl).
            let strip: (Set<String>) -> Set<String> = { $0.filter { !$0.contains("managedFields") && !$0.contains("annotations") && !$0.contains("items[].spec") && !$0.contains("items[].status") } }
            #expect(strip(shape(ours)) == strip(shape(theirs)), "\(file): \(strip(shape(ours)).symmetricDifference(strip(shape(theirs))))")
            #expect(ours["kind"] == theirs["kind"], "\(file)")
            #expect(ours["reason"] == theirs["reason"], "\(file)")
        }
        // PATCH .../gateways/public/status with a merge patch: the same object shape as patch-gateway-status.http.
        let recordedGateway = try Trace("patch-gateway-status.http")
        var gateway = try recordedGateway.json
        gateway["status"] = nil
        gateway["metadata"] = .object(["name": .string("public"), "namespace": .string("demo")])
        _ = try await raw(server, "/apis/gateway.networking.k8s.io/v1/namespaces/demo/gateways", method: "POST", body: gateway.serialized(), contentType: "application/json")
        let statusPatch = JSONValue.object(["status": (try recordedGateway.json)["status"]!])
        let patched = try await raw(server, "/apis/gateway.networking.k8s.io/v1/namespaces/demo/gateways/public/status", method: "PATCH",
                                    body: statusPatch.serialized(), contentType: "application/merge-patch+json")
        #expect(patched.status == recordedGateway.status)
        let stripMeta: (Set<String>) -> Set<String> = { $0.filter { !$0.contains("managedFields") && !$0.contains("annotations") } }
        #expect(stripMeta(shape(try JSONValue.parse(patched.body))) == stripMeta(shape(try recordedGateway.json)))
        #expect(try JSONValue.parse(patched.body)["status"] == (try recordedGateway.json)["status"])

        // The recorded 403/409/404 messages, word for word, for the same request.
        let forbidden = try JSONValue.parse(try await raw(server, "/api/v1/services", token: "viewer-token").body)
        #expect(forbidden["message"] == (try Trace("list-403.http").json)["message"])
        let conflict = try JSONValue.parse(try await raw(server, "/api/v1/namespaces/demo/services", method: "POST", body: try JSONEncoder().encode(service("s1")), contentType: "application/json").body)
        #expect(conflict["message"] == (try Trace("create-409.http").json)["message"])
        try await server.stop()
    }

    @Test("watch: HTTP 200, application/json, chunked, one event per line, BOOKMARK shaped like the recording, ends at timeoutSeconds")
    func watchShape() async throws {
        let server = try await seeded()
        let rv = server.resourceVersion
        let req = HTTPRequest(
            url: server.url + "/api/v1/namespaces/demo/services?watch=true&allowWatchBookmarks=true&timeoutSeconds=5&resourceVersion=\(rv)",
            headers: ["Authorization: Bearer test-token"], timeout: .seconds(20), tls: TLSSettings(caData: server.certificates.read(server.certificates.caCertPath)))
        let stream = CurlTransport.shared.stream(req)
        // The request was seen (counting open watches could miss a watch that already ended).
        // The watch lasts 5 s, so the change and the bookmark below reach it even on a loaded machine.
        try await eventually("watch open") { !server.requests(verb: "watch", resource: "services").isEmpty }
        // Registered with the store, so the bookmark below reaches it (the request is logged earlier).
        try await eventually("watch registered") { server.registeredWatches > 0 }
        var modified = try #require(server.get("services", namespace: "demo", name: "s1"))
        modified["metadata"]?["labels"] = .object(["x": .string("y")])
        try server.replace("services", modified)
        server.sendBookmarks()
        var status = 0
        var headers: [String: String] = [:]
        var body = Data()
        for try await part in stream {
            switch part {
            case .head(let s, let h): status = s; headers = h
            case .data(let d): body.append(d)
            }
        }
        #expect(status == 200)
        #expect(headers["content-type"] == "application/json")
        #expect(headers["content-length"] == nil)
        let lines = body.split(separator: UInt8(ascii: "\n")).map { try? JSONValue.parse(Data($0)) }
        try #require(lines.count == 2, "one MODIFIED and one BOOKMARK line: \(String(decoding: body, as: UTF8.self))")
        #expect(lines[0]?["type"] == .string("MODIFIED"))
        #expect(String(decoding: body.prefix(8), as: UTF8.self) == "{\"type\":", "type comes first, as recorded")
        let bookmark = try #require(lines[1])
        let recorded = try JSONValue.parse(Data(try Trace("watch-services.http").lines.last!))
        #expect(bookmark["type"] == recorded["type"])
        #expect(shape(bookmark) == shape(recorded))
        #expect(bookmark["object"]?["metadata"]?["creationTimestamp"] == .null)

        // A too-old resourceVersion: HTTP 200 and one ERROR event, exactly like watch-410.http.
        server.compact()
        let old = try await raw(server, "/api/v1/namespaces/demo/services?watch=true&resourceVersion=\(rv)&timeoutSeconds=5")
        #expect(old.status == 200)
        let recorded410 = try JSONValue.parse(Data(try Trace("watch-410.http").lines[0]))
        #expect(try JSONValue.parse(old.body) == recorded410)
        try await server.stop()
    }
}
