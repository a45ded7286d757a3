import Agent
import BPFMaps
import Foundation
import KubeAPI
import KubeModels
import LoadBalancer
import Logging
import Runtime
import ServiceLifecycle
import Testing

@Suite("Reconcile by key into real pinned maps", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct MapsModelTests {
    @Test("random changes through the pipeline into pinned maps: after each round the maps equal a from-scratch sync of the same cluster")
    func mapsEqualFromScratch() async throws {
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let options = AgentOptions(nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!], resyncInterval: nil)
        let incremental = try MapWriter(maps: try MapSet.openOrCreate(bpffs: fs.mountPoint + "/incremental", sizes: BPFFSFixture.smallSizes))
        let scratch = try MapWriter(maps: try MapSet.openOrCreate(bpffs: fs.mountPoint + "/scratch", sizes: BPFFSFixture.smallSizes))
        let output = MapWriterOutput(writer: incremental, executor: BlockingExecutor(label: "test.maps"))
        let source = ManualSource()
        let pipeline = AgentPipeline(options: options, logger: Logger(label: "test.maps"))
        let group = ServiceGroup(configuration: .init(
            services: pipeline.services(source: source, outputs: [output]).map { .init(service: $0) }, logger: Logger(label: "test.group")))
        let task = Task { try await group.run() }

        var services: [String: KubeModels.Service] = [:]
        var slices: [String: EndpointSlice] = [:]
        var rng = SeededRandom()
        source.events.push(.snapshot(ClusterSnapshot()))
        let names = ["a", "b", "c", "d", "e", "f"]
        for round in 0..<25 {
            var batch: [ClusterChange] = []
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let name = names.randomElement(using: &rng)!
                if Bool.random(using: &rng) {
                    let s = service(name, clusterIP: "10.96.0.\(Int.random(in: 1...4, using: &rng))", nodePort: Bool.random(using: &rng) ? 30000 + Int.random(in: 0...1, using: &rng) : nil)
                    services[name] = Int.random(in: 0..<4, using: &rng) == 0 ? nil : s
                    batch.append(.services(ObjectKey(namespace: "demo", name: name), services[name].map { [$0] } ?? []))
                } else {
                    let addresses = (0..<Int.random(in: 0...4, using: &rng)).map { _ in "10.244.0.\(Int.random(in: 1...6, using: &rng))" }
                    let endpoints = slice("\(name)-1", service: names.randomElement(using: &rng)!, addresses: addresses)
                    slices[name] = endpoints
                    batch.append(.endpointSlices(ObjectKey(namespace: "demo", name: "\(name)-1"), [endpoints]))
                }
            }
            source.events.push(.changes(batch))
            let expected = Translator.translate(
                ClusterSnapshot(services: Array(services.values), endpointSlices: Array(slices.values)), options: options.translatorOptions)
            let full = scratch.sync(expected)
            #expect(full.failures.isEmpty)
            let want = try programmed(fs.mountPoint + "/scratch")
            try await eventually("round \(round) (seed \(rng.seed)): incremental maps equal the from-scratch ones") {
                (try? programmed(fs.mountPoint + "/incremental")) == want
            }
        }
        await group.triggerGracefulShutdown()
        try await task.value
    }
}
