import Agent
import BPFMaps
import Foundation
import LoadBalancer
import Logging
import Synchronization
import Testing

/// Summaries of the pipeline's syncs, awaited one by one.
final class SyncEvents: Sendable {
    let stream: AsyncStream<SyncSummary>
    let continuation: AsyncStream<SyncSummary>.Continuation

    init() { (stream, continuation) = AsyncStream.makeStream(of: SyncSummary.self) }

    /// The next sync; fails the test (instead of hanging) if none comes within a generous limit.
    func next(_ iterator: inout AsyncStream<SyncSummary>.Iterator) async throws -> SyncSummary {
        let deadline = Task {
            try await Task.sleep(for: .seconds(30))
            continuation.finish()
        }
        defer { deadline.cancel() }
        let summary = await iterator.next()
        return try #require(summary, "no sync within 30 s")
    }
}

/// The frontends in the pinned maps as `address:port -> [backend address]`.
func programmed(_ bpffs: String) throws -> [String: [String]] {
    let listing = try LBListing.read(from: try MapSet.openExisting(bpffs: bpffs))
    var result: [String: [String]] = [:]
    for f in listing.frontends {
        result["\(f.key.address):\(f.key.port)"] = f.slots.map { $0.backend.map { "\($0.address)" } ?? "missing" }
    }
    return result
}

@Suite("Agent file mode: YAML directory to pinned maps", .serialized, .enabled(if: BPFFSFixture.available, "needs root and a bpffs mount (reason printed)"))
struct FilePipelineTests {
    @Test("write YAML, see the maps programmed; edit the EndpointSlice, see it; delete the Service, see it pruned; stop cleanly")
    func pipeline() async throws {
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let dir = try makeTempDirectory("portway-agent-yaml")
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let events = SyncEvents()
        var syncs = events.stream.makeAsyncIterator()
        let options = AgentOptions(
            nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!], bpffs: fs.directory, mapSizes: BPFFSFixture.smallSizes)
        let pipeline = AgentPipeline(options: options, logger: Logger(label: "test.agent"), onSync: { events.continuation.yield($0) })
        let source = FileDirectorySource(directory: dir, interval: .milliseconds(50), logger: Logger(label: "test.files"))
        let agent = Task { try await pipeline.run(source: source) }

        // The empty directory is not synced (it would prune everything): the first sync comes with the files.
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080), to: dir + "/web.yaml")
        try write(sliceYAML(service: "web", addresses: ["10.244.1.10", "10.244.1.11"]), to: dir + "/web-slice.yaml")
        var summary = try await events.next(&syncs)
        // The two files may land in one poll or two: wait until both are in.
        while summary.backends < 2 { summary = try await events.next(&syncs) }
        #expect(summary.failures.isEmpty)
        let both = ["10.244.1.10", "10.244.1.11"]
        #expect(try programmed(fs.directory) == ["0.0.0.0:30080": both, "10.96.0.10:80": both, "192.0.2.10:30080": both])

        // Edit the EndpointSlice: one backend replaced.
        try write(sliceYAML(service: "web", addresses: ["10.244.1.10", "10.244.1.12"]), to: dir + "/web-slice.yaml")
        summary = try await events.next(&syncs)
        #expect(summary.updated == 3 && summary[.backends] == MapOpCounts(updates: 1, deletes: 1), "\(summary)")
        let edited = ["10.244.1.10", "10.244.1.12"]
        #expect(try programmed(fs.directory) == ["0.0.0.0:30080": edited, "10.96.0.10:80": edited, "192.0.2.10:30080": edited])

        // A malformed file keeps its last good content (the Service stays); the other file's change applies.
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080) + "garbage: [\n", to: dir + "/web.yaml")
        try write(sliceYAML(service: "web", addresses: ["10.244.1.10", "10.244.1.13"]), to: dir + "/web-slice.yaml")
        summary = try await events.next(&syncs)
        #expect(summary.removed == 0 && summary.added == 0 && summary.updated == 3, "\(summary)")
        let fixed = ["10.244.1.10", "10.244.1.13"]
        #expect(try programmed(fs.directory) == ["0.0.0.0:30080": fixed, "10.96.0.10:80": fixed, "192.0.2.10:30080": fixed])

        // A second Service, then the first one deleted: only the first is pruned.
        try write(serviceYAML(name: "api", clusterIP: "10.96.0.11", nodePort: 30081), to: dir + "/api.yaml")
        summary = try await events.next(&syncs)
        #expect(summary.added == 3)
        try FileManager.default.removeItem(atPath: dir + "/web.yaml")
        summary = try await events.next(&syncs)
        #expect(summary.removed == 3 && summary.added == 0, "\(summary)")
        #expect(try programmed(fs.directory) == ["0.0.0.0:30081": [], "10.96.0.11:80": [], "192.0.2.10:30081": []])

        // SIGINT/SIGTERM cancel the task: the agent returns and the pins stay.
        agent.cancel()
        try await agent.value
        #expect(try programmed(fs.directory).count == 3)
    }

    @Test("a restarted agent re-adopts the pins and rewrites nothing for unchanged services")
    func restart() async throws {
        let fs = try BPFFSFixture.make()
        defer { fs.cleanup() }
        let dir = try makeTempDirectory("portway-agent-yaml")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(serviceYAML(name: "web", clusterIP: "10.96.0.10", nodePort: 30080), to: dir + "/web.yaml")
        try write(sliceYAML(service: "web", addresses: ["10.244.1.10"]), to: dir + "/web-slice.yaml")
        let options = AgentOptions(nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!], bpffs: fs.directory, mapSizes: BPFFSFixture.smallSizes)

        var summaries: [SyncSummary] = []
        for _ in 0..<2 {
            let events = SyncEvents()
            var syncs = events.stream.makeAsyncIterator()
            let pipeline = AgentPipeline(options: options, logger: Logger(label: "test.agent"), onSync: { events.continuation.yield($0) })
            let agent = Task { try await pipeline.run(source: FileDirectorySource(directory: dir, interval: .milliseconds(50))) }
            summaries.append(try await events.next(&syncs))
            agent.cancel()
            try await agent.value
        }
        #expect(summaries[0].added == 3 && summaries[0].writes > 0)
        #expect(summaries[1].added == 0 && summaries[1].updated == 0 && summaries[1].writes == 0 && summaries[1].deletes == 0, "\(summaries[1])")
    }
}
