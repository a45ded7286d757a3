import Agent
import BPFMaps
import KubeModels
import LoadBalancer
import Logging
import Testing

@Suite("Agent: proxy ports kept across restarts (real pins)", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct ProxyPortRestartTests {
    static let clusterIPs = ["api": "10.96.8.1", "shop": "10.96.8.2", "web": "10.96.8.3"]
    static let nodePorts = ["api": 30801, "shop": 30802, "web": 30803]

    /// Gateways `names` in this order, each with its Service `portway-gw-<name>`.
    func snapshot(_ names: [String]) -> ClusterSnapshot {
        var snapshot = ClusterSnapshot()
        snapshot.gatewayClasses = [GatewayObjects.gatewayClass]
        for name in names {
            snapshot.gateways.append(GatewayObjects.gateway(name))
            snapshot.services.append(GatewayObjects.gatewayService(name, clusterIP: Self.clusterIPs[name]!, nodePort: Self.nodePorts[name]!))
        }
        return snapshot
    }

    /// Runs the pipeline on the pins until the first sync of `snapshot` is written; returns the
    /// proxy port the pins then hold for each ClusterIP.
    func run(_ fs: BPFFSFixture, _ snapshot: ClusterSnapshot) async throws -> [String: UInt16] {
        let events = SyncEvents()
        var syncs = events.stream.makeAsyncIterator()
        let options = AgentOptions(
            nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!], bpffs: fs.directory, mapSizes: BPFFSFixture.smallSizes,
            resyncInterval: nil, proxyPorts: 20000...20009)
        let pipeline = AgentPipeline(options: options, logger: Logger(label: "test.restart"), onSync: { events.continuation.yield($0) })
        let source = ManualSource()
        let agent = Task { try await pipeline.run(source: source) }
        source.events.push(.snapshot(snapshot))
        let summary = try await events.next(&syncs)
        #expect(summary.failures.isEmpty)
        agent.cancel()
        try await agent.value
        let ports = try ProgrammedState.read(from: MapSet.openExisting(bpffs: fs.directory)).l7ProxyPorts
        var byClusterIP: [String: UInt16] = [:]
        for (frontend, port) in ports where frontend.port == 80 { byClusterIP[frontend.address.description] = port }
        return byClusterIP
    }

    @Test("run 2 lists a new Gateway first (sorted before the others): the first two keep their ports, the new one gets a free one")
    func portsSurviveRestart() async throws {
        let fs = try BPFFSFixture.make(prefix: "pwc1-bpffs")
        defer { fs.cleanup() }

        let first = try await run(fs, snapshot(["web", "shop"]))
        let shop = try #require(first["10.96.8.2"]), web = try #require(first["10.96.8.3"])
        #expect(shop != web)
        #expect(first.count == 2)

        // "api" sorts first: a fresh allocation would give it the lowest port and move the others.
        let second = try await run(fs, snapshot(["api", "web", "shop"]))
        #expect(second["10.96.8.2"] == shop, "Gateway shop keeps its proxy port: \(second)")
        #expect(second["10.96.8.3"] == web, "Gateway web keeps its proxy port: \(second)")
        let api = try #require(second["10.96.8.1"])
        #expect(api != shop && api != web && (20000...20009).contains(api))

        // Every frontend of one Service port shares its port (ClusterIP, node IP and surrogate NodePorts).
        let all = try ProgrammedState.read(from: MapSet.openExisting(bpffs: fs.directory)).l7ProxyPorts
        #expect(Set(all.values) == [shop, web, api])
        #expect(all.count == 9)
    }
}
