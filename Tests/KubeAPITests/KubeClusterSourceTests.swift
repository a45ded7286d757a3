import Agent
import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import LoadBalancer
import Testing

@Suite("KubeClusterSource: informers -> a snapshot, then changes by key")
struct KubeClusterSourceTests {
    func makeSource(
        _ server: TestAPIServer, api: EndpointsSource = .endpointSlices, watchNode: Bool = true, watchGateways: Bool = false,
        recorder: SleepRecorder = SleepRecorder()
    ) -> KubeClusterSource {
        KubeClusterSource(
            client: KubeClient(config: server.clusterConfig()),
            scope: WatchScope(nodeName: "node-a", endpointsSource: api, watchNode: watchNode, watchGateways: watchGateways),
            informerOptions: fastOptions(recorder))
    }

    @Test("a snapshot only after every informer synced; then one change per event, naming its key; after an API outage it resyncs and reflects changes made meanwhile")
    func snapshots() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("web", nodePort: 30080))
        try server.create("endpointslices", object: slice("web-1", service: "web", addresses: ["10.244.1.10"]))
        try server.create("nodes", object: node("node-a", internalIP: "192.168.1.10"))
        try server.create("nodes", object: Node(metadata: ObjectMeta(name: "node-b")))
        // Hold the Node list back: no snapshot may come before it syncs.
        server.inject(.status(500), verb: "list", resource: "nodes", count: 3)
        let source = makeSource(server)
        var iterator = FoldedEvents(source)

        let first = try #require(await iterator.next())
        #expect(iterator.lastWasSnapshot)
        #expect(server.requests(verb: "list", resource: "nodes").count == 4, "the snapshot waited for the Node informer's successful list")
        #expect(first.services.map(\.metadata.name) == ["web"])
        #expect(first.endpointSlices.map(\.metadata.name) == ["web-1"])
        #expect(first.nodes.map(\.metadata.name) == ["node-a"], "only the agent's own Node")
        #expect(first.nodes.first?.status?.addresses?.first?.address == "192.168.1.10")

        // A burst of changes: each arrives at once as the change of one slice (the pipeline, not
        // the source, takes together what arrives while it works).
        try await eventually("all watching") { server.openWatches == 3 }
        for i in 2...20 { try server.create("endpointslices", object: slice("web-\(i)", service: "web", addresses: ["10.244.1.\(i + 10)"])) }
        var next = try #require(await iterator.next())
        var changed: [String] = []
        while true {
            for case .endpointSlices(let key, let objects) in iterator.lastChanges where objects.count == 1 { changed.append(key.name) }
            if next.endpointSlices.count >= 20 { break }
            next = try #require(await iterator.next())
        }
        #expect(next.endpointSlices.count == 20)
        #expect(changed == (2...20).map { "web-\($0)" })

        // The API server goes away: nothing new; then it comes back with a change: a new snapshot.
        try await server.stop()
        try server.delete("endpointslices", namespace: "demo", name: "web-1")
        try await server.start()
        let after = try #require(await iterator.next())
        #expect(after.endpointSlices.count == 19)
        #expect(!after.endpointSlices.contains { $0.metadata.name == "web-1" })
        try await server.stop()
    }

    @Test("the objects of the first list are in the snapshot only: none follows it again as a change (they were all reconciled twice)")
    func listedObjectsNotResent() async throws {
        let server = try await TestAPIServer.started()
        let count = 400
        for i in 0..<count { try server.create("endpointslices", object: slice("web-\(i)", service: "web", addresses: ["10.244.\(i / 200).\(i % 200 + 1)"])) }
        try server.create("nodes", object: node("node-a", internalIP: "192.168.1.10"))
        // The slices' informer lists last (its first list fails once): its list's events are
        // handled while the snapshot is being built from the stores.
        server.inject(.status(500), verb: "list", resource: "endpointslices", count: 1)
        var options = fastOptions(SleepRecorder())
        options.pageSize = 500
        let source = KubeClusterSource(
            client: KubeClient(config: server.clusterConfig()),
            scope: WatchScope(nodeName: "node-a", endpointsSource: .endpointSlices, watchNode: true, watchGateways: false),
            informerOptions: options)
        var iterator = FoldedEvents(source)
        let first = try #require(await iterator.next())
        #expect(iterator.lastWasSnapshot)
        #expect(first.endpointSlices.count == count)
        // A marker made after the snapshot: the first change must be it, not a listed slice again.
        try await eventually("all watching") { server.openWatches == 3 }
        try server.create("endpointslices", object: slice("marker", service: "web", addresses: ["10.244.9.9"]))
        var resent: [String] = []
        marker: while true {
            _ = try #require(await iterator.next())
            for case .endpointSlices(let key, _) in iterator.lastChanges {
                if key.name == "marker" { break marker }
                resent.append(key.name)
            }
        }
        #expect(resent.count == 0, "\(resent.count) listed slices sent again after the snapshot, e.g. \(resent.prefix(3))")
        try await server.stop()
    }

    @Test("Endpoints mode reads core/v1 Endpoints instead of EndpointSlices")
    func endpointsMode() async throws {
        let server = try await TestAPIServer.started()
        try server.create("endpoints", object: Endpoints(metadata: ObjectMeta(name: "web", namespace: "demo"), subsets: [EndpointSubset(addresses: [EndpointAddress(ip: "10.244.1.10")])]))
        try server.create("nodes", object: Node(metadata: ObjectMeta(name: "node-a")))
        var iterator = FoldedEvents(makeSource(server, api: .endpoints))
        let first = try #require(await iterator.next())
        #expect(first.endpoints.map(\.metadata.name) == ["web"])
        #expect(first.endpointSlices.isEmpty)
        #expect(server.requests(verb: "list", resource: "endpointslices").isEmpty)
        try await server.stop()
    }

    @Test("with --node-ip the agent watches no Node (no RBAC on nodes needed)")
    func noNodeWatch() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("web", nodePort: 30080))
        var iterator = FoldedEvents(makeSource(server, watchNode: false))
        let first = try #require(await iterator.next())
        #expect(first.services.map(\.metadata.name) == ["web"])
        #expect(server.requests(verb: "list", resource: "nodes").isEmpty)
        #expect(server.requests(verb: "watch", resource: "nodes").isEmpty)
        try await server.stop()
    }

    @Test("the Gateway kinds are watched; one whose CRD is missing (list 404) counts as empty without holding back the snapshot, and is picked up once served")
    func gatewayKinds() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("web", nodePort: 30080))
        try server.create("nodes", object: Node(metadata: ObjectMeta(name: "node-a")))
        let listener = Listener(name: "http", port: 80, protocol: "HTTP")
        try server.create("gateways", object: Gateway(metadata: ObjectMeta(name: "gw", namespace: "demo"), spec: GatewaySpec(gatewayClassName: "portway", listeners: [listener])))
        try server.create("httproutes", object: HTTPRoute(metadata: ObjectMeta(name: "shop", namespace: "demo"), spec: HTTPRouteSpec(parentRefs: [ParentReference(name: "gw")])))
        try server.create("namespaces", object: Namespace(metadata: ObjectMeta(name: "demo")))
        // GatewayClasses "not installed" for three lists.
        server.inject(.status(404), verb: "list", resource: "gatewayclasses", count: 3)
        let recorder = SleepRecorder()
        var iterator = FoldedEvents(makeSource(server, watchGateways: true, recorder: recorder))

        let first = try #require(await iterator.next())
        #expect(iterator.lastWasSnapshot)
        #expect(first.services.map(\.metadata.name) == ["web"], "the L4 half is not held back by the missing kind")
        #expect(first.gateways.map(\.metadata.name) == ["gw"])
        #expect(first.httpRoutes.map(\.metadata.name) == ["shop"])
        #expect(first.namespaces.map(\.metadata.name) == ["demo"])
        #expect(first.gatewayClasses.isEmpty)

        // Once the list answers, what is there arrives as a change of its key.
        try server.create("gatewayclasses", object: GatewayClass(metadata: ObjectMeta(name: "portway"), spec: GatewayClassSpec(controllerName: "portway.io/gateway-controller")))
        var next = try #require(await iterator.next())
        while next.gatewayClasses.isEmpty { next = try #require(await iterator.next()) }
        #expect(iterator.lastChanges.contains { if case .gatewayClasses("portway", let objects) = $0 { objects.count == 1 } else { false } })
        #expect(server.requests(verb: "list", resource: "gatewayclasses").count >= 4)
        #expect(recorder.recorded.filter { $0 == .seconds(60) }.count >= 3, "each 404 waits the absent-retry interval, not the error backoff")

        // A route change arrives under the route's key.
        _ = try server.patch("httproutes", namespace: "demo", name: "shop", .object(["spec": .object(["hostnames": .array([.string("shop.example")])])]))
        next = try #require(await iterator.next())
        while next.httpRoutes.first?.spec.hostnames == nil { next = try #require(await iterator.next()) }
        #expect(iterator.lastChanges.contains { if case .httpRoutes(let key, _) = $0 { key == ObjectKey(namespace: "demo", name: "shop") } else { false } })
        try await server.stop()
    }

    @Test("Secrets refused by RBAC (403) are none: the first snapshot is not held back; once readable, TLS Secrets arrive as changes, other types never")
    func forbiddenSecretsDoNotHoldBackTheSnapshot() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("web", nodePort: 30080))
        try server.create("secrets", object: Secret(metadata: ObjectMeta(name: "opaque", namespace: "demo"), type: "Opaque", data: ["k": "dg=="]))
        server.inject(.status(403), verb: "list", resource: "secrets", count: 2)
        let recorder = SleepRecorder()
        var iterator = FoldedEvents(makeSource(server, watchGateways: true, recorder: recorder))

        let first = try #require(await iterator.next())
        #expect(iterator.lastWasSnapshot)
        #expect(first.services.map(\.metadata.name) == ["web"], "the L4 half is not held back by the refused kind")
        #expect(first.secrets.isEmpty)

        try server.create("secrets", object: Secret(metadata: ObjectMeta(name: "cert", namespace: "demo"), type: Secret.tlsType, data: ["tls.crt": "Yw==", "tls.key": "aw=="]))
        var next = try #require(await iterator.next())
        while next.secrets.isEmpty { next = try #require(await iterator.next()) }
        #expect(next.secrets.map(\.metadata.name) == ["cert"], "TLS only: the Opaque Secret is not selected")
        #expect(iterator.lastChanges.contains { if case .secrets(let key, let objects) = $0 { key.name == "cert" && objects.count == 1 } else { false } })
        #expect(server.requests(verb: "list", resource: "secrets").count >= 3)
        #expect(recorder.recorded.filter { $0 == .seconds(60) }.count >= 2, "each 403 waits the absent-retry interval")
        try await server.stop()
    }
}
