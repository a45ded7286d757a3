import Agent
import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import LoadBalancer
import Testing

@Suite("KubeClusterSource: informers -> a snapshot, then changes by key")
struct KubeClusterSourceTests {
    func makeSource(_ server: TestAPIServer, api: EndpointsSource = .endpointSlices, watchNode: Bool = true) -> KubeClusterSource {
        let recorder = SleepRecorder()
        return KubeClusterSource(
            client: KubeClient(config: server.clusterConfig()), scope: WatchScope(nodeName: "node-a", endpointsSource: api, watchNode: watchNode),
            informerOptions: fastOptions(recorder))
    }

    @Test("a snapshot only after every informer synced; then one change per event, naming its key; after an API outage it resyncs and reflects changes made meanwhile")
    func snapshots() async throws {
        let server = try await TestAPIServer.started()
        try server.create("services", object: service("web", nodePort: 30080))
        try server.create("endpointslices", object: slice("web-1", service: "web", addresses: ["10.244.1.10"]))
        try server.create("nodes", object: Node(metadata: ObjectMeta(name: "node-a"), status: NodeStatus(addresses: [NodeAddress(type: "InternalIP", address: "192.168.1.10")])))
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
}
