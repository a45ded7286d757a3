import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import Runtime
import Testing

@Suite("KubeClient against the test API server")
struct ClientTests {
    @Test("list follows continue pages; every page shares the first page's resourceVersion")
    func listPagination() async throws {
        let server = try await TestAPIServer.started()
        for i in 1...5 { try server.create("services", object: service("s\(i)")) }
        let client = KubeClient(config: server.clusterConfig())
        let page1 = try await client.listPage(Service.self, options: ListOptions(namespace: "demo"), limit: 2)
        #expect(page1.items.map(\.metadata.name) == ["s1", "s2"])
        #expect(page1.metadata.remainingItemCount == 3)
        let rv = try #require(page1.metadata.resourceVersion)
        // A change between pages does not show up in later pages.
        try server.create("services", object: service("s0"))
        let page2 = try await client.listPage(Service.self, options: ListOptions(namespace: "demo"), limit: 2, continue: page1.metadata.continue)
        #expect(page2.items.map(\.metadata.name) == ["s3", "s4"])
        #expect(page2.metadata.resourceVersion == rv)
        #expect(page2.metadata.remainingItemCount == 1)
        let page3 = try await client.listPage(Service.self, options: ListOptions(namespace: "demo"), limit: 2, continue: page2.metadata.continue)
        #expect(page3.items.map(\.metadata.name) == ["s5"])
        #expect(page3.metadata.continue == nil)
        #expect(page3.metadata.resourceVersion == rv)

        let all = try await client.list(Service.self, pageSize: 4)
        #expect(all.items.count == 6)
        #expect(server.requests(verb: "list", resource: "services").last?.query["limit"] == "4")
        try await server.stop()
    }

    @Test("the client sends its own User-Agent and gets compact JSON")
    func userAgent() async throws {
        let server = try await TestAPIServer.started()
        let client = KubeClient(config: server.clusterConfig())
        _ = try await client.list(Service.self)
        #expect(server.requests.last?.userAgent == "portway/\(portwayVersion)")
        try await server.stop()
    }

    @Test("get, create, merge-patch of status, delete")
    func crud() async throws {
        let server = try await TestAPIServer.started()
        try server.create("namespaces", object: Namespace(metadata: ObjectMeta(name: "demo")))
        let client = KubeClient(config: server.clusterConfig())
        let gw = Gateway(metadata: ObjectMeta(name: "public", namespace: "demo"),
                         spec: GatewaySpec(gatewayClassName: "lbgw", listeners: [Listener(name: "http", hostname: "*.example.com", port: 80, protocol: "HTTP")]))
        let created = try await client.create(gw)
        #expect(created.metadata.resourceVersion != nil)
        #expect(created.metadata.generation == 1)
        let status = GatewayStatus(conditions: [Condition(type: "Accepted", status: "True", reason: "Accepted", message: "accepted", lastTransitionTime: "2026-11-24T11:00:00Z", observedGeneration: 1)])
        let patched = try await client.patchStatus(Gateway.self, name: "public", namespace: "demo", status: status)
        #expect(patched.status?.conditions?.first?.type == "Accepted")
        #expect(patched.spec == gw.spec)
        #expect(patched.metadata.generation == 1, "a status patch does not bump generation")
        #expect(server.requests.last?.contentType == "application/merge-patch+json")
        #expect(server.requests.last?.path == "/apis/gateway.networking.k8s.io/v1/namespaces/demo/gateways/public/status")
        let fetched = try await client.get(Gateway.self, name: "public", namespace: "demo")
        #expect(fetched.status == patched.status)
        try await client.delete(Gateway.self, name: "public", namespace: "demo")
        await #expect(throws: KubeAPIError.self) { try await client.get(Gateway.self, name: "public", namespace: "demo") }
        try await server.stop()
    }

    @Test("errors carry the decoded Status; 401/403 name the verb and resource refused")
    func errors() async throws {
        let server = try await TestAPIServer.started(tokens: ["test-token": "admin", "viewer-token": "viewer"])
        server.forbid(user: "viewer", verb: "list", resource: "endpointslices")
        let client = KubeClient(config: server.clusterConfig())
        try server.create("namespaces", object: Namespace(metadata: ObjectMeta(name: "demo")))
        try server.create("services", object: service("s1"))

        let cases: [(String, () async throws -> Void, Int, String?, String)] = [
            ("404", { _ = try await client.get(Service.self, name: "nope", namespace: "demo") }, 404, "NotFound",
             "notFound: get services \"nope\" in namespace demo: services \"nope\" not found"),
            ("409", { _ = try await client.create(service("s1")) }, 409, "AlreadyExists",
             "alreadyExists: create services \"s1\" in namespace demo: services \"s1\" already exists"),
            ("422", { _ = try await client.create(service("bad", port: 99999)) }, 422, "Invalid",
             "invalid: create services \"bad\" in namespace demo: Service \"bad\" is invalid: spec.ports[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive"),
            ("401", { _ = try await KubeClient(config: server.clusterConfig(token: "wrong")).list(Service.self) }, 401, "Unauthorized",
             "unauthorized: list services cluster-wide: Unauthorized"),
            ("403", { _ = try await KubeClient(config: server.clusterConfig(token: "viewer-token")).list(EndpointSlice.self) }, 403, "Forbidden",
             "forbidden: list endpointslices (discovery.k8s.io) cluster-wide: endpointslices.discovery.k8s.io is forbidden: User \"viewer\" cannot list resource \"endpointslices\" in API group \"discovery.k8s.io\" at the cluster scope"),
        ]
        for (name, call, code, reason, message) in cases {
            do {
                try await call()
                Issue.record("\(name): no error")
            } catch let error as KubeAPIError {
                #expect(error.code == code, "\(name)")
                #expect(error.reason == reason, "\(name)")
                #expect(error.description == message, "\(name)")
            }
        }
        // 422 details.causes survive decoding.
        do {
            _ = try await client.create(service("bad", port: 99999))
        } catch let error as KubeAPIError {
            #expect(error.status?.details?.causes?.first?.field == "spec.ports[0].port")
        }
        try await server.stop()
    }

    @Test("list with resourceVersionMatch=Exact at a compacted version is HTTP 410 Expired")
    func listExpired() async throws {
        let server = try await TestAPIServer.started()
        let client = KubeClient(config: server.clusterConfig())
        try server.create("services", object: service("s1"))
        let rv = server.resourceVersion
        try server.create("services", object: service("s2"))
        server.compact()
        do {
            _ = try await client.listPage(Service.self, resourceVersion: rv, resourceVersionMatch: "Exact")
            Issue.record("no error")
        } catch let error as KubeAPIError {
            #expect(error.code == 410)
            #expect(error.isExpired)
            #expect(error.status?.message == "The resourceVersion for the provided list is too old.")
        }
        try await server.stop()
    }

    @Test("cancelling a watch closes its stream on the server")
    func watchCancel() async throws {
        let server = try await TestAPIServer.started()
        let client = KubeClient(config: server.clusterConfig())
        let task = Task {
            var n = 0
            for try await _ in client.watch(Service.self, options: WatchOptions(timeoutSeconds: 60)) { n += 1 }
            return n
        }
        try await eventually("watch registered") { server.requests(verb: "watch", resource: "services").count == 1 }
        task.cancel()
        _ = try? await task.value
        try await eventually("server saw the connection close") { server.openWatches == 0 }
        try await server.stop()
    }
}
