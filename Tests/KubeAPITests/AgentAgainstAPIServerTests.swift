import Agent
import BPFMaps
import Foundation
import KubeAPI
import KubeAPITestSupport
import KubeModels
import LoadBalancer
import Logging
import Testing

/// The pinned maps' frontends as "address:port" -> backend addresses.
func programmedFrontends(_ bpffs: String) throws -> [String: [String]] {
    let listing = try LBListing.read(from: try MapSet.openExisting(bpffs: bpffs))
    var result: [String: [String]] = [:]
    for f in listing.frontends {
        result["\(f.key.address):\(f.key.port)"] = f.slots.map { $0.backend.map { "\($0.address)" } ?? "missing" }.sorted()
    }
    return result
}

@Suite("Agent against the test API server: maps follow the cluster", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct AgentAgainstAPIServerTests {
    @Test("create -> programmed, change -> updated, delete -> pruned; survives the API server restarting")
    func agent() async throws {
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let server = try await TestAPIServer.started()
        try server.create("nodes", object: node("node-a", internalIP: "192.0.2.10"))
                let options = AgentOptions(nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!], bpffs: fs.directory, mapSizes: BPFFSFixture.smallSizes)
        let (syncs, syncContinuation) = AsyncStream<SyncSummary>.makeStream()
        let pipeline = AgentPipeline(options: options, logger: Logger(label: "test.agent"), onSync: { syncContinuation.yield($0) })
        let source = KubeClusterSource(
            client: KubeClient(config: server.clusterConfig()), scope: WatchScope(nodeName: "node-a"),
            informerOptions: fastOptions(SleepRecorder()))
        let agent = Task { try await pipeline.run(source: source) }
        defer { agent.cancel() }

        func waitFor(_ what: String, _ expected: [String: [String]]) async throws {
            try await eventually(what) { (try? programmedFrontends(fs.directory)) == expected }
        }
        var it = syncs.makeAsyncIterator()
        _ = await it.next()  // the first full sync (empty cluster)

        try server.create("services", object: service("web", nodePort: 30080))
        let clusterIP = try #require(server.get("services", namespace: "demo", name: "web")?["spec"]?["clusterIP"]?.stringValue)
        try server.create("endpointslices", object: slice("web-1", service: "web", addresses: ["10.244.1.10", "10.244.1.11"]))
        let both = ["10.244.1.10", "10.244.1.11"]
        try await waitFor("programmed", ["0.0.0.0:30080": both, "\(clusterIP):80": both, "192.0.2.10:30080": both])

        try server.replace("endpointslices", JSONValue.from(slice("web-1", service: "web", addresses: ["10.244.1.10", "10.244.1.12"])))
        let edited = ["10.244.1.10", "10.244.1.12"]
        try await waitFor("updated", ["0.0.0.0:30080": edited, "\(clusterIP):80": edited, "192.0.2.10:30080": edited])

        // The API server goes away: the maps keep their state; changes made meanwhile arrive after it returns.
        try await server.stop()
        #expect(try programmedFrontends(fs.directory).count == 3)
        try server.delete("services", namespace: "demo", name: "web")
        try await server.start()
        try await waitFor("pruned after restart", [:])
        agent.cancel()
        _ = try? await agent.value
        try await server.stop()
    }
}
